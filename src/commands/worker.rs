//! `postrunner worker`: the worker role until SIGTERM or SIGINT.

use super::Context;
use crate::config::WorkerArgs;
use crate::{roles, shutdown};

pub async fn run(cx: &Context, args: &WorkerArgs) -> anyhow::Result<()> {
    let config = args.executor_config()?;
    let pool = cx.pool("worker", args.max_connections)?;
    let listener = cx.listener(&pool, "worker")?;
    let shutdown = shutdown::on_signals();
    cx.serve_metrics("worker", None, &shutdown);
    roles::worker::run(pool, listener, config, args.unsubscribe_url.clone(), shutdown).await
}
