//! Zones: three test kubelets play Kubernetes nodes in zones a, b and c of region
//! "testbed". A 5-node cluster with replication `{zone: 2, node: 3}` gets every pod's
//! location from its node's topology labels, places every nodeset over the zones (at most 2
//! of 5 members in one zone), and keeps serving when every pod of one zone is lost. Bad
//! replication properties are refused with a condition naming `spec.replication`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use restate_e2e::kube_testbed::{wait_for, Kubelet, Testbed};
use restate_e2e::{bin, curl_json, TestDir};

use super::condition;

const NS: &str = "zones";
const ZONES: [&str; 3] = ["a", "b", "c"];

fn zoned(testbed: &Testbed) -> serde_json::Value {
    testbed.get_json(&["restatecluster", "zoned", "-n", NS]).unwrap_or_default()
}

fn patch(testbed: &Testbed, replication: &str) {
    let body = serde_json::json!({ "spec": { "replication": replication } }).to_string();
    testbed.kubectl_ok(&["patch", "restatecluster", "zoned", "-n", NS, "--type", "merge", "-p", &body]);
}

/// Pod name -> (Kubernetes node, pod IP) for the cluster's pods that have both.
fn pods(testbed: &Testbed) -> BTreeMap<String, (String, String)> {
    let Some(list) = testbed.get_json(&["pods", "-n", NS]) else { return BTreeMap::new() };
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["metadata"]["name"].as_str()?.to_owned();
            let node = p["spec"]["nodeName"].as_str()?.to_owned();
            let ip = p["status"]["podIP"].as_str().filter(|ip| !ip.is_empty())?.to_owned();
            Some((name, (node, ip)))
        })
        .collect()
}

fn restatectl(ip: &str, secret: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin("restatectl"))
        .args(["--address", &format!("http://{ip}:5122"), "--cluster-secret-file"])
        .arg(secret)
        .args(args)
        .output()
        .expect("run restatectl")
}

/// How many partitions the node at `ip` leads (asked of it directly: the host cannot resolve
/// the nodes' advertised names, which `restatectl partitions list` follows).
fn partitions_led(ip: &str, secret: &Path) -> usize {
    use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, ListPartitionProcessorsRequest};
    let secret = restate_proto::credentials::ClusterSecret::from_file(secret).expect("the cluster secret");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{ip}:5122")).unwrap().connect().await
        else {
            return 0;
        };
        let mut client = NodeCtlClient::new(restate_proto::channel::with_secret(channel, Some(secret)));
        client
            .list_partition_processors(ListPartitionProcessorsRequest {})
            .await
            .map_or(0, |r| r.into_inner().processors.iter().filter(|p| p.mode == "leader").count())
    })
}

fn describe(testbed: &Testbed) -> String {
    let pods = testbed.kubectl(&["get", "pods", "-n", NS, "-o", "wide"], None);
    format!("{}\nstatus: {:#}", String::from_utf8_lossy(&pods.stdout), zoned(testbed)["status"])
}

pub fn zones_keep_the_cluster_serving(testbed: &Testbed, dir: &TestDir) {
    let started = std::time::Instant::now();
    let phase = |what: &str| eprintln!("zones: {what} after {:.1} s", started.elapsed().as_secs_f64());
    let mut kubelets: Vec<Kubelet> = ZONES
        .iter()
        .map(|zone| {
            let node = format!("testbed-zone-{zone}");
            Kubelet::start_node(
                testbed,
                dir,
                &node,
                &[("topology.kubernetes.io/region", "testbed"), ("topology.kubernetes.io/zone", zone)],
            )
        })
        .collect();
    testbed.kubectl_ok(&["create", "namespace", NS]);
    // Claims wait for their pod's node (the kubelet of that node provisions them).
    let _ = testbed.kubectl(
        &["apply", "-f", "-"],
        Some("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: zonal\nprovisioner: restate-testbed/hostpath\nvolumeBindingMode: WaitForFirstConsumer\n"),
    );

    // An unknown scope: refused with a condition naming the field, nothing applied.
    let manifest = |replication: &str| {
        format!(
            "apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: zoned\nspec:\n  replicas: 5\n  \
             image: restate-cluster:dev\n  imagePullPolicy: IfNotPresent\n  partitions: 4\n  replication: \"{replication}\"\n  \
             storage:\n    size: 1Gi\n    storageClassName: zonal\n  topologySpreadConstraints:\n  - maxSkew: 1\n    \
             topologyKey: topology.kubernetes.io/zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector:\n      \
             matchLabels:\n        app.kubernetes.io/name: restate\n        app.kubernetes.io/instance: zoned\n"
        )
    };
    let applied = testbed.kubectl(&["apply", "-n", NS, "-f", "-"], Some(&manifest("{rack: 2, node: 3}")));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let refused = wait_for(
        "ConfigInvalid naming spec.replication",
        Duration::from_secs(60),
        || {
            let c = zoned(testbed);
            if condition(&c, "ConfigInvalid").as_deref() != Some("True") {
                return None;
            }
            super::condition_field(&c, "ConfigInvalid", "message")
        },
        || describe(testbed),
    );
    assert!(refused.contains("spec.replication") && refused.contains("unknown scope 'rack'"), "{refused}");
    assert!(testbed.get_json(&["statefulset", "zoned", "-n", NS]).is_none(), "nothing applied for a refused spec");

    // The real one: pods spread 2/2/1 over the zones, provisioned at {zone: 2, node: 3}.
    patch(testbed, "{zone: 2, node: 3}");
    let ready = wait_for(
        "the zoned cluster Ready at {zone: 2, node: 3}",
        Duration::from_secs(300),
        || {
            let c = zoned(testbed);
            let s = &c["status"];
            (s["readyNodes"] == 5
                && s["provisioned"] == true
                && s["logReplicationProperty"] == "{zone: 2, node: 3}"
                && condition(&c, "Ready").as_deref() == Some("True"))
            .then_some(c)
        },
        || describe(testbed),
    );
    phase("the zoned cluster Ready");
    assert_eq!(condition(&ready, "ConfigInvalid").as_deref(), Some("False"), "{:#}", ready["status"]);
    let placed = pods(testbed);
    let mut per_zone: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (pod, (node, _)) in &placed {
        per_zone.entry(node.clone()).or_default().push(pod.clone());
    }
    assert!(per_zone.values().all(|p| p.len() <= 2) && per_zone.len() == 3, "pods per node: {per_zone:?}");

    let secret_file = super::cluster_secret_file(testbed, NS, "zoned");
    let ip = placed["zoned-0"].1.clone();

    // Every node knows its zone; restatectl shows it.
    let status = restatectl(&ip, &secret_file, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    for node in status["nodes"].as_array().expect("nodes in restatectl status") {
        let pod = node["name"].as_str().unwrap();
        let zone = placed[pod].0.strip_prefix("testbed-zone-").unwrap();
        assert_eq!(node["location"], format!("testbed.{zone}"), "{node:#}");
    }
    let table = String::from_utf8_lossy(&restatectl(&ip, &secret_file, &["status"]).stdout).into_owned();
    assert!(table.contains("LOCATION") && table.contains("testbed.a"), "{table}");

    // Every tail nodeset: 5 members, at most 2 in one zone (so any 3 copies span 2 zones).
    let logs = wait_for(
        "every log on a 5-member nodeset over the zones",
        Duration::from_secs(120),
        || {
            let out = restatectl(&ip, &secret_file, &["logs", "list", "--json"]);
            let logs: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let all = logs["logs"].as_array()?.clone();
            all.iter().all(|log| log["nodeset_locations"].as_array().is_some_and(|l| l.len() == 5)).then_some(all)
        },
        || describe(testbed),
    );
    phase("every nodeset placed over the zones");
    assert_eq!(logs.len(), 4);
    for log in &logs {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for location in log["nodeset_locations"].as_array().unwrap() {
            *counts.entry(location.as_str().unwrap()).or_insert(0) += 1;
        }
        assert!(counts.len() >= 2 && counts.values().all(|n| *n <= 2), "log {}: {counts:?}", log["log_id"]);
    }
    let described =
        String::from_utf8_lossy(&restatectl(&ip, &secret_file, &["logs", "describe", "--log-id", "0"]).stdout)
            .into_owned();
    assert!(described.contains("@testbed."), "logs describe shows the members' locations: {described}");

    // A spread the zones cannot hold (one region): refused, the cluster stays as it is.
    patch(testbed, "{region: 2, node: 3}");
    let pending = wait_for(
        "ReplicationPending naming the refused property",
        Duration::from_secs(120),
        || {
            let c = zoned(testbed);
            let message = super::condition_field(&c, "ReplicationPending", "message")?;
            (condition(&c, "ReplicationPending").as_deref() == Some("True") && message.contains("region"))
                .then_some(message)
        },
        || describe(testbed),
    );
    assert!(pending.contains("spec.replication {region: 2, node: 3}") && pending.contains("at most"), "{pending}");
    assert_eq!(zoned(testbed)["status"]["logReplicationProperty"], "{zone: 2, node: 3}");
    patch(testbed, "{zone: 2, node: 3}");
    wait_for(
        "ReplicationPending False again",
        Duration::from_secs(120),
        || (condition(&zoned(testbed), "ReplicationPending").as_deref() == Some("False")).then_some(()),
        || describe(testbed),
    );

    phase("the refused spread lifted");
    // Counters written before the zone is lost.
    let register = Command::new(bin("restate"))
        .args(["--admin-url", &format!("http://{ip}:9070"), "dp", "register", "http://services:9080", "--yes"])
        .output()
        .expect("restate dp register");
    assert!(register.status.success(), "register: {}", String::from_utf8_lossy(&register.stderr));
    // Every add carries an idempotency key: a retry after a timed-out attempt is no second add.
    let add = |ip: &str, key: usize, n: u32, idempotency_key: &str| {
        let url = format!("http://{ip}:8080/Counter/zone-{key}/add");
        curl_json(&url, &n.to_string(), &[("idempotency-key", idempotency_key)], Duration::from_secs(30))
            .filter(|(s, _)| *s == 200)
            .map(|(_, body)| body.trim().to_owned())
    };
    for key in 0..8 {
        let idempotency_key = format!("zone-first-{key}");
        let added = wait_for(
            "a counter add",
            Duration::from_secs(60),
            || add(&ip, key, 7, &idempotency_key),
            || describe(testbed),
        );
        assert_eq!(added, "7");
    }

    // Every pod of a zone holding two is lost, the hardest such zone: the one with the
    // cluster controller, then the most metadata seeds (pods 0-2, every node's metadata
    // client addresses), then the most partition leaders; the other three keep serving.
    let led: BTreeMap<String, usize> =
        placed.iter().map(|(pod, (_, pod_ip))| (pod.clone(), partitions_led(pod_ip, &secret_file))).collect();
    let leaders_in = |pods: &[String]| pods.iter().map(|pod| led.get(pod).copied().unwrap_or(0)).sum::<usize>();
    let status = restatectl(&ip, &secret_file, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let controller = status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node_id"] == status["cluster_controller"])
        .and_then(|n| n["name"].as_str())
        .unwrap_or_default()
        .to_owned();
    let (lost_node, lost_pods) = per_zone
        .iter()
        .filter(|(_, p)| p.len() == 2)
        .max_by_key(|(_, p)| {
            let seeds = p.iter().filter(|pod| ["zoned-0", "zoned-1", "zoned-2"].contains(&pod.as_str())).count();
            (p.contains(&controller), seeds, leaders_in(p))
        })
        .map(|(n, p)| (n.clone(), p.clone()))
        .unwrap();
    let lost_zone = lost_node.strip_prefix("testbed-zone-").unwrap();
    let index = ZONES.iter().position(|z| *z == lost_zone).unwrap();
    phase(&format!(
        "counters written; losing zone {lost_zone}: {lost_pods:?}, leading {} partition(s); controller {}",
        leaders_in(&lost_pods),
        controller
    ));
    kubelets[index].fail();
    // Each attempt goes to the next survivor at its current address, as a client behind the
    // cluster's Service would.
    let survivors: Vec<String> = placed.keys().filter(|pod| !lost_pods.contains(pod)).cloned().collect();
    for key in 0..8 {
        let mut attempt = key;
        let added = wait_for(
            "a counter add with a zone lost",
            Duration::from_secs(180),
            || {
                let pod = &survivors[attempt % survivors.len()];
                attempt += 1;
                let ip = pods(testbed).get(pod)?.1.clone();
                add(&ip, key, 1, &format!("zone-lost-{key}"))
            },
            || {
                let via = pods(testbed).get(&survivors[0]).map(|(_, ip)| ip.clone()).unwrap_or_default();
                format!(
                    "{}\n{}",
                    describe(testbed),
                    String::from_utf8_lossy(&restatectl(&via, &secret_file, &["status"]).stdout)
                )
            },
        );
        assert_eq!(added, "8", "counter zone-{key} kept its state with zone {lost_zone} lost");
        phase(&format!("counter zone-{key} added to with the zone lost"));
    }

    drop(kubelets);
    testbed.kubectl_ok(&["delete", "namespace", NS, "--wait=false"]);
}
