//! Maps that must match the code (issue 18, part 6): sql/README.md's table of definition
//! files, in the order `migrate` applies them; the module map of src/lib.rs; README's
//! table of commands; and every test a comment or document cites (a path under tests/,
//! and the test's name where one is given) must exist. Nothing cites a file outside the
//! repository.

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
    for dir in ["src", "sql", "migrations", "tests", "docs", "bin", "deploy", ".ci"] {
        if root().join(dir).exists() {
            walk(&root().join(dir), &mut files);
        }
    }
    files.extend(["README.md", "Cargo.toml", "docker-compose.yml"].map(|f| root().join(f)));
    files
}

#[test]
fn sql_readme_lists_every_definition_file_in_the_order_migrate_applies_them() {
    let readme = read("sql/README.md");
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
    let applied: Vec<&str> = postrunner::db::definitions::DEFINITIONS
        .iter()
        .map(|d| d.file)
        .collect();
    assert_eq!(listed, applied, "sql/README.md against src/db/definitions.rs");
}

#[test]
fn the_module_map_of_lib_rs_names_every_module() {
    let lib = read("src/lib.rs");
    let map: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    assert!(modules.len() > 15, "{modules:?}");
    for module in modules {
        assert!(
            map.contains(&format!("[`{module}`]")),
            "src/lib.rs's map misses `{module}`"
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
        found.push((format!("tests/{file}.rs"), name));
    }
    found
}

#[test]
fn every_cited_test_exists() {
    let mut checked = 0;
    for file in text_files() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (cited, name) in citations(&text) {
            let path = root().join(&cited);
            assert!(path.exists(), "{} cites {cited}, which does not exist", file.display());
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
