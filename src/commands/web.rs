//! `postrunner web`: the HTTP role (webhooks, unsubscribe, health, status, the
//! database's metrics) until SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::Context as _;

use super::Context;
use crate::config::{WebArgs, METRICS_TOKEN_VARIABLE};
use crate::metrics::database::DatabaseMetrics;
use crate::{roles, shutdown};

pub async fn run(cx: &Context, args: &WebArgs) -> anyhow::Result<()> {
    let pool = cx.pool("web", args.max_connections)?;
    let mut config = args
        .web_config()
        .context("configuring the web role (--sns-ca-file, the unsubscribe key, the status token)")?;
    let token =
        postrunner_providers::secret::Secret::token_from_env(METRICS_TOKEN_VARIABLE).map_err(anyhow::Error::msg)?;
    let database = Arc::new(DatabaseMetrics::new(pool.clone(), cx.database_metrics_cache).with_token(token));
    config.database_metrics = Some(database.clone());
    let shutdown = shutdown::on_signals();
    cx.serve_metrics("web", Some(database), &shutdown);
    roles::web::run(pool, args.bind, config, shutdown).await
}
