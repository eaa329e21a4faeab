//! Every file under sql/ is either a definition (functions, triggers, views, grants:
//! listed in src/db/definitions.rs and applied by `migrate`) or a statement the code
//! runs, which prepares against the migrated schema, so a typo or a renamed column fails
//! here in seconds rather than in production.

use std::path::{Path, PathBuf};

use sqlx::Executor as _;

use crate::support::db::TestDb;

fn sql_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sql_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn every_query_file_prepares() {
    let db = TestDb::new().await;
    let mut files = Vec::new();
    sql_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"), &mut files);
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let is_definition = |f: &PathBuf| {
        let relative = f.strip_prefix(&sql_dir).unwrap().to_string_lossy().into_owned();
        postrunner::db::definitions::DEFINITIONS
            .iter()
            .any(|d| d.file == relative)
    };
    // reports.sql is a script of examples for psql, run in tests/tenancy.rs.
    files.retain(|f| !is_definition(f) && !f.ends_with("reports.sql"));
    assert!(files.len() >= 15, "found the query files: {files:?}");
    for file in &files {
        let sql = std::fs::read_to_string(file).unwrap();
        assert!(
            !sql.contains("CREATE OR REPLACE"),
            "{} defines something: list it in src/db/definitions.rs",
            file.display()
        );
    }

    let mut conn = db.pool.acquire().await.unwrap();
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        if let Err(e) = conn.prepare(sql.as_str()).await {
            panic!("{} does not prepare: {e}", file.display());
        }
    }
}
