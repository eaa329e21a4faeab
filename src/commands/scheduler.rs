//! `postrunner scheduler`: the scheduler role until SIGTERM or SIGINT.

use super::Context;
use crate::{roles, shutdown};

pub async fn run(cx: &Context) -> anyhow::Result<()> {
    let pool = cx.pool("scheduler", 3)?;
    let shutdown = shutdown::on_signals();
    cx.serve_metrics("scheduler", None, &shutdown);
    roles::scheduler::run(pool, shutdown).await
}
