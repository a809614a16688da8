//! The operator on a real Kubernetes API server (v1.20.2), as a platform engineer uses it:
//! Helm installs the operator from `charts/`, `kubectl apply -f config/restatecluster-3.yaml`
//! makes a cluster that `kubectl get restateclusters` reports Ready and provisioned, the
//! seed's Greeter curl answers through a pod's ingress, growing to 5 nodes keeps the
//! counters, a killed container is reported Degraded then Ready, provisioning happened
//! once, bad manifests are refused without touching anything, and a cluster over three
//! zones keeps serving when one zone is lost (kubernetes/zones.rs).
//!
//! Needs the testbed (`make e2e` starts it: scripts/testbed/kube.sh) and the images
//! (`make e2e` builds them: scripts/images/build.sh); pods run as containers through the
//! test kubelet. Ignored by `cargo test` unless asked for (`make e2e` runs it).

use std::process::Command;
use std::time::Duration;

use restate_e2e::kube_testbed::{container_of, wait_for, Kubelet, Testbed};
use restate_e2e::*;

#[path = "kubernetes/zones.rs"]
mod zones;

const NS: &str = "default";
const OPERATOR_NS: &str = "restate-operator";

fn repo_file(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn cluster(testbed: &Testbed) -> serde_json::Value {
    testbed.get_json(&["restatecluster", "demo", "-n", NS]).unwrap_or_default()
}

/// Field `field` of condition `kind` in the cluster's status.
fn condition_field(cluster: &serde_json::Value, kind: &str, field: &str) -> Option<String> {
    cluster["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c[field].as_str().map(str::to_owned))
}

fn condition(cluster: &serde_json::Value, kind: &str) -> Option<String> {
    condition_field(cluster, kind, "status")
}

/// When condition `kind` last changed status (the operator moves it only on a change).
fn condition_changed_at(cluster: &serde_json::Value, kind: &str) -> Option<String> {
    condition_field(cluster, kind, "lastTransitionTime")
}

fn pod_ip(testbed: &Testbed, pod: &str) -> Option<String> {
    let pod = testbed.get_json(&["pod", pod, "-n", NS])?;
    pod["status"]["podIP"].as_str().filter(|ip| !ip.is_empty()).map(str::to_owned)
}

/// curl-like POST to `http://ip:port/path` from the host (pods' IPs are reachable on the
/// Docker bridge).
fn post(ip: &str, port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    curl_json(&format!("http://{ip}:{port}{path}"), body, &[], Duration::from_secs(30))
}

/// The node-port secret of cluster `name` (the Secret the operator made), written to a file
/// for restatectl's `--cluster-secret-file`.
fn cluster_secret_file(testbed: &Testbed, namespace: &str, name: &str) -> std::path::PathBuf {
    let secret = testbed.kubectl_ok(&[
        "get",
        "secret",
        &format!("{name}-cluster-secret"),
        "-n",
        namespace,
        "--template",
        "{{index .data \"cluster-secret\" | base64decode}}",
    ]);
    let file = testbed.dir.join(format!("{namespace}-{name}-cluster-secret"));
    std::fs::write(&file, secret).unwrap();
    file
}

/// `kubectl patch restatecluster demo --type merge -p <patch>`.
fn merge_patch(testbed: &Testbed, patch: &str) {
    testbed.kubectl_ok(&["patch", "restatecluster", "demo", "-n", NS, "--type", "merge", "-p", patch]);
}

/// How many Events on the cluster have `reason` (the recorder folds repeats into a count).
fn events_with_reason(testbed: &Testbed, reason: &str) -> u64 {
    events_in(testbed, NS, reason)
}

/// Waits (bounded) until at least `count` Events on RestateClusters of `namespace` have
/// `reason`: the operator publishes them right after the status that tells of them.
fn wait_for_events(testbed: &Testbed, namespace: &str, reason: &str, count: u64) {
    wait_for(
        &format!("{count} {reason} Event(s) in {namespace}"),
        Duration::from_secs(30),
        || (events_in(testbed, namespace, reason) >= count).then_some(()),
        || describe(testbed),
    );
}

/// How many Events on RestateClusters of `namespace` have `reason`.
fn events_in(testbed: &Testbed, namespace: &str, reason: &str) -> u64 {
    let Some(events) = testbed.get_json(&["events", "-n", namespace]) else { return 0 };
    events["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| e["reason"] == reason && e["involvedObject"]["kind"] == "RestateCluster")
                // Repeats of a reason are folded into one Event whose series counts them.
                .map(|e| e["series"]["count"].as_u64().or(e["count"].as_u64()).unwrap_or(1).max(1))
                .sum()
        })
        .unwrap_or(0)
}

fn describe(testbed: &Testbed) -> String {
    let rsc = testbed.kubectl(&["get", "restateclusters", "-A", "-o", "wide"], None);
    let pods = testbed.kubectl(&["get", "pods", "-A", "-o", "wide"], None);
    format!(
        "{}\n{}\n{:#}",
        String::from_utf8_lossy(&rsc.stdout),
        String::from_utf8_lossy(&pods.stdout),
        cluster(testbed)["status"]
    )
}

#[test]
#[ignore = "needs the Kubernetes testbed and images: run `make e2e`"]
fn operator_runs_a_cluster_on_kubernetes() {
    let testbed = Testbed::from_env();
    let dir = TestDir::new("kubernetes");
    let kubelet = Kubelet::start(&testbed, &dir);

    // Helm installs the operator (CRD, RBAC, Deployment) from the chart.
    let install = testbed.helm(&[
        "install",
        "restate-operator",
        &repo_file("charts/restate-operator"),
        "--namespace",
        OPERATOR_NS,
        "--set",
        "image.tag=dev",
    ]);
    assert!(install.status.success(), "helm install failed: {}", String::from_utf8_lossy(&install.stderr));
    wait_for(
        "the operator's pod to be ready",
        Duration::from_secs(120),
        || {
            let pods = testbed.get_json(&["pods", "-n", OPERATOR_NS])?;
            pods["items"]
                .as_array()?
                .iter()
                .any(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
                .then_some(())
        },
        || describe(&testbed),
    );

    // A malformed manifest is refused before anything exists.
    let bad_replicas = testbed.kubectl(
        &["apply", "-f", "-"],
        Some("apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: bad\nspec:\n  replicas: 0\n  image: x\n  storage:\n    size: 1Gi\n"),
    );
    let stderr = String::from_utf8_lossy(&bad_replicas.stderr);
    assert!(!bad_replicas.status.success(), "replicas 0 was accepted");
    assert!(stderr.contains("spec.replicas"), "the error names the field: {stderr}");

    // The user's manifest, as in the README.
    testbed.kubectl_ok(&["apply", "-n", NS, "-f", &repo_file("config/restatecluster-3.yaml")]);
    let ready = wait_for(
        "3 nodes ready and provisioned",
        Duration::from_secs(300),
        || {
            let c = cluster(&testbed);
            let s = &c["status"];
            (s["readyNodes"] == 3 && s["provisioned"] == true && condition(&c, "Ready").as_deref() == Some("True"))
                .then_some(c)
        },
        || describe(&testbed),
    );
    assert_eq!(ready["status"]["logReplication"], 2, "{:#}", ready["status"]);
    let table = testbed.kubectl_ok(&["get", "restateclusters", "-n", NS]);
    eprintln!("{table}");
    let row = table.lines().find(|l| l.starts_with("demo")).expect("demo in kubectl get restateclusters");
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &columns[1..6],
        &["Running", "3", "3", "true", "2"],
        "NAME PHASE NODES READY PROVISIONED REPLICATION: {row}"
    );

    // The example services, registered once; the seed's curl through a pod's ingress.
    let services = format!("restate-e2e-services-{}", std::process::id());
    let started = Command::new("docker")
        .args(["run", "-d", "--rm", "--name", &services, "--network", &testbed.network])
        .args(["--network-alias", "services", "restate-example-services:dev"])
        .output()
        .expect("docker run");
    assert!(started.status.success(), "example services: {}", String::from_utf8_lossy(&started.stderr));
    let _services = ContainerGuard(services);
    let ip0 = pod_ip(&testbed, "demo-0").expect("demo-0 has an IP");
    let register = Command::new(bin("restate"))
        .args(["--admin-url", &format!("http://{ip0}:9070"), "dp", "register", "http://services:9080", "--yes"])
        .output()
        .expect("restate dp register");
    assert!(register.status.success(), "register: {}", String::from_utf8_lossy(&register.stderr));
    let greeting = wait_for(
        "the Greeter to answer through demo-1's ingress",
        Duration::from_secs(60),
        || {
            let ip = pod_ip(&testbed, "demo-1")?;
            post(&ip, 8080, "/Greeter/greet", "\"Sarah\"").filter(|(s, _)| *s == 200).map(|(_, b)| b)
        },
        || describe(&testbed),
    );
    assert!(greeting.contains("Sarah"), "{greeting}");
    for i in 0..8 {
        let ip = pod_ip(&testbed, &format!("demo-{}", i % 3)).unwrap();
        let added = wait_for(
            "a counter add",
            Duration::from_secs(60),
            || post(&ip, 8080, &format!("/Counter/k8s-{i}/add"), "7").filter(|(s, _)| *s == 200),
            || describe(&testbed),
        );
        assert_eq!(added.1.trim(), "7");
    }

    // Grow to 5: two pods join, 5 metadata members, replication as the spec asks.
    merge_patch(&testbed, r#"{"spec":{"replicas":5,"replication":3}}"#);
    let mut phases = std::collections::BTreeSet::new();
    let grown = wait_for(
        "5 nodes ready, 5 metadata members, replication 3",
        Duration::from_secs(300),
        || {
            let c = cluster(&testbed);
            let s = &c["status"];
            phases.insert(s["phase"].as_str().unwrap_or_default().to_owned());
            let members = s["metadataMembers"].as_array().map_or(0, Vec::len);
            (s["readyNodes"] == 5
                && members == 5
                && s["logReplication"] == 3
                && condition(&c, "Ready").as_deref() == Some("True"))
            .then_some(c)
        },
        || describe(&testbed),
    );
    assert_eq!(condition(&grown, "ReplicationPending").as_deref(), Some("False"), "{:#}", grown["status"]);
    // A scale-out is no failure: Scaling (with Normal Events) until done, never Degraded.
    assert!(phases.contains("Scaling") && !phases.contains("Degraded"), "phases seen: {phases:?}");
    wait_for_events(&testbed, NS, "ScalingStarted", 1);
    assert_eq!(events_with_reason(&testbed, "Degraded"), 0, "no Degraded Event for a scale-out");
    for i in 0..8 {
        let ip = pod_ip(&testbed, &format!("demo-{}", 3 + i % 2)).unwrap();
        let added = wait_for(
            "a counter add through a new pod",
            Duration::from_secs(60),
            || post(&ip, 8080, &format!("/Counter/k8s-{i}/add"), "1").filter(|(s, _)| *s == 200),
            || describe(&testbed),
        );
        assert_eq!(added.1.trim(), "8", "counter k8s-{i} kept its state across the scale-out");
    }

    // A killed container: Degraded, then Ready again once the kubelet restarted it. The
    // restart can be quick (1 s back-off, then the readiness probe), so a Degraded that came
    // and went between two looks counts too: its condition changed status after the kill
    // (the transition time moves only on a change, and the recovery is seconds later).
    let degraded_before = condition_changed_at(&cluster(&testbed), "Degraded");
    let victim = container_of(NS, "demo-2").expect("demo-2's container");
    assert!(Command::new("docker").args(["kill", &victim]).status().unwrap().success());
    wait_for(
        "the operator to report Degraded",
        Duration::from_secs(60),
        || {
            let c = cluster(&testbed);
            let reported = condition(&c, "Degraded").as_deref() == Some("True")
                || condition_changed_at(&c, "Degraded") != degraded_before;
            reported.then_some(())
        },
        || describe(&testbed),
    );
    let ip = pod_ip(&testbed, "demo-0").unwrap();
    let during = post(&ip, 8080, "/Counter/k8s-0/add", "1");
    assert_eq!(during.map(|(s, b)| (s, b.trim().to_owned())), Some((200, "9".to_owned())), "available meanwhile");
    wait_for(
        "the operator to report Ready again",
        Duration::from_secs(180),
        || {
            let c = cluster(&testbed);
            (condition(&c, "Ready").as_deref() == Some("True") && condition(&c, "Degraded").as_deref() == Some("False"))
                .then_some(())
        },
        || describe(&testbed),
    );

    // Provisioned exactly once: one node logged it, once.
    let provisions: usize =
        (0..5).map(|i| kubelet.pod_logs(NS, &format!("demo-{i}")).matches("cluster provisioned").count()).sum();
    assert_eq!(provisions, 1, "provisioning must happen exactly once");

    // Back to 3 with replication 2: demo-3 and demo-4 are drained first, then the
    // StatefulSet shrinks, the nodes are removed and their volume claims deleted.
    merge_patch(&testbed, r#"{"spec":{"replicas":3,"replication":2}}"#);
    wait_for(
        "the scale-in to 3: drained, shrunk, nodes removed, claims of demo-3/4 deleted",
        Duration::from_secs(300),
        || {
            let c = cluster(&testbed);
            let s = &c["status"];
            let claims = testbed.get_json(&["pvc", "-n", NS])?;
            let names: Vec<&str> =
                claims["items"].as_array()?.iter().filter_map(|c| c["metadata"]["name"].as_str()).collect();
            (s["readyNodes"] == 3
                && s["logReplication"] == 2
                && s["metadataMembers"].as_array().map_or(0, Vec::len) == 3
                && condition(&c, "Ready").as_deref() == Some("True")
                && !names.contains(&"data-demo-3")
                && !names.contains(&"data-demo-4")
                && names.contains(&"data-demo-2"))
            .then_some(())
        },
        || describe(&testbed),
    );
    let ip = pod_ip(&testbed, "demo-1").unwrap();
    for i in 0..8 {
        let added = wait_for(
            "a counter add after the scale-in",
            Duration::from_secs(60),
            || post(&ip, 8080, &format!("/Counter/k8s-{i}/add"), "0").filter(|(s, _)| *s == 200),
            || describe(&testbed),
        );
        let expected = if i == 0 { "9" } else { "8" };
        assert_eq!(added.1.trim(), expected, "counter k8s-{i} kept its state across the scale-in");
    }
    // The node port needs the cluster's secret (the Secret the operator made): refused
    // without it, answered with it.
    let refused = Command::new(bin("restatectl"))
        .args(["--address", &format!("http://{ip}:5122"), "nodes", "list"])
        .output()
        .expect("restatectl nodes list");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("requires the cluster secret"), "{stderr}");
    let secret_file = cluster_secret_file(&testbed, NS, "demo");
    let nodes = Command::new(bin("restatectl"))
        .args(["--address", &format!("http://{ip}:5122"), "nodes", "list", "--json"])
        .arg("--cluster-secret-file")
        .arg(&secret_file)
        .output()
        .expect("restatectl nodes list");
    let listed: serde_json::Value = serde_json::from_slice(&nodes.stdout).unwrap_or_default();
    assert_eq!(listed["nodes"].as_array().map_or(0, Vec::len), 3, "the drained nodes were removed: {listed:#}");

    // Below what replication 2 needs (3 nodes): refused, the StatefulSet keeps its size.
    merge_patch(&testbed, r#"{"spec":{"replicas":2}}"#);
    let refused = wait_for(
        "the scale-in to 2 to be refused",
        Duration::from_secs(60),
        || {
            let c = cluster(&testbed);
            let scaling = c["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Scaling")?.clone();
            (scaling["reason"] == "ScaleInRefused").then_some(scaling)
        },
        || describe(&testbed),
    );
    assert!(refused["message"].as_str().unwrap_or_default().contains("needs 3"), "{refused:#}");
    let sts = testbed.get_json(&["statefulset", "demo", "-n", NS]).unwrap();
    assert_eq!(sts["spec"]["replicas"], 3, "a refused scale-in keeps the StatefulSet");
    merge_patch(&testbed, r#"{"spec":{"replicas":3}}"#);

    // A spec.config that is not TOML, or that the node would refuse: ConfigInvalid naming
    // the problem, a Warning Event, and nothing rolled out.
    let template_generation =
        || testbed.get_json(&["statefulset", "demo", "-n", NS]).unwrap()["metadata"]["generation"].clone();
    let before = template_generation();
    for (config, says) in [("roles = [", "TOML"), ("rocksdb-total-memory-size = \"lots\"", "rocksdb-total-memory-size")]
    {
        let patch = serde_json::json!({ "spec": { "config": config } }).to_string();
        merge_patch(&testbed, &patch);
        let generation = cluster(&testbed)["metadata"]["generation"].clone();
        let message = wait_for(
            "ConfigInvalid for the new generation",
            Duration::from_secs(60),
            || {
                let c = cluster(&testbed);
                (c["status"]["observedGeneration"] == generation
                    && condition(&c, "ConfigInvalid").as_deref() == Some("True"))
                .then(|| condition_field(&c, "ConfigInvalid", "message").unwrap_or_default())
            },
            || describe(&testbed),
        );
        assert!(message.contains(says), "{config}: {message}");
        assert_eq!(template_generation(), before, "{config}: nothing rolled out");
    }
    wait_for_events(&testbed, NS, "ConfigInvalid", 2); // a Warning Event per bad generation
    testbed.kubectl_ok(&[
        "patch",
        "restatecluster",
        "demo",
        "-n",
        NS,
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/spec/config"}]"#,
    ]);
    wait_for(
        "ConfigInvalid to clear",
        Duration::from_secs(60),
        || (condition(&cluster(&testbed), "ConfigInvalid").as_deref() == Some("False")).then_some(()),
        || describe(&testbed),
    );
    // A valid config change rolls the pods one at a time: Upgrading, never Degraded.
    let revision_before =
        testbed.get_json(&["statefulset", "demo", "-n", NS]).unwrap()["status"]["updateRevision"].clone();
    let patch = serde_json::json!({ "spec": { "config": "[worker]\nidempotency-retention = \"12h\"\n" } }).to_string();
    merge_patch(&testbed, &patch);
    let mut phases = std::collections::BTreeSet::new();
    wait_for(
        "the config change to roll through the pods and the cluster to be Ready",
        Duration::from_secs(300),
        || {
            let c = cluster(&testbed);
            phases.insert(c["status"]["phase"].as_str().unwrap_or_default().to_owned());
            let sts = testbed.get_json(&["statefulset", "demo", "-n", NS])?;
            // Rolled only once the StatefulSet controller has seen the new template (its
            // status is about this generation, under a new revision) and every pod runs it:
            // right after the operator's apply, the old status still says "all updated".
            let rolled = sts["status"]["observedGeneration"] == sts["metadata"]["generation"]
                && sts["status"]["updateRevision"] != revision_before
                && sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
                && sts["status"]["updatedReplicas"] == 3;
            (rolled
                && template_generation() != before
                && c["status"]["observedGeneration"] == c["metadata"]["generation"]
                && c["status"]["phase"] == "Running"
                && condition(&c, "Ready").as_deref() == Some("True"))
            .then_some(())
        },
        || describe(&testbed),
    );
    assert!(phases.contains("Upgrading") && !phases.contains("Degraded"), "phases seen: {phases:?}");
    wait_for_events(&testbed, NS, "UpgradeStarted", 1);

    // A new image tag under load: pods restart one at a time, highest first, each after its
    // leaderships moved; no acknowledged idempotent add is lost, none fails after retries.
    let tagged = Command::new("docker").args(["tag", "restate-cluster:dev", "restate-cluster:dev2"]).status();
    assert!(tagged.is_ok_and(|s| s.success()), "docker tag restate-cluster:dev2");
    let uid = |pod: &str| testbed.get_json(&["pod", pod, "-n", NS]).map(|p| p["metadata"]["uid"].clone());
    // The uids of pods demo-0 .. demo-(n-1): a restarted pod has a new one.
    let uids = |n: usize| (0..n).map(|i| uid(&format!("demo-{i}"))).collect::<Vec<_>>();
    let uids_before = uids(3);
    let steps_before = events_with_reason(&testbed, "UpgradeStep");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let (kubectl, kubeconfig) = (testbed.kubectl.clone(), testbed.kubeconfig.clone());
        // Pods get a new address when they restart: ask for it on every attempt.
        let ip_of = move |i: usize| {
            let out = Command::new(&kubectl)
                .env("KUBECONFIG", &kubeconfig)
                .args(["get", "pod", &format!("demo-{i}"), "-n", NS, "-o", "jsonpath={.status.podIP}"])
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|ip| !ip.is_empty())
        };
        std::thread::spawn(move || {
            let (mut acknowledged, mut failed) = (0u64, Vec::new());
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let key = format!("upgrade-add-{n}");
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let mut attempt = n;
                loop {
                    let answer = ip_of(attempt % 3).and_then(|ip| {
                        let url = format!("http://{ip}:8080/Counter/upgrade/add");
                        curl_json(&url, "1", &[("idempotency-key", key.as_str())], Duration::from_secs(10))
                    });
                    if answer.as_ref().is_some_and(|(status, _)| *status == 200) {
                        acknowledged += 1;
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        failed.push(format!("{key}: {answer:?}"));
                        break;
                    }
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                n += 1;
            }
            (acknowledged, failed)
        })
    };
    merge_patch(&testbed, r#"{"spec":{"image":"restate-cluster:dev2"}}"#);
    let mut restart_order: Vec<usize> = Vec::new();
    let mut phases = std::collections::BTreeSet::new();
    let upgraded = wait_for(
        "every pod on restate-cluster:dev2, one at a time, and the cluster Ready",
        Duration::from_secs(600),
        || {
            let c = cluster(&testbed);
            phases.insert(c["status"]["phase"].as_str().unwrap_or_default().to_owned());
            for (i, before) in uids_before.iter().enumerate() {
                if !restart_order.contains(&i) && uid(&format!("demo-{i}")).is_some_and(|now| Some(now) != *before) {
                    restart_order.push(i);
                }
            }
            let s = &c["status"];
            (restart_order.len() == 3
                && s["currentImage"] == "restate-cluster:dev2"
                && s["updatedNodes"] == 3
                && condition(&c, "Ready").as_deref() == Some("True"))
            .then_some(c)
        },
        || describe(&testbed),
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, failed) = load.join().unwrap();
    assert!(failed.is_empty(), "requests failed after their retries: {failed:?}");
    assert!(acknowledged > 0, "the load ran");
    assert_eq!(restart_order, [2, 1, 0], "highest ordinal first");
    assert!(!phases.contains("Degraded"), "phases seen: {phases:?}");
    wait_for_events(&testbed, NS, "UpgradeStep", steps_before + 3);
    let ip = pod_ip(&testbed, "demo-0").unwrap();
    let count = wait_for(
        "the counter's value",
        Duration::from_secs(60),
        || post(&ip, 8080, "/Counter/upgrade/get", "").filter(|(s, _)| *s == 200),
        || describe(&testbed),
    );
    assert_eq!(count.1.trim(), acknowledged.to_string(), "every acknowledged add counted once");
    assert_eq!(condition(&upgraded, "UpgradeStalled").as_deref(), Some("False"));

    // An image whose pod never becomes ready (it passes the storage-format check, then its
    // node exits at every start) stops the roll after that one pod.
    derived_image(
        "restate-cluster:broken",
        "USER root\nRUN mv /usr/local/bin/restate-server /usr/local/bin/restate-server.real\n\
         COPY restate-server /usr/local/bin/restate-server\nUSER restate\n",
        &[("restate-server", BROKEN_SERVER.as_bytes())],
    );
    let uids_before = uids(2);
    merge_patch(&testbed, r#"{"spec":{"image":"restate-cluster:broken"}}"#);
    let stalled = wait_for(
        "UpgradeStalled naming demo-2",
        Duration::from_secs(400),
        || {
            let c = cluster(&testbed);
            (condition(&c, "UpgradeStalled").as_deref() == Some("True"))
                .then(|| condition_field(&c, "UpgradeStalled", "message").unwrap_or_default())
        },
        || describe(&testbed),
    );
    assert!(stalled.contains("demo-2"), "{stalled}");
    assert_eq!(uids(2), uids_before, "no other pod restarted");
    wait_for_events(&testbed, NS, "UpgradeStalled", 1);
    merge_patch(&testbed, r#"{"spec":{"image":"restate-cluster:dev2"}}"#);
    wait_for(
        "the fixed image to bring demo-2 back and the cluster Ready",
        Duration::from_secs(300),
        || {
            let c = cluster(&testbed);
            (condition(&c, "Ready").as_deref() == Some("True")
                && condition(&c, "UpgradeStalled").as_deref() == Some("False"))
            .then_some(())
        },
        || describe(&testbed),
    );

    // The previous release's binary reads an older storage format than the cluster's data:
    // the roll to it is refused before any pod restarts, and lifted by going back.
    let previous = std::env::var("RESTATE_PREVIOUS_SERVER")
        .expect("RESTATE_PREVIOUS_SERVER: the previous release's restate-server (make e2e-kube sets it)");
    let previous = std::fs::read(&previous).unwrap_or_else(|e| panic!("reading {previous}: {e}"));
    derived_image(
        "restate-cluster:previous",
        "COPY restate-server /usr/local/bin/restate-server\n",
        &[("restate-server", &previous)],
    );
    let uids_before = uids(3);
    merge_patch(&testbed, r#"{"spec":{"image":"restate-cluster:previous"}}"#);
    let refused = wait_for(
        "UpgradeRefused naming the previous image",
        Duration::from_secs(180),
        || {
            let c = cluster(&testbed);
            (condition(&c, "UpgradeRefused").as_deref() == Some("True"))
                .then(|| condition_field(&c, "UpgradeRefused", "message").unwrap_or_default())
        },
        || describe(&testbed),
    );
    assert!(
        refused.contains("spec.image restate-cluster:previous") && refused.contains("storage format 2"),
        "{refused}"
    );
    assert!(refused.contains("back to restate-cluster:dev2"), "{refused}");
    wait_for_events(&testbed, NS, "UpgradeRefused", 1);
    let c = cluster(&testbed);
    assert_eq!(c["status"]["storageFormatCheck"]["passed"], false, "{:#}", c["status"]);
    assert_eq!(c["status"]["phase"], "Running", "a refused image is no roll: {:#}", c["status"]);
    assert_eq!(uids(3), uids_before, "no pod restarted");
    let sts = testbed.get_json(&["statefulset", "demo", "-n", NS]).unwrap();
    assert_eq!(sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 3, "the roll holds at every pod");
    wait_for(
        "the check's Job removed once answered",
        Duration::from_secs(60),
        || testbed.get_json(&["job", "demo-storage-check", "-n", NS]).is_none().then_some(()),
        || describe(&testbed),
    );
    merge_patch(&testbed, r#"{"spec":{"image":"restate-cluster:dev2"}}"#);
    wait_for(
        "UpgradeRefused False and the cluster Ready on restate-cluster:dev2",
        Duration::from_secs(120),
        || {
            let c = cluster(&testbed);
            (condition(&c, "UpgradeRefused").as_deref() == Some("False")
                && condition(&c, "Ready").as_deref() == Some("True")
                && c["status"]["currentImage"] == "restate-cluster:dev2")
                .then_some(())
        },
        || describe(&testbed),
    );
    assert_eq!(uids(3), uids_before, "no pod restarted");

    // A node count no cluster runs is refused by the schema; Phase is a column.
    let huge = testbed.kubectl(
        &["patch", "restatecluster", "demo", "-n", NS, "--type", "merge", "-p", r#"{"spec":{"replicas":10000}}"#],
        None,
    );
    let stderr = String::from_utf8_lossy(&huge.stderr);
    assert!(!huge.status.success() && stderr.contains("replicas") && stderr.contains("128"), "{stderr}");
    let listed = testbed.kubectl_ok(&["get", "rsc", "-n", NS]);
    assert!(listed.lines().next().unwrap_or_default().contains("PHASE"), "{listed}");

    // An unknown field is refused; replication 3 on 3 nodes is accepted as ReplicationPending.
    let generation = cluster(&testbed)["metadata"]["generation"].clone();
    let unknown = testbed.kubectl(
        &["apply", "-f", "-"],
        Some("apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: demo\n  namespace: default\nspec:\n  replicas: 5\n  image: restate-cluster:dev\n  replicaz: 3\n  storage:\n    size: 1Gi\n"),
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success(), "an unknown field was accepted");
    assert!(stderr.contains("replicaz"), "the error names the field: {stderr}");
    assert_eq!(cluster(&testbed)["metadata"]["generation"], generation, "the refused manifest changed nothing");
    testbed.kubectl_ok(&["create", "namespace", "pending"]);
    let _ = testbed.kubectl(
        &["apply", "-n", "pending", "-f", "-"],
        Some("apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: pending\nspec:\n  replicas: 3\n  image: restate-cluster:dev\n  replication: 3\n  storage:\n    size: 1Gi\n"),
    );
    wait_for(
        "ReplicationPending on replication 3 with 3 nodes",
        Duration::from_secs(60),
        || {
            let c = testbed.get_json(&["restatecluster", "pending", "-n", "pending"])?;
            (condition(&c, "ReplicationPending").as_deref() == Some("True")).then_some(())
        },
        || format!("{:#}", testbed.get_json(&["restatecluster", "pending", "-n", "pending"]).unwrap_or_default()),
    );
    testbed.kubectl_ok(&["delete", "namespace", "pending", "--wait=false"]);

    // Disks that grow: a one-node cluster on a StorageClass that allows expansion. A larger
    // size patches the claim and re-creates the StatefulSet around the running pod (not
    // restarted); a smaller size or another class is refused with a condition.
    testbed.kubectl_ok(&["create", "namespace", "disks"]);
    let _ = testbed.kubectl(
        &["apply", "-f", "-"],
        Some("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: expandable\nprovisioner: restate-testbed/hostpath\nallowVolumeExpansion: true\n"),
    );
    let _ = testbed.kubectl(
        &["apply", "-n", "disks", "-f", "-"],
        Some("apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: disks\nspec:\n  replicas: 1\n  image: restate-cluster:dev\n  imagePullPolicy: IfNotPresent\n  partitions: 2\n  storage:\n    size: 1Gi\n    storageClassName: expandable\n"),
    );
    let disks = || testbed.get_json(&["restatecluster", "disks", "-n", "disks"]).unwrap_or_default();
    let pod_uid = || testbed.get_json(&["pod", "disks-0", "-n", "disks"]).map(|p| p["metadata"]["uid"].clone());
    wait_for(
        "the one-node cluster on class expandable to be Ready",
        Duration::from_secs(180),
        || (condition(&disks(), "Ready").as_deref() == Some("True")).then_some(()),
        || format!("{:#}", disks()["status"]),
    );
    let uid = pod_uid();
    let patch_disks = |patch: &str| {
        testbed.kubectl_ok(&["patch", "restatecluster", "disks", "-n", "disks", "--type", "merge", "-p", patch]);
    };
    patch_disks(r#"{"spec":{"storage":{"size":"2Gi"}}}"#);
    wait_for(
        "the claim and the StatefulSet's template to grow to 2Gi, the pod kept",
        Duration::from_secs(120),
        || {
            let claim = testbed.get_json(&["pvc", "data-disks-0", "-n", "disks"])?;
            let sts = testbed.get_json(&["statefulset", "disks", "-n", "disks"])?;
            let template = &sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"];
            (claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
                && template == "2Gi"
                && sts["status"]["readyReplicas"] == 1
                && condition(&disks(), "Ready").as_deref() == Some("True"))
            .then_some(())
        },
        || format!("{:#}", disks()["status"]),
    );
    assert_eq!(pod_uid(), uid, "the running pod was adopted, not restarted");
    wait_for_events(&testbed, "disks", "VolumesGrown", 1);
    for (patch, field) in [
        (r#"{"spec":{"storage":{"size":"512Mi"}}}"#, "spec.storage.size"),
        (r#"{"spec":{"storage":{"size":"-1Gi"}}}"#, "spec.storage.size"),
        (r#"{"spec":{"storage":{"size":"2Gi","storageClassName":"other"}}}"#, "spec.storage.storageClassName"),
    ] {
        patch_disks(patch);
        let generation = disks()["metadata"]["generation"].clone();
        let message = wait_for(
            "the storage change to be refused",
            Duration::from_secs(60),
            || {
                let c = disks();
                (c["status"]["observedGeneration"] == generation
                    && condition(&c, "ConfigInvalid").as_deref() == Some("True"))
                .then(|| condition_field(&c, "ConfigInvalid", "message").unwrap_or_default())
            },
            || format!("{:#}", disks()["status"]),
        );
        assert!(message.contains(field), "{patch}: {message}");
        let sts = testbed.get_json(&["statefulset", "disks", "-n", "disks"]).unwrap();
        assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "2Gi");
    }
    testbed.kubectl_ok(&["delete", "namespace", "disks", "--wait=false"]);

    // Deleting the cluster keeps its volume claims (the spec does not ask otherwise).
    testbed.kubectl_ok(&["delete", "restatecluster", "demo", "-n", NS, "--wait=false"]);
    wait_for(
        "the RestateCluster and its pods to be gone, the claims kept",
        Duration::from_secs(180),
        || {
            let gone = testbed.get_json(&["restatecluster", "demo", "-n", NS]).is_none();
            let pods = testbed.get_json(&["pods", "-n", NS])?;
            let claims = testbed.get_json(&["pvc", "-n", NS])?;
            (gone && pods["items"].as_array()?.is_empty() && claims["items"].as_array()?.len() == 3).then_some(())
        },
        || describe(&testbed),
    );

    zones::zones_keep_the_cluster_serving(&testbed, &dir);
    drop(kubelet);
}

/// `restate-server` of the broken image: it answers the operator's storage-format check as
/// the real one does, and exits at every other start.
const BROKEN_SERVER: &str = "#!/bin/sh\n\
    if [ \"$1\" = --check-storage-format ]; then exec /usr/local/bin/restate-server.real \"$@\"; fi\n\
    echo 'error: this image is broken on purpose (kubernetes e2e)' >&2\nexit 1\n";

/// Builds `image` from restate-cluster:dev plus `dockerfile` lines, with `files` (name,
/// contents; made executable) in the build context.
fn derived_image(image: &str, dockerfile: &str, files: &[(&str, &[u8])]) {
    use std::os::unix::fs::PermissionsExt;
    let context =
        std::env::temp_dir().join(format!("restate-e2e-image-{}-{}", std::process::id(), image.replace(':', "-")));
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), format!("FROM restate-cluster:dev\n{dockerfile}")).unwrap();
    for (name, contents) in files {
        let path = context.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let built = Command::new("docker").args(["build", "-q", "-t", image]).arg(&context).output().expect("docker build");
    let _ = std::fs::remove_dir_all(&context);
    assert!(built.status.success(), "docker build {image}: {}", String::from_utf8_lossy(&built.stderr));
}

/// Removes a container started by the test.
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}
