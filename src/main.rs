//! The `postrunner` binary: parses flags, sets up logging, and hands over to the command
//! (src/commands/, one file each). Errors end here, printed with their whole chain,
//! exit code 1.

use std::process::ExitCode;

use clap::Parser;
use postrunner::commands::{self, Context};
use postrunner::config::{Cli, Command};
use postrunner::telemetry;

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

/// Hands the command to its file under `src/commands/`.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let cx = Context::new(&cli);
    match &cli.command {
        Command::Migrate => commands::migrate::run(&cx).await,
        Command::Worker(args) => commands::worker::run(&cx, args).await,
        Command::Scheduler => commands::scheduler::run(&cx).await,
        Command::Web(args) => commands::web::run(&cx, args).await,
        Command::Demo(args) => commands::demo::run(cx.database_url.clone(), args.clone()).await,
        Command::Import(args) => commands::import::command(&cx, args).await,
        Command::CheckDomains(args) => commands::check_domains::run(&cx, args).await,
        Command::Erase(person) => commands::gdpr::erase_command(&cx, person).await,
        Command::Export(person) => commands::gdpr::export_command(&cx, person).await,
        Command::Backup(args) => commands::backup::command(&cx, &args.what).await,
        Command::PullSuppressions => commands::pull_suppressions::run(&cx).await,
        Command::Verify(args) => commands::verify::run(&cx, args).await,
        Command::Status(args) => commands::status::run(&cx, args).await,
        Command::Bench(bench) => commands::bench::run(&cx, &bench.what).await,
    }
}
