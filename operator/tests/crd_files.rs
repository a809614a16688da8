//! The committed CRD YAML must be what `crdgen` prints today: `crds/restateclusters.yaml` for
//! kubectl and the Helm chart's template copy. Regenerate both with `make crds`.

use std::path::Path;
use std::process::Command;

fn crdgen_output() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_crdgen")).output().expect("crdgen runs");
    assert!(output.status.success(), "crdgen failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("crdgen prints UTF-8")
}

/// A file of the repository, by its path from the repository root.
fn committed(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {relative} ({e}): run `make crds` and commit the result"))
}

/// The first line where `committed` and `generated` differ, for the failure message.
fn first_difference(committed: &str, generated: &str) -> String {
    let mut committed_lines = committed.lines();
    let mut generated_lines = generated.lines();
    for number in 1.. {
        match (committed_lines.next(), generated_lines.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => return "only line endings differ".to_owned(),
            (a, b) => {
                return format!(
                    "line {number}: committed {:?}, crdgen {:?}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                )
            }
        }
    }
    unreachable!()
}

#[test]
fn committed_crd_yaml_matches_crdgen() {
    let generated = crdgen_output();
    assert_eq!(generated, restate_operator::crd::crd_yaml());
    for relative in ["crds/restateclusters.yaml", "charts/restate-operator/templates/crd-restateclusters.yaml"] {
        let text = committed(relative);
        assert!(
            text == generated,
            "{relative} is stale ({}): run `make crds` and commit the result",
            first_difference(&text, &generated)
        );
    }
}
