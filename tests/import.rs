//! `postrunner import`: CSV files into the configuration tables, all or nothing,
//! idempotent.

use std::path::{Path, PathBuf};

use postrunner::commands::import;
use postrunner::config::{ImportArgs, ImportWhat};

use crate::support::db::count;
use crate::support::db::TestDb;

/// Writes `contents` to a fresh temporary file.
fn csv_file(contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("postrunner-import-{}.csv", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, contents).unwrap();
    path
}

fn args(what: ImportWhat, file: &Path, skip_invalid: bool) -> ImportArgs {
    ImportArgs {
        what,
        file: file.to_path_buf(),
        skip_invalid,
    }
}

const PROVIDERS: &str = "name,kind,endpoint,secret_env,weight,per_minute,price_per_1000,monthly_budget
sg-main,sendgrid,https://api.sendgrid.com,SENDGRID_KEY,200,600,0.80,500
mg-eu,mailgun,https://api.eu.mailgun.net,MAILGUN_KEY,,,,
";

const ADDRESSES: &str = "address,provider,client,daily_limit,warmup_started_on,status
alice@acme.test,sg-main,acme,80,2027-01-04,active
bob@acme.test,mg-eu,acme,,,paused
carol@acme.test,mg-eu,acme,40,,
";

async fn acme(db: &TestDb) {
    sqlx::query("INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false)")
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn importing_the_same_files_again_changes_nothing() {
    let db = TestDb::new().await;
    acme(&db).await;
    let providers = csv_file(PROVIDERS);
    let addresses = csv_file(ADDRESSES);
    let suppressions =
        csv_file("client,address,reason\nacme,Bounced@Example.org,hard_bounce\nacme,gone@example.org,unsubscribe\n");

    let first = import::run(&db.pool, &args(ImportWhat::Providers, &providers, false))
        .await
        .unwrap();
    assert_eq!((first.inserted, first.updated, first.unchanged), (2, 0, 0));
    let first = import::run(&db.pool, &args(ImportWhat::Addresses, &addresses, false))
        .await
        .unwrap();
    assert_eq!((first.inserted, first.updated, first.unchanged), (3, 0, 0));
    let first = import::run(&db.pool, &args(ImportWhat::Suppressions, &suppressions, false))
        .await
        .unwrap();
    assert_eq!(first.inserted, 2);

    // Empty cells take the column's default.
    let defaults: (i32, i32, String) = sqlx::query_as(
        "SELECT p.weight, a.daily_limit, a.status::text FROM postrunner.providers p, postrunner.sender_addresses a
          WHERE p.name = 'mg-eu' AND a.address = 'bob@acme.test'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(defaults, (100, 50, "paused".to_owned()));

    for (what, file, rows) in [
        (ImportWhat::Providers, &providers, 2),
        (ImportWhat::Addresses, &addresses, 3),
        (ImportWhat::Suppressions, &suppressions, 2),
    ] {
        let again = import::run(&db.pool, &args(what, file, false)).await.unwrap();
        assert_eq!(
            (again.inserted, again.updated, again.unchanged),
            (0, 0, rows),
            "{what:?}"
        );
    }

    // A changed row is an update of that row only.
    let changed = csv_file(&ADDRESSES.replace("carol@acme.test,mg-eu,acme,40", "carol@acme.test,mg-eu,acme,45"));
    let report = import::run(&db.pool, &args(ImportWhat::Addresses, &changed, false))
        .await
        .unwrap();
    assert_eq!((report.inserted, report.updated, report.unchanged), (0, 1, 2));
    assert_eq!(
        count(
            &db.pool,
            "SELECT daily_limit::bigint FROM postrunner.sender_addresses WHERE address = 'carol@acme.test'"
        )
        .await,
        45
    );
}

#[tokio::test]
async fn a_file_with_bad_rows_imports_nothing_and_names_each_bad_line() {
    let db = TestDb::new().await;
    acme(&db).await;
    import::run(&db.pool, &args(ImportWhat::Providers, &csv_file(PROVIDERS), false))
        .await
        .unwrap();
    let bad = csv_file(
        "address,provider,client,daily_limit
good1@acme.test,sg-main,acme,50
good2@acme.test,nope,acme,50
not-an-address,sg-main,acme,50
good3@acme.test,sg-main,acme,many
good4@acme.test,sg-main,acme,-5
good5@acme.test,sg-main,,50
good6@acme.test,sg-main,acme
good7@acme.test,sg-main,acme,50
",
    );
    let report = import::run(&db.pool, &args(ImportWhat::Addresses, &bad, false))
        .await
        .unwrap();
    assert!(!report.committed);
    let lines: Vec<u64> = report.invalid.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
    let reasons: Vec<&str> = report.invalid.iter().map(|(_, reason)| reason.as_str()).collect();
    assert!(
        reasons[0].contains("(provider)=(nope) is not present"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("sender_addresses_address_check"), "{}", reasons[1]);
    assert!(
        reasons[2].contains("invalid input syntax for type integer: \"many\""),
        "{}",
        reasons[2]
    );
    assert!(reasons[3].contains("daily_limit_check"), "{}", reasons[3]);
    assert_eq!(reasons[4], "client must not be empty");
    assert_eq!(reasons[5], "3 fields, but the header has 4");
    assert!(report.to_string().contains("nothing was imported"));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM postrunner.sender_addresses").await,
        0
    );

    let report = import::run(&db.pool, &args(ImportWhat::Addresses, &bad, true))
        .await
        .unwrap();
    assert!(report.committed);
    assert_eq!((report.inserted, report.invalid.len()), (2, 6));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM postrunner.sender_addresses").await,
        2
    );
}

#[tokio::test]
async fn a_header_that_does_not_fit_the_table_is_refused() {
    let db = TestDb::new().await;
    let unknown = csv_file("address,provider,client,password\nx@acme.test,p,acme,hunter2\n");
    let error = import::run(&db.pool, &args(ImportWhat::Addresses, &unknown, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown column \"password\""), "{error}");
    let missing = csv_file("address,provider\nx@acme.test,p\n");
    let error = import::run(&db.pool, &args(ImportWhat::Addresses, &missing, false))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no \"client\" column"), "{error}");
}

#[tokio::test]
async fn the_command_exits_non_zero_and_lists_bad_lines() {
    let db = TestDb::new().await;
    acme(&db).await;
    let file = csv_file("name,kind\nok,log\nbad,carrier-pigeon\n");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_postrunner"))
        .args(["import", "providers", file.to_str().unwrap()])
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("line 3: invalid input value for enum postrunner.provider_kind: \"carrier-pigeon\""),
        "{stdout}"
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM postrunner.providers").await, 0);
}
