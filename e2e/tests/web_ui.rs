//! The web UI on the admin port, in a real browser (headless Chromium from Debian's
//! packages, driven by Selenium from PyPI: e2e/ui/ui_test.py): three nodes; the page
//! registers the example deployment (by keyboard), lists its services, finds an invocation
//! that suspended with its journal, kills it after an in-page confirmation, and shows the
//! cluster's nodes. Screenshots of each page stay in the test's directory (kept on failure,
//! or with RESTATE_E2E_KEEP_DIRS). API clients still get JSON from `GET /`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use restate_e2e::services::{ExampleServices, REPLICATED_WORKERS};
use restate_e2e::*;

#[test]
fn an_operator_registers_finds_and_kills_an_invocation_in_the_browser() {
    let dir = TestDir::new("web-ui");
    let mut nodes = replicated_cluster(&dir, "web-ui", &["n1", "n2", "n3"], &REPLICATED_WORKERS);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(&dir);

    // API clients keep their JSON; browsers are sent to /ui/.
    let (status, body) = http_get(nodes[1].ports.admin, "/").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("/ui/"), "{body}");
    let (status, page) = http_get(nodes[1].ports.admin, "/ui/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/ui/app.js\">"), "{page}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/ui_test.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--admin", &format!("http://127.0.0.1:{}", nodes[1].ports.admin)])
        .args(["--ingress", &format!("http://127.0.0.1:{}", nodes[2].ports.ingress)])
        .args(["--deployment", &services.uri])
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run python3 e2e/ui/ui_test.py (needs Debian's chromium and chromium-driver, PyPI selenium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    let shots = std::fs::read_dir(dir.path()).unwrap().filter_map(Result::ok);
    let shots = shots.filter(|e| e.file_name().to_string_lossy().ends_with(".png")).count();
    assert!(shots >= 7, "{shots} screenshots");
    wait_until("the killed invocation to be completed", Duration::from_secs(30), || {
        let (_, answer) = http_request(
            nodes[0].ports.admin,
            "POST",
            "/query",
            r#"{"query": "SELECT count(*) AS n FROM sys_invocation WHERE status = 'suspended'"}"#,
        )
        .unwrap();
        answer.contains("\"n\":0")
    });
}
