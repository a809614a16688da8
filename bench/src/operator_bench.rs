//! `make bench` (operator): the operator's resident memory while it manages ten
//! RestateClusters on the Kubernetes testbed (one node each, pods run as containers by the
//! test kubelet), against the 64 MiB budget, beside the kube-controller-manager of the same
//! testbed (the built-in controllers watching the same objects) measured in the same run.
//!
//! Needs a running testbed (`RESTATE_TESTBED_DIR`, `make bench` starts one) and the images
//! (`make images`); installs the operator with Helm like a user.

use std::time::{Duration, Instant};

use restate_bench::{memory_mib, record_summary};
use restate_e2e::kube_testbed::{container_of, wait_for, Kubelet, Testbed};
use restate_e2e::TestDir;

const CLUSTERS: usize = 10;
const BUDGET_MIB: f64 = 64.0;
const SAMPLE_FOR: Duration = Duration::from_secs(30);

fn repo_file(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

/// The host pid of the container running `namespace/pod`.
fn container_pid(namespace: &str, pod: &str) -> Option<u32> {
    let id = container_of(namespace, pod)?;
    let out = std::process::Command::new("docker").args(["inspect", "-f", "{{.State.Pid}}", &id]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|p| *p > 0)
}

fn testbed_pid(testbed: &Testbed, component: &str) -> Option<u32> {
    std::fs::read_to_string(testbed.dir.join(format!("{component}.pid"))).ok()?.trim().parse().ok()
}

fn main() {
    let testbed = Testbed::from_env();
    let dir = TestDir::new("operator-bench");
    let kubelet = Kubelet::start(&testbed, &dir);
    let install = testbed.helm(&[
        "install",
        "restate-operator",
        &repo_file("charts/restate-operator"),
        "--namespace",
        "restate-operator",
        "--set",
        "image.tag=dev",
    ]);
    assert!(install.status.success(), "helm install: {}", String::from_utf8_lossy(&install.stderr));
    let operator_pod = wait_for(
        "the operator's pod",
        Duration::from_secs(120),
        || {
            let pods = testbed.get_json(&["pods", "-n", "restate-operator"])?;
            let name = pods["items"].as_array()?.first()?["metadata"]["name"].as_str()?.to_owned();
            container_pid("restate-operator", &name).map(|_| name)
        },
        String::new,
    );

    let started = Instant::now();
    for i in 0..CLUSTERS {
        let ns = format!("bench-{i}");
        testbed.kubectl_ok(&["create", "namespace", &ns]);
        let manifest = format!(
            "apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: c{i}\nspec:\n  replicas: 1\n  \
             image: restate-cluster:dev\n  replication: 1\n  partitions: 2\n  storage:\n    size: 1Gi\n"
        );
        let out = testbed.kubectl(&["apply", "-n", &ns, "-f", "-"], Some(&manifest));
        assert!(out.status.success(), "apply c{i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    wait_for(
        "every cluster Ready and provisioned",
        Duration::from_secs(600),
        || {
            let all = testbed.get_json(&["restateclusters", "-A"])?;
            let ready = all["items"]
                .as_array()?
                .iter()
                .filter(|c| c["status"]["provisioned"] == true && c["status"]["readyNodes"] == 1)
                .count();
            (ready == CLUSTERS).then_some(())
        },
        || String::from_utf8_lossy(&testbed.kubectl(&["get", "restateclusters", "-A"], None).stdout).into_owned(),
    );
    let converged = started.elapsed();

    // Steady state: sample while the operator keeps reconciling all ten.
    let operator = container_pid("restate-operator", &operator_pod).expect("operator container pid");
    let mut samples = Vec::new();
    let until = Instant::now() + SAMPLE_FOR;
    while Instant::now() < until {
        samples.push(memory_mib(operator, "VmRSS:"));
        std::thread::sleep(Duration::from_secs(1));
    }
    let rss = samples.iter().copied().fold(0.0, f64::max);
    let peak = memory_mib(operator, "VmHWM:");
    let controller_manager = testbed_pid(&testbed, "kube-controller-manager").map_or(0.0, |p| memory_mib(p, "VmRSS:"));

    println!("\n## Operator memory ({CLUSTERS} RestateClusters, one node each, Kubernetes 1.20.2 testbed)\n");
    println!(
        "| process | RSS MiB (max over {}s) | peak RSS MiB | / {BUDGET_MIB:.0} MiB budget |",
        SAMPLE_FOR.as_secs()
    );
    println!("|---|---|---|---|");
    println!("| restate-operator | {rss:.1} | {peak:.1} | {:.2} |", peak / BUDGET_MIB);
    println!("| kube-controller-manager (peer, same objects) | {controller_manager:.1} | - | - |");
    println!(
        "\n{CLUSTERS} clusters provisioned and Ready {:.1} s after the first was applied.",
        converged.as_secs_f64()
    );
    record_summary(
        &format!("operator resident memory, {CLUSTERS} RestateClusters"),
        &format!("restate-operator peak {peak:.0} MiB"),
        &format!("budget {BUDGET_MIB:.0} MiB (kube-controller-manager {controller_manager:.0} MiB)"),
        peak / BUDGET_MIB,
        "peak RSS / budget",
    );
    if peak > BUDGET_MIB {
        println!("OVER BUDGET: the operator peaked at {peak:.1} MiB");
    }
    drop(kubelet);
}
