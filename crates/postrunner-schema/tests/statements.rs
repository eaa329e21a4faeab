//! Every file under sql/ is a definition (functions, triggers, views, grants: listed in
//! src/definitions.rs and applied by `migrate`) or a statement the code runs (a constant
//! in src/statements.rs), and each statement prepares against the migrated schema, so a
//! typo or a renamed column fails here in seconds rather than in production.

use std::path::{Path, PathBuf};

use postrunner_schema::definitions::DEFINITIONS;
use postrunner_schema::statements::AREAS;
use postrunner_test_db::TestDb;
use sqlx::Executor as _;

fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

/// The `.sql` files under `dir`, as paths relative to it, sorted.
fn sql_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.extension().is_some_and(|e| e == "sql") {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn the_definitions_folder_holds_exactly_the_applied_files_numbered_in_their_order() {
    let on_disk = sql_files(&sql_dir().join("definitions"));
    let applied: Vec<&str> = DEFINITIONS.iter().map(|d| d.file).collect();
    assert_eq!(on_disk, applied, "sql/definitions/ against src/definitions.rs");
    let numbers: Vec<u32> = applied
        .iter()
        .map(|file| {
            file.split('_')
                .next()
                .unwrap()
                .parse()
                .expect("a file name starts with its number")
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "numbers rise in apply order: {numbers:?}"
    );
}

#[test]
fn every_statement_file_has_its_constant_and_defines_nothing() {
    let on_disk = sql_files(&sql_dir().join("statements"));
    let mut constants: Vec<String> = AREAS
        .iter()
        .flat_map(|(area, statements)| statements.iter().map(move |(file, _)| format!("{area}/{file}")))
        .collect();
    constants.sort();
    assert_eq!(on_disk, constants, "sql/statements/ against src/statements.rs");
    for (area, statements) in AREAS {
        for (file, sql) in *statements {
            assert!(
                !sql.contains("CREATE OR REPLACE"),
                "sql/statements/{area}/{file} defines something: move it to sql/definitions/"
            );
        }
    }
    // Nothing else lies around: reports.sql (examples for psql) and the two folders.
    let top: Vec<String> = sql_files(&sql_dir()).into_iter().filter(|f| !f.contains('/')).collect();
    assert_eq!(top, ["reports.sql"]);
}

#[tokio::test]
async fn every_statement_prepares() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut prepared = 0;
    for (area, statements) in AREAS {
        for (file, sql) in *statements {
            if let Err(e) = conn.prepare(sql).await {
                panic!("sql/statements/{area}/{file} does not prepare: {e}");
            }
            prepared += 1;
        }
    }
    assert!(prepared >= 30, "prepared {prepared} statements");
}
