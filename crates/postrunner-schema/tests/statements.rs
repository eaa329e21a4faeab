//! Every file under sql/ is a definition (functions, triggers, views, grants: listed in
//! src/definitions.rs and applied by `migrate`) or a statement the code runs (a typed
//! function in src/statements.rs), and each statement prepares against the migrated
//! schema with the parameters its function binds, so a typo, a renamed column or a
//! parameter bound in the wrong order or type fails here in seconds rather than in
//! production.

use std::path::{Path, PathBuf};

use postrunner_schema::definitions::DEFINITIONS;
use postrunner_schema::statements::signatures;
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
fn every_statement_file_has_its_function_and_defines_nothing() {
    let on_disk = sql_files(&sql_dir().join("statements"));
    let mut functions: Vec<String> = signatures().iter().map(|s| s.path.to_owned()).collect();
    functions.sort();
    assert_eq!(on_disk, functions, "sql/statements/ against src/statements.rs");
    for statement in signatures() {
        assert!(
            !statement.sql.contains("CREATE OR REPLACE"),
            "sql/statements/{} defines something: move it to sql/definitions/",
            statement.path
        );
    }
    // Nothing else lies around: reports.sql (examples for psql) and the two folders.
    let top: Vec<String> = sql_files(&sql_dir()).into_iter().filter(|f| !f.contains('/')).collect();
    assert_eq!(top, ["reports.sql"]);
}

#[tokio::test]
async fn every_statement_takes_exactly_the_parameters_of_its_function() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for statement in signatures() {
        let path = statement.path;
        let described = match conn.describe(statement.sql).await {
            Ok(described) => described,
            Err(e) => panic!("sql/statements/{path} does not prepare: {e}"),
        };
        let types = match described.parameters {
            Some(sqlx::Either::Left(types)) => types,
            other => panic!("sql/statements/{path}: PostgreSQL gives no parameter types ({other:?})"),
        };
        if types.len() != statement.params.len() {
            let names: Vec<&str> = statement.params.iter().map(|p| p.name).collect();
            wrong.push(format!(
                "{path} takes {} parameters, its function binds {names:?}",
                types.len()
            ));
        }
        for (n, (pg, param)) in types.iter().zip(&statement.params).enumerate() {
            if !(param.accepts)(pg) {
                wrong.push(format!(
                    "{path}: ${} is {pg}, the function binds `{}: {}`",
                    n + 1,
                    param.name,
                    param.rust
                ));
            }
        }
        checked += 1;
    }
    assert!(
        wrong.is_empty(),
        "statements whose functions disagree with them:\n{}",
        wrong.join("\n")
    );
    assert!(checked >= 70, "checked {checked} statements");
}

#[test]
fn a_statement_bound_with_the_wrong_type_is_caught() {
    // The check above could pass vacuously if `accepts` said yes to everything.
    let claim = signatures().into_iter().find(|s| s.path == "queue/claim.sql").unwrap();
    let limit = &claim.params[0];
    assert_eq!(limit.name, "limit");
    assert!((limit.accepts)(&sqlx::postgres::PgTypeInfo::with_name("int8")));
    assert!(!(limit.accepts)(&sqlx::postgres::PgTypeInfo::with_name("text")));
}
