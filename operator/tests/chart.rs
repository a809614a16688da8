//! The Helm chart lints clean and renders: `python3 charts/lint.py` (strict lint against
//! Kubernetes 1.20, renders with default values and with `watchNamespaces: [a, b]`, bad
//! values refused). Needs the PyPI package `helm-python-sdk`; skipped, saying so, only when
//! `import helm_python` fails.

use std::path::PathBuf;
use std::process::Command;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn chart_lints_clean_and_renders() {
    let probe = Command::new("python3").args(["-c", "import helm_python"]).output();
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => {
            eprintln!(
                "SKIPPED chart_lints_clean_and_renders: `import helm_python` failed ({}); pip install helm-python-sdk",
                String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED chart_lints_clean_and_renders: no python3 to run charts/lint.py ({e})");
            return;
        }
    }
    let output = Command::new("python3")
        .arg("charts/lint.py")
        .current_dir(repository())
        .output()
        .expect("python3 runs charts/lint.py");
    assert!(
        output.status.success(),
        "charts/lint.py failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
