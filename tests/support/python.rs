//! Running the tests' Python helpers (tests/support/*.py: independent code, from the
//! libraries in tests/support/requirements.txt that bin/setup installs): JSON in on
//! stdin, JSON out on stdout.

use serde_json::Value;

/// Runs `tests/support/<script>` with `request`; its JSON answer.
pub fn run(script: &str, request: &Value) -> Value {
    use std::io::Write as _;
    let path = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new("python3")
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (bin/setup installs tests/support/requirements.txt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
