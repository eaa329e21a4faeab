//! Every statement under sql/ prepares against the migrated schema, so a typo or a
//! renamed column fails here in seconds rather than in production.

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
    // roles.sql and reports.sql are scripts for psql, checked elsewhere.
    files.retain(|f| f.parent().and_then(|p| p.file_name()).is_some_and(|d| d != "sql"));
    assert!(files.len() >= 15, "found the query files: {files:?}");

    let mut conn = db.pool.acquire().await.unwrap();
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        if let Err(e) = conn.prepare(sql.as_str()).await {
            panic!("{} does not prepare: {e}", file.display());
        }
    }
}
