//! Maps that must match the code: sql/README.md's table of definition files, in the
//! order `migrate` applies them; the module map at the top of every crate's lib.rs; each
//! crate's README, which names every file of the crate; the layers (no crate depends on
//! one above it); README's table of commands; every file a comment or document cites
//! must exist, and every test it cites (a path under tests/, and the test's name where
//! one is given). Nothing cites a file outside the repository.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// Every text file of the repository that can cite something: sources, SQL, tests,
/// documents, scripts, deployment files.
fn text_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            // Migrations are history: their comments name the paths of their day.
            if path.ends_with("migrations") {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["rs", "sql", "md", "py", "yml", "yaml", "toml", "json"].contains(&e))
                || path.parent().is_some_and(|p| p.ends_with("bin"))
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["src", "crates", "tests", "docs", "bin", "deploy", ".ci"] {
        if root().join(dir).exists() {
            walk(&root().join(dir), &mut files);
        }
    }
    files.extend(["README.md", "Cargo.toml", "docker-compose.yml"].map(|f| root().join(f)));
    files
}

#[test]
fn sql_readme_lists_every_definition_file_in_the_order_migrate_applies_them() {
    let readme = read("crates/postrunner-schema/sql/README.md");
    let table = readme
        .split("| file | defines |")
        .nth(1)
        .expect("sql/README.md has the table of definition files");
    let listed: Vec<&str> = table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| line.split('`').nth(1).expect("a row names its file"))
        .collect();
    let applied: Vec<&str> = postrunner_schema::definitions::DEFINITIONS
        .iter()
        .map(|d| d.file)
        .collect();
    assert_eq!(listed, applied, "sql/README.md against src/definitions.rs");
}

/// The crates, bottom up: each may depend only on those before it (test-db is test
/// support beside the schema).
const LAYERS: [&str; 7] = [
    "crates/postrunner-schema",
    "crates/postrunner-test-db",
    "crates/postrunner-queue",
    "crates/postrunner-providers",
    "crates/postrunner-feedback",
    "crates/postrunner-sim",
    ".",
];

fn package_name(dir: &str) -> String {
    let manifest = read(&format!("{dir}/Cargo.toml"));
    let package = manifest.split("[package]").nth(1).expect("a [package] table");
    package
        .lines()
        .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        .expect("a package name")
        .to_owned()
}

#[test]
fn every_crate_of_the_workspace_has_its_place_in_the_layers() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .flatten()
        .map(|e| format!("crates/{}", e.file_name().to_string_lossy()))
        .collect();
    on_disk.push(".".into());
    on_disk.sort();
    let mut layers: Vec<String> = LAYERS.iter().map(|s| s.to_string()).collect();
    layers.sort();
    assert_eq!(on_disk, layers);
}

#[test]
fn no_crate_depends_on_one_above_it() {
    let names: Vec<String> = LAYERS.iter().map(|dir| package_name(dir)).collect();
    for (at, dir) in LAYERS.iter().enumerate() {
        let manifest = read(&format!("{dir}/Cargo.toml"));
        let dependencies = manifest
            .split("\n[dependencies]\n")
            .nth(1)
            .expect("a [dependencies] table")
            .split("\n[")
            .next()
            .unwrap();
        for line in dependencies.lines() {
            let dependency = line.split(['.', ' ', '=']).next().unwrap_or_default();
            if let Some(layer) = names.iter().position(|n| n == dependency) {
                assert!(
                    layer < at,
                    "{} depends on {dependency}, which is not below it",
                    names[at]
                );
            }
        }
    }
    // The simulators and the test support are no dependency of any library crate, but
    // through its `testing` feature (test helpers of its own, off in the binary's build).
    for dir in &LAYERS[..5] {
        let manifest = read(&format!("{dir}/Cargo.toml"));
        let dependencies = manifest.split("[dev-dependencies]").next().unwrap();
        for test_only in ["postrunner-sim", "postrunner-test-db"] {
            let Some(line) = dependencies
                .lines()
                .find(|l| l.starts_with(&format!("{test_only} ")) || l.starts_with(&format!("{test_only}.")))
            else {
                continue;
            };
            assert!(
                package_name(dir) == test_only
                    || line.contains("optional = true")
                        && manifest.contains(&format!("testing = [\"dep:{test_only}\"]")),
                "{dir} depends on {test_only} outside its testing feature"
            );
        }
    }
}

/// The `//!` header of a lib.rs, and the modules it declares.
fn module_map(lib: &str) -> (String, Vec<String>) {
    let text = read(lib);
    let map = text
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let modules = text
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    (map, modules)
}

#[test]
fn the_module_map_of_every_lib_rs_names_every_module() {
    let (_, program) = module_map("src/lib.rs");
    assert!(program.len() > 10, "{program:?}");
    for dir in LAYERS {
        let lib = format!("{dir}/src/lib.rs");
        let (map, modules) = module_map(&lib);
        for module in modules {
            assert!(
                map.contains(&format!("[`{module}`]")) || map.contains(&format!("`{module}` (feature")),
                "{lib}'s map misses `{module}`"
            );
        }
    }
}

/// Every file of a crate a reader looks for: sources, tests, SQL (by folder for SQL,
/// whose own README and statements.rs list the files).
fn crate_files(dir: &str) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let base = root().join(dir);
    let mut files = Vec::new();
    for sub in ["src", "tests"] {
        if base.join(sub).exists() {
            walk(&base, &base.join(sub), &mut files);
        }
    }
    files.sort();
    files
}

#[test]
fn each_crate_readme_names_every_file_of_its_crate() {
    for dir in &LAYERS[..6] {
        let readme = read(&format!("{dir}/README.md"));
        let files = crate_files(dir);
        assert!(!files.is_empty(), "{dir} has files");
        for file in files {
            assert!(
                readme.contains(&format!("`{file}`")),
                "{dir}/README.md does not name `{file}`"
            );
        }
    }
    let root_readme = read("README.md");
    for dir in &LAYERS[..6] {
        assert!(
            root_readme.contains(&format!("({dir}/README.md)")),
            "README.md's \"Where to find things\" does not lead to {dir}/README.md"
        );
    }
}

#[test]
fn the_readme_table_of_commands_names_every_command() {
    use clap::CommandFactory as _;
    let readme = read("README.md");
    let cli = postrunner::config::Cli::command();
    for command in cli.get_subcommands() {
        let name = command.get_name();
        if name == "help" {
            continue;
        }
        assert!(
            readme.contains(&format!("| `postrunner {name}")),
            "README's table of roles and commands misses `postrunner {name}`"
        );
        if name == "bench" {
            for bench in command.get_subcommands().map(|c| c.get_name()).filter(|n| *n != "help") {
                assert!(
                    readme.contains(&format!("`bench {bench}`")) || readme.contains(&format!("bench {bench} ")),
                    "README misses `bench {bench}`"
                );
            }
        }
    }
}

/// `tests/<file>.rs` as cited, and the test name after it when the citation gives one
/// (`tests/<file>.rs, <a test's name>`, across a comment's line break).
fn citations(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("tests/") {
        // `crates/<name>/tests/...` names another crate's tests.
        let before = &rest[..at];
        let prefix = before
            .strip_suffix('/')
            .and_then(|b| b.rfind("crates/").map(|i| &b[i..]))
            .filter(|p| !p["crates/".len()..].contains(|c: char| c == '/' || c.is_whitespace()))
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        rest = &rest[at + "tests/".len()..];
        let file: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '/')
            .collect();
        if !rest[file.len()..].starts_with(".rs") || file.is_empty() {
            continue;
        }
        let after = &rest[file.len() + 3..];
        let name = after.strip_prefix(',').and_then(|tail| {
            // Skip spaces, line breaks and comment markers to the next word.
            let tail =
                tail.trim_start_matches(|c: char| c.is_whitespace() || c == '-' || c == '/' || c == '!' || c == '#');
            let word: String = tail
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // A test's name: words joined by underscores, not a phrase that goes on.
            (word.matches('_').count() >= 3).then_some(word)
        });
        found.push((format!("{prefix}tests/{file}.rs"), name));
    }
    found
}

/// The crate a file belongs to (its directory, relative to the root), or "." for the
/// program's own files.
fn crate_of(file: &Path) -> PathBuf {
    let relative = file.strip_prefix(root()).unwrap();
    let mut parts = relative.components();
    match (parts.next(), parts.next()) {
        (Some(first), Some(second)) if first.as_os_str() == "crates" => Path::new("crates").join(second),
        _ => PathBuf::from("."),
    }
}

/// Where a cited path is: as written from the root (`crates/...`, `docs/...`), else in
/// the citing file's own crate (`src/...`, `tests/...`), else in the program, and
/// `sql/...` and `migrations/...` in the schema crate.
fn resolve(citing: &Path, cited: &str) -> Option<PathBuf> {
    let candidates = [
        root().join(cited),
        root().join(crate_of(citing)).join(cited),
        root().join("crates/postrunner-schema").join(cited),
    ];
    candidates.into_iter().find(|p| p.exists())
}

/// The paths a text cites: words like `src/web/mod.rs`, `tests/maps.rs`,
/// `sql/statements/queue/claim.sql`, `docs/operations.md`, `bin/test`, each possibly
/// after `crates/<name>/`.
fn cited_paths(text: &str) -> Vec<String> {
    const FOLDERS: [&str; 8] = [
        "src/",
        "tests/",
        "sql/",
        "migrations/",
        "docs/",
        "bin/",
        "deploy/",
        "crates/",
    ];
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices('/') {
        // The start of the word this slash is in.
        let start = text[..at].rfind(|c: char| !is_path_char(c)).map_or(0, |i| i + 1);
        let word: String = text[start..].chars().take_while(|c| is_path_char(*c)).collect();
        let word = word.trim_end_matches(['.', '/']);
        if text[..start].ends_with(['*', '<', '{', '$']) || word.contains("..") || word.contains("//") {
            continue;
        }
        let extension = word.rsplit_once('.').map(|(_, e)| e);
        let wanted = FOLDERS.iter().any(|f| word.starts_with(f))
            && (matches!(extension, Some("rs" | "sql" | "md" | "py" | "yml" | "toml")) || word.starts_with("bin/"));
        if wanted && start + word.len() > at && !found.iter().any(|w: &String| w == word) {
            found.push(word.to_owned());
        }
    }
    found
}

#[test]
fn every_cited_file_exists() {
    let mut checked = 0;
    let mut missing = Vec::new();
    for file in text_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for cited in cited_paths(&text) {
            if resolve(&file, &cited).is_none() {
                missing.push(format!(
                    "{} cites {cited}",
                    file.strip_prefix(root()).unwrap().display()
                ));
            }
            checked += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "cited files that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(checked > 200, "found the citations ({checked})");
}

#[test]
fn every_cited_test_exists() {
    let mut checked = 0;
    for file in text_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (cited, name) in citations(&text) {
            let path = resolve(&file, &cited)
                .unwrap_or_else(|| panic!("{} cites {cited}, which does not exist", file.display()));
            if let Some(name) = name {
                let tests = std::fs::read_to_string(&path).unwrap();
                assert!(
                    tests.contains(&format!("fn {name}(")),
                    "{} cites {cited}, {name}, which is no test there",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "found the citations ({checked})");
}

#[test]
fn nothing_cites_a_file_outside_the_repository() {
    for file in text_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // (Spelt in two halves, so that this file does not cite them itself.)
        for outside in [concat!("..", "/shared/"), concat!("/wo", "rk/")] {
            assert!(!text.contains(outside), "{} cites {outside}", file.display());
        }
    }
}

/// Files that may write SQL in Rust, and why.
const SQL_IN_RUST: [(&str, &str); 6] = [
    (
        "crates/postrunner-schema/",
        "the one home of SQL: migrations, definitions, statements, the migrator",
    ),
    (
        "src/backup/check.rs",
        "CREATE/DROP DATABASE of the check's scratch database: a name is no parameter",
    ),
    (
        "src/commands/mod.rs",
        "CREATE/DROP DATABASE of the demo's and benchmarks' database",
    ),
    (
        "src/commands/import.rs",
        "the multi-row INSERT of an import chunk, shaped by the file's columns and the chunk's nulls",
    ),
    (
        "src/commands/demo.rs",
        "the demo fabricates its workload, as the tests do",
    ),
    (
        "src/commands/bench/",
        "the benchmarks fabricate their workloads, as the tests do",
    ),
];

#[test]
fn runtime_code_runs_only_the_statements_of_the_schema_crate() {
    // Any statement run directly, not only one spelt as a literal: a constant or a
    // `format!` is SQL in Rust too.
    let call = regex::Regex::new(r"sqlx::(?:query(?:_as|_scalar|_with)?|raw_sql)\b").unwrap();
    let mut found = Vec::new();
    let mut scanned = 0;
    for file in text_files() {
        let relative = file.strip_prefix(root()).unwrap().to_string_lossy().into_owned();
        let runtime = relative.ends_with(".rs")
            && (relative.starts_with("src/") || relative.starts_with("crates/") && relative.contains("/src/"))
            && !relative.starts_with("crates/postrunner-test-db/")
            && !relative.ends_with("/testing.rs");
        if !runtime || SQL_IN_RUST.iter().any(|(path, _)| relative.starts_with(path)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests at the bottom of a file are tests.
        let code = text.split("#[cfg(test)]").next().unwrap();
        scanned += 1;
        for hit in call.find_iter(code) {
            let line = code[..hit.start()].lines().count();
            found.push(format!("{relative}:{line}"));
        }
    }
    assert!(scanned > 80, "scanned {scanned} files");
    assert!(
        found.is_empty(),
        "SQL written in Rust (make it a file under sql/statements/ in postrunner-schema):\n{}",
        found.join("\n")
    );
}
