//! The `postrunner` binary: parses flags, sets up logging, and hands over to a role or
//! command. Errors end here, printed with their whole chain, exit code 1.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use postrunner::config::{BenchWhat, Cli, Command};
use postrunner::{commands, compliance, metrics, roles, shutdown, telemetry};
use postrunner_schema as db;

/// Names the role in the metrics, and serves them on `bind` when given, until `shutdown`.
fn serve_metrics(
    role: &'static str,
    bind: Option<std::net::SocketAddr>,
    database: Option<Arc<metrics::database::DatabaseMetrics>>,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    metrics::process::set_role(role);
    if let Some(bind) = bind {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = metrics::server::serve(bind, database, shutdown).await {
                tracing::error!(error = format!("{error:#}"), "the metrics endpoint stopped");
            }
        });
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    postrunner_providers::http::install_crypto_provider();
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Bench(_) | Command::Migrate | Command::Import(_));
    if matches!(cli.command, Command::Demo(_)) {
        // The demo's live view stays readable: its logs go to a file it names.
        let path = commands::demo::log_path();
        if let Err(error) = telemetry::init_to_file(cli.log_format, "info,sqlx=warn", &path) {
            eprintln!("error: cannot write the demo's log to {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    } else {
        telemetry::init(cli.log_format, if quiet { "warn" } else { "info,sqlx=warn" });
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let required_url = || {
        cli.database_url
            .clone()
            .context("DATABASE_URL is not set (for example postgres://postgres@127.0.0.1:5432/postrunner)")
    };
    let limits = cli.session_limits();
    match cli.command {
        Command::Migrate => {
            let report = db::migrate::run(&required_url()?).await?;
            println!("{report}");
            Ok(())
        }
        Command::Worker(ref args) => {
            let config = args.executor_config()?;
            let pool = db::pool_with(&required_url()?, args.max_connections, "postrunner-worker", limits)?;
            let shutdown = shutdown::on_signals();
            serve_metrics("worker", cli.metrics_bind, None, &shutdown);
            roles::worker::run(pool, config, args.unsubscribe_url.clone(), shutdown).await
        }
        Command::Scheduler => {
            let pool = db::pool_with(&required_url()?, 3, "postrunner-scheduler", limits)?;
            let shutdown = shutdown::on_signals();
            serve_metrics("scheduler", cli.metrics_bind, None, &shutdown);
            roles::scheduler::run(pool, shutdown).await
        }
        Command::Web(ref args) => {
            let pool = db::pool_with(&required_url()?, args.max_connections, "postrunner-web", limits)?;
            let mut config = args
                .web_config()
                .context("configuring the web role (--sns-ca-file, the unsubscribe key, the status token)")?;
            let token =
                postrunner_providers::secret::Secret::token_from_env(postrunner::config::METRICS_TOKEN_VARIABLE)
                    .map_err(anyhow::Error::msg)?;
            let database = Arc::new(
                metrics::database::DatabaseMetrics::new(pool.clone(), cli.database_metrics_cache).with_token(token),
            );
            config.database_metrics = Some(database.clone());
            let shutdown = shutdown::on_signals();
            serve_metrics("web", cli.metrics_bind, Some(database), &shutdown);
            roles::web::run(pool, args.bind, config, shutdown).await
        }
        Command::Demo(ref args) => commands::demo::run(cli.database_url.clone(), args.clone()).await,
        Command::Import(ref args) => {
            let pool = db::pool_with(&required_url()?, 2, "postrunner-import", limits)?;
            let report = commands::import::run(&pool, args).await?;
            println!("{report}");
            anyhow::ensure!(report.succeeded(), "nothing was imported");
            Ok(())
        }
        Command::CheckDomains(ref args) => {
            let pool = db::pool_with(&required_url()?, 2, "postrunner-check-domains", limits)?;
            let resolver = compliance::domains::resolver(args.nameserver).map_err(anyhow::Error::msg)?;
            let reports = compliance::domains::check_all(&pool, &resolver).await?;
            let gate = compliance::domains::apply_gate(&pool).await?;
            for report in &reports {
                println!("{} {}", report.domain, if report.ok() { "ok" } else { "FAILING" });
                for (name, check) in [
                    ("spf", &report.spf),
                    ("dkim", &report.dkim),
                    ("dmarc", &report.dmarc),
                    ("mx", &report.mx),
                ] {
                    println!(
                        "  {name:<6} {:<4} {}",
                        if check.ok { "ok" } else { "FAIL" },
                        check.detail
                    );
                }
            }
            println!("{gate}");
            let failing = reports.iter().filter(|r| !r.ok()).count();
            anyhow::ensure!(
                failing == 0,
                "{failing} of {} sender domains fail their checks",
                reports.len()
            );
            Ok(())
        }
        Command::Erase(ref person) => {
            let pool = db::pool_with(&required_url()?, 1, "postrunner-erase", limits)?;
            let erased = commands::gdpr::erase(&pool, &person.client, &person.address).await?;
            println!("{erased}");
            Ok(())
        }
        Command::Export(ref person) => {
            let pool = db::pool_with(&required_url()?, 1, "postrunner-export", limits)?;
            let held = commands::gdpr::export(&pool, &person.client, &person.address).await?;
            println!("{held:#}");
            Ok(())
        }
        Command::Backup(ref args) => {
            let url = required_url()?;
            let pool = db::pool_with(&url, 2, "postrunner-backup", limits)?;
            commands::backup::run(&pool, &url, &args.what).await
        }
        Command::PullSuppressions => {
            let pool = db::pool_with(&required_url()?, 2, "postrunner-pull-suppressions", limits)?;
            let providers = postrunner_providers::Directory::new(pool.clone());
            let pulled = postrunner_feedback::provider_suppressions::pull(&pool, &providers).await?;
            for p in &pulled {
                println!("{p}");
            }
            let failed = postrunner_feedback::provider_suppressions::failures(&pulled);
            anyhow::ensure!(failed == 0, "{failed} providers' suppression lists could not be read");
            Ok(())
        }
        Command::Verify(ref args) => {
            let pool = db::pool_with(&required_url()?, 1, "postrunner-verify", limits)?;
            let report = postrunner::verify::verify(&pool).await?;
            if args.json {
                println!("{:#}", serde_json::to_value(&report)?);
            } else {
                println!("{report}");
            }
            let violations = report.violations().count();
            anyhow::ensure!(violations == 0, "{violations} violations of postrunner's promises");
            Ok(())
        }
        Command::Status(ref args) => {
            let pool = db::pool_with(&required_url()?, 1, "postrunner-status", limits)?;
            if args.json {
                println!("{:#}", postrunner::status::read_json(&pool).await?);
            } else {
                print!(
                    "{}",
                    postrunner::status::text::render(&postrunner::status::read(&pool).await?)
                );
            }
            Ok(())
        }
        Command::Bench(ref bench) => match &bench.what {
            BenchWhat::Queue(args) => commands::bench::queue::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Route(args) => commands::bench::route::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Send(args) => commands::bench::send::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Events(args) => commands::bench::events::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Metrics(args) => commands::bench::metrics::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Verify(args) => commands::bench::verify::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Lanes(args) => commands::bench::lanes::run(cli.database_url.clone(), args.clone()).await,
            BenchWhat::Unsubscribe(args) => {
                commands::bench::unsubscribe::run(cli.database_url.clone(), args.clone()).await
            }
        },
    }
}
