//! `postrunner import providers|addresses|suppressions FILE.csv`: bulk load of
//! configuration, all or nothing.
//!
//! The file's header names its columns (any subset of the table's, in any order; the
//! key and required columns must be there). Rows are upserted by key in one
//! transaction, in chunks: a row that is already as the file says is not written at
//! all, so re-importing a file is a no-op. Values are checked by PostgreSQL itself (types,
//! constraints, foreign keys), so the import accepts exactly what a plain INSERT would;
//! when a chunk is refused, its rows are retried one by one, each under a savepoint,
//! to name every bad row with its line number and reason. With any bad row the
//! transaction is rolled back (nothing imported) unless `--skip-invalid` is given.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use postrunner_schema::statements;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::config::{ImportArgs, ImportWhat};

/// Rows per INSERT statement.
const CHUNK: usize = 500;

/// What a CSV file may load, and how rows are matched.
struct Table {
    table: &'static str,
    /// The ON CONFLICT target: the table's unique key, and its columns.
    conflict: &'static str,
    keys: &'static [&'static str],
    columns: &'static [&'static str],
    /// Columns the header must have and a row must fill.
    required: &'static [&'static str],
}

const PROVIDERS: Table = Table {
    table: "providers",
    conflict: "(name)",
    keys: &["name"],
    columns: &[
        "name",
        "kind",
        "endpoint",
        "secret_env",
        "region",
        "priority",
        "weight",
        "per_minute",
        "price_per_1000",
        "monthly_fee",
        "monthly_budget",
        "enabled",
    ],
    required: &["name", "kind"],
};

const ADDRESSES: Table = Table {
    table: "sender_addresses",
    conflict: "(address)",
    keys: &["address"],
    columns: &[
        "address",
        "provider",
        "client",
        "display_name",
        "daily_limit",
        "warmup_started_on",
        "status",
        "status_reason",
    ],
    required: &["address", "provider", "client"],
};

const SUPPRESSIONS: Table = Table {
    table: "suppressions",
    conflict: "(client, lower(address))",
    keys: &["client", "address"],
    columns: &["client", "address", "reason", "detail"],
    required: &["client", "address", "reason"],
};

impl ImportWhat {
    fn table(self) -> &'static Table {
        match self {
            ImportWhat::Providers => &PROVIDERS,
            ImportWhat::Addresses => &ADDRESSES,
            ImportWhat::Suppressions => &SUPPRESSIONS,
        }
    }
}

/// One data row: its line in the file and a cell per header column (None when empty).
struct Row {
    line: u64,
    cells: Vec<Option<String>>,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub rows: usize,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Bad rows: line number in the file and the reason.
    pub invalid: Vec<(u64, String)>,
    /// Whether the valid rows were committed.
    pub committed: bool,
}

impl ImportReport {
    /// True when the file was imported (possibly without its invalid rows).
    pub fn succeeded(&self) -> bool {
        self.committed
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (line, reason) in &self.invalid {
            writeln!(f, "line {line}: {reason}")?;
        }
        if self.committed {
            write!(
                f,
                "{} rows: {} inserted, {} updated, {} unchanged",
                self.rows, self.inserted, self.updated, self.unchanged
            )?;
            if !self.invalid.is_empty() {
                write!(f, ", {} invalid rows skipped", self.invalid.len())?;
            }
            Ok(())
        } else {
            write!(
                f,
                "{} of {} rows are invalid: nothing was imported (fix them, or pass --skip-invalid to import the others)",
                self.invalid.len(),
                self.rows
            )
        }
    }
}

/// `postrunner import`: prints the report; fails when nothing was imported.
pub async fn command(cx: &super::Context, args: &ImportArgs) -> anyhow::Result<()> {
    let report = run(&cx.pool("import", 2)?, args).await?;
    println!("{report}");
    anyhow::ensure!(report.succeeded(), "nothing was imported");
    Ok(())
}

/// Imports `args.file` into the table `args.what` names.
///
/// # Errors
/// The file cannot be read or its header is wrong (nothing is imported), or the
/// database fails for a reason other than a bad row.
pub async fn run(pool: &PgPool, args: &ImportArgs) -> anyhow::Result<ImportReport> {
    let table = args.what.table();
    let (header, rows, mut invalid) = read(&args.file, table)?;
    let types = column_types(pool, table).await?;

    let bar = ProgressBar::new(rows.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("importing {}", args.file.display()));

    let statement = Upsert::new(table, &header, &types);
    let mut report = ImportReport {
        rows: rows.len() + invalid.len(),
        ..ImportReport::default()
    };
    let mut tx = postrunner_schema::begin(pool)
        .await
        .context("starting the import transaction")?;
    for chunk in rows.chunks(CHUNK) {
        match statement.run_under_savepoint(&mut tx, chunk).await? {
            Ok(counts) => report.add(counts),
            Err(_) => {
                // Some row of the chunk is bad: find which, one row per savepoint.
                for row in chunk {
                    match statement
                        .run_under_savepoint(&mut tx, std::slice::from_ref(row))
                        .await?
                    {
                        Ok(counts) => report.add(counts),
                        Err(reason) => invalid.push((row.line, reason)),
                    }
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    invalid.sort_by_key(|(line, _)| *line);
    report.invalid = invalid;
    if report.invalid.is_empty() || args.skip_invalid {
        tx.commit().await.context("committing the import")?;
        report.committed = true;
    } else {
        tx.rollback().await.context("rolling the import back")?;
        report.inserted = 0;
        report.updated = 0;
        report.unchanged = 0;
    }
    Ok(report)
}

impl ImportReport {
    fn add(&mut self, (inserted, updated, unchanged): (u64, u64, u64)) {
        self.inserted += inserted;
        self.updated += updated;
        self.unchanged += unchanged;
    }
}

type Parsed = (Vec<String>, Vec<Row>, Vec<(u64, String)>);

/// Reads the file: the header (checked against `table`), the rows, and the rows that
/// are already known to be bad (malformed CSV, a required cell empty).
fn read(path: &Path, table: &Table) -> anyhow::Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .iter()
        .map(str::to_lowercase)
        .collect();
    for column in &header {
        anyhow::ensure!(
            table.columns.contains(&column.as_str()),
            "{}: unknown column {column:?}; {} has: {}",
            path.display(),
            table.table,
            table.columns.join(", ")
        );
    }
    for required in table.required {
        anyhow::ensure!(
            header.iter().any(|c| c == required),
            "{}: the header has no {required:?} column (required: {})",
            path.display(),
            table.required.join(", ")
        );
    }
    let mut duplicate = header.clone();
    duplicate.sort();
    duplicate.dedup();
    anyhow::ensure!(
        duplicate.len() == header.len(),
        "{}: a column is named twice",
        path.display()
    );

    let mut rows = Vec::new();
    let mut invalid = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                invalid.push((line, format!("not valid CSV: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != header.len() {
            invalid.push((
                line,
                format!("{} fields, but the header has {}", record.len(), header.len()),
            ));
            continue;
        }
        let cells: Vec<Option<String>> = record
            .iter()
            .map(|cell| (!cell.is_empty()).then(|| cell.to_owned()))
            .collect();
        let missing: Vec<&str> = header
            .iter()
            .zip(&cells)
            .filter(|(column, cell)| cell.is_none() && table.required.contains(&column.as_str()))
            .map(|(column, _)| column.as_str())
            .collect();
        if missing.is_empty() {
            rows.push(Row { line, cells });
        } else {
            invalid.push((line, format!("{} must not be empty", missing.join(", "))));
        }
    }
    Ok((header, rows, invalid))
}

/// Each column's SQL type, from the catalog, so values are cast as the table declares.
async fn column_types(pool: &PgPool, table: &Table) -> anyhow::Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> = statements::import::column_types(table.table)
        .rows()
        .fetch_all(pool)
        .await
        .context("reading the table's columns (is the database migrated?)")?;
    Ok(rows.into_iter().collect())
}

/// The upsert for a header: `INSERT ... VALUES (...), ... ON CONFLICT DO UPDATE` of the
/// header's columns, skipping rows that would not change.
struct Upsert {
    casts: Vec<String>,
    head: String,
    tail: String,
}

impl Upsert {
    fn new(table: &Table, header: &[String], types: &HashMap<String, String>) -> Self {
        let casts = header
            .iter()
            .map(|c| types.get(c).cloned().unwrap_or_else(|| "text".to_owned()))
            .collect();
        let head = format!(
            "INSERT INTO postrunner.{} AS t ({}) VALUES ",
            table.table,
            header.join(", ")
        );
        let updated: Vec<&String> = header.iter().filter(|c| !table.keys.contains(&c.as_str())).collect();
        let tail = if updated.is_empty() {
            format!(" ON CONFLICT {} DO NOTHING RETURNING true", table.conflict)
        } else {
            let set: Vec<String> = updated.iter().map(|c| format!("{c} = excluded.{c}")).collect();
            let old: Vec<String> = updated.iter().map(|c| format!("t.{c}")).collect();
            let new: Vec<String> = updated.iter().map(|c| format!("excluded.{c}")).collect();
            format!(
                " ON CONFLICT {} DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({}) RETURNING (xmax = 0)",
                table.conflict,
                set.join(", "),
                old.join(", "),
                new.join(", ")
            )
        };
        Self { casts, head, tail }
    }

    /// Runs the upsert of `rows` under a savepoint. The outer `Ok` is the database
    /// answering: `Ok(Ok(counts))` imported (inserted, updated, unchanged), `Ok(Err)` a
    /// row was refused (the savepoint is rolled back, the reason given). `Err` is a
    /// failure of the connection itself.
    async fn run_under_savepoint(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        rows: &[Row],
    ) -> anyhow::Result<Result<(u64, u64, u64), String>> {
        let mut savepoint = sqlx::Connection::begin(&mut **tx).await.context("savepoint")?;
        match self.run(&mut savepoint, rows).await {
            Ok(counts) => {
                savepoint.commit().await.context("releasing a savepoint")?;
                Ok(Ok(counts))
            }
            Err(sqlx::Error::Database(e)) => {
                savepoint.rollback().await.context("rolling back to a savepoint")?;
                let detail = e
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|pg| pg.detail().map(str::to_owned));
                Ok(Err(match detail {
                    Some(detail) => format!("{} ({detail})", e.message()),
                    None => e.message().to_owned(),
                }))
            }
            Err(e) => Err(e).context("importing rows"),
        }
    }

    async fn run(&self, conn: &mut PgConnection, rows: &[Row]) -> Result<(u64, u64, u64), sqlx::Error> {
        let mut sql = self.head.clone();
        let mut params = 0;
        for (r, row) in rows.iter().enumerate() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (c, cell) in row.cells.iter().enumerate() {
                if c > 0 {
                    sql.push_str(", ");
                }
                if cell.is_some() {
                    params += 1;
                    sql.push_str(&format!("${params}::{}", self.casts[c]));
                } else {
                    sql.push_str("DEFAULT");
                }
            }
            sql.push(')');
        }
        sql.push_str(&self.tail);
        // Statements vary with the chunk's shape: not worth caching on the connection.
        let mut query = sqlx::query_scalar::<_, bool>(&sql).persistent(false);
        for cell in rows.iter().flat_map(|row| row.cells.iter().flatten()) {
            query = query.bind(cell);
        }
        let written = query.fetch_all(conn).await?;
        let inserted = written.iter().filter(|&&new| new).count() as u64;
        let updated = written.len() as u64 - inserted;
        Ok((inserted, updated, rows.len() as u64 - written.len() as u64))
    }
}
