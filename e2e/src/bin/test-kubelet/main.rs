//! test-kubelet: plays the kubelet of one Node of the testbed's real Kubernetes control plane.
//! Pods bound to the node run as Docker containers on a user-defined docker network; Pending
//! volume claims get hostPath volumes; the Node is heartbeated. See `--help`.
//!
//! Layout: `pod_translation` (pure: pod -> `docker run` arguments), `volumes` (host dirs
//! behind volumes), `provisioner` (claims -> PersistentVolumes), `probes` (readiness),
//! `status` (pure: status JSON), `ipam` (pod addresses), `docker` (the CLI), `worker` (one
//! task per pod: the container's life cycle). This file: CLI, Node heartbeat, the pod list
//! loop that starts and stops workers, `--cleanup`.

mod docker;
mod ipam;
mod pod_translation;
mod probes;
mod provisioner;
mod status;
mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::watch;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::docker::{ContainerInfo, LABEL_NAMESPACE, LABEL_NODE, LABEL_POD, LABEL_UID};
use crate::pod_translation::PodContext;

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
const POD_LIST_INTERVAL: Duration = Duration::from_secs(1);

/// A stand-in kubelet for the testbed: runs the pods bound to one Node as Docker containers.
///
/// Every second it lists the pods with spec.nodeName = NODE and runs one container per pod
/// (`k8s_<ns>_<pod>_<uid prefix>`, labelled restate-testbed.node=NODE) on the docker network,
/// with a pod IP it allocates from the network's subnet and the pod's DNS names as network
/// aliases. It resolves env (fieldRef, secretKeyRef, configMapKeyRef, $(VAR) expansion),
/// mounts configMap/secret/emptyDir/persistentVolumeClaim volumes, honours
/// runAsUser/runAsGroup and readOnlyRootFilesystem, runs readiness probes from the host,
/// restarts exited containers with a backoff, and writes the pod status. A deleted pod's
/// container is stopped, its logs saved, the container removed and the pod deleted.
///
/// It also creates a hostPath PersistentVolume for every Pending claim (under STATE_DIR/claims)
/// and heartbeats the Node every 10 s (creating it if missing).
///
/// Logs of exited and removed containers stay in STATE_DIR/logs. On SIGTERM/SIGINT it exits
/// and leaves the containers running; `--cleanup` removes them.
#[derive(Parser, Debug)]
#[command(name = "test-kubelet", verbatim_doc_comment)]
struct Cli {
    /// Kubeconfig with credentials for the API server.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Node whose pods this kubelet runs (created if missing).
    #[arg(long, env = "RESTATE_TESTBED_NODE", default_value = "testbed-node")]
    node_name: String,
    /// Labels the Node gets when this kubelet creates it, `key=value` separated by commas
    /// (e.g. `topology.kubernetes.io/zone=a`: one kubelet per zone plays a zoned cluster).
    #[arg(long, value_name = "K=V,...", value_parser = parse_labels, default_value = "")]
    node_labels: std::collections::BTreeMap<String, String>,
    /// Docker network for the containers: user-defined, with an IPv4 subnet.
    #[arg(long, env = "RESTATE_TESTBED_NETWORK", default_value = "restate-testbed")]
    network: String,
    /// API server host as containers reach it (their KUBERNETES_SERVICE_HOST)
    /// [default: the docker network's gateway].
    #[arg(long, env = "RESTATE_TESTBED_API_HOST")]
    api_host: Option<String>,
    /// API server port as containers reach it (their KUBERNETES_SERVICE_PORT)
    /// [default: the port of the kubeconfig's server].
    #[arg(long, env = "RESTATE_TESTBED_API_PORT")]
    api_port: Option<u16>,
    /// Directory for pod volumes (pods/), claim volumes (claims/) and container logs (logs/).
    #[arg(long, value_name = "DIR", default_value = "/tmp/restate-test-kubelet")]
    state_dir: PathBuf,
    /// Remove every container of this node's kubelet (their logs go to STATE_DIR/logs), then exit.
    #[arg(long)]
    cleanup: bool,
    /// With --cleanup: remove the containers of every node, not only --node-name's.
    #[arg(long, requires = "cleanup")]
    all: bool,
}

/// What every part of the kubelet shares.
pub struct Kubelet {
    pub client: Client,
    pub node_name: String,
    /// Labels the Node is created with.
    pub node_labels: std::collections::BTreeMap<String, String>,
    pub network: String,
    /// The pods' status.hostIP: the docker network's gateway (the host, seen from containers).
    pub host_ip: Ipv4Addr,
    pub api_host: String,
    pub api_port: u16,
    pub state_dir: PathBuf,
    pub ipam: ipam::Ipam,
}

impl Kubelet {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    pub fn pod_context(&self, pod_ip: Ipv4Addr) -> PodContext {
        PodContext {
            node_name: self.node_name.clone(),
            network: self.network.clone(),
            pod_ip,
            host_ip: self.host_ip,
            api_host: self.api_host.clone(),
            api_port: self.api_port,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube's "Server cert bypassed" (the testbed kubeconfig skips verification) is noise.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,kube_client::client::tls=error,test_kubelet=info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    let result = if cli.cleanup { cleanup(&cli).await } else { serve(cli).await };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `k=v,k2=v2` (empty: none).
fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.trim().to_owned())),
            _ => Err(format!("'{pair}' is not key=value")),
        })
        .collect()
}

async fn serve(cli: Cli) -> Result<()> {
    let state_dir = std::path::absolute(&cli.state_dir).context("--state-dir")?;
    for sub in ["logs", "pods", "claims"] {
        let dir = state_dir.join(sub);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let network = docker::network(&cli.network).await?;
    let config = kube_config(cli.kubeconfig.as_deref()).await?;
    let api_port = cli.api_port.or(config.cluster_url.port_u16()).unwrap_or(443);
    let api_host = cli.api_host.clone().unwrap_or_else(|| network.gateway.to_string());
    let client = Client::try_from(config).context("cannot build the Kubernetes client")?;
    let k = Arc::new(Kubelet {
        client,
        node_name: cli.node_name.clone(),
        node_labels: cli.node_labels.clone(),
        network: cli.network.clone(),
        host_ip: network.gateway,
        api_host,
        api_port,
        state_dir,
        ipam: ipam::Ipam::new(&cli.network, &network),
    });
    info!(
        "test-kubelet for node {} on docker network {} ({}/{}); containers reach the API at {}:{}; state in {}",
        k.node_name,
        k.network,
        network.subnet,
        network.prefix,
        k.api_host,
        k.api_port,
        k.state_dir.display()
    );
    tokio::spawn(heartbeat(k.clone()));
    tokio::spawn(provisioner::run(k.clone()));
    tokio::select! {
        () = sync_pods(k.clone()) => {}
        signal = shutdown_signal() => {
            info!("{signal}: exiting; containers keep running (`test-kubelet --cleanup` removes them)");
        }
    }
    Ok(())
}

async fn kube_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("invalid kubeconfig {}", path.display()))
        }
        None => Config::infer().await.context("no --kubeconfig (or KUBECONFIG) given and no default config found"),
    }
}

async fn shutdown_signal() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler never fails on unix");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// Marks the Node Ready every `HEARTBEAT_INTERVAL`; creates it when missing. Logs changes
/// between success and failure only.
async fn heartbeat(k: Arc<Kubelet>) {
    let since = status::now();
    let mut healthy = None;
    loop {
        let result = beat(&k, &since).await;
        match &result {
            Ok(()) if healthy != Some(true) => info!("node {}: heartbeat ok (Ready)", k.node_name),
            Err(err) if healthy != Some(false) => warn!("node {}: heartbeat failed: {err:#}", k.node_name),
            _ => {}
        }
        healthy = Some(result.is_ok());
        tokio::time::sleep(HEARTBEAT_INTERVAL).await;
    }
}

async fn beat(k: &Kubelet, since: &str) -> Result<()> {
    let api = Api::<Node>::all(k.client.clone());
    if api.get_opt(&k.node_name).await?.is_none() {
        let node: Node = serde_json::from_value(status::node_object(&k.node_name, k.host_ip, &k.node_labels))?;
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => info!("node {} created", k.node_name),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).context("cannot create the node"),
        }
    }
    let patch = status::node_status(&status::now(), since);
    api.patch_status(&k.node_name, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// Lists the node's pods every second and keeps one worker per pod UID: a new UID gets a
/// worker, every change of a pod is passed to its worker, a UID no longer listed has its
/// worker's channel closed (the worker then removes the container). A finished worker whose
/// pod is still listed (e.g. held by a finalizer) is not started again.
async fn sync_pods(k: Arc<Kubelet>) {
    let api = Api::<Pod>::all(k.client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={}", k.node_name));
    let mut workers: HashMap<String, watch::Sender<Arc<Pod>>> = HashMap::new();
    let mut orphans_removed = false;
    let mut last_error: Option<String> = None;
    loop {
        match api.list(&params).await {
            Ok(list) => {
                if last_error.take().is_some() {
                    info!("listing pods works again");
                }
                let listed: HashSet<String> = list.items.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                if !orphans_removed {
                    orphans_removed = true;
                    remove_orphans(&k, &listed).await;
                }
                for pod in list.items {
                    let Some(uid) = pod.metadata.uid.clone() else { continue };
                    let pod = Arc::new(pod);
                    match workers.get(&uid) {
                        Some(sender) => {
                            sender.send_if_modified(|current| {
                                let changed = current.metadata.resource_version != pod.metadata.resource_version;
                                if changed {
                                    *current = pod.clone();
                                }
                                changed
                            });
                        }
                        None => {
                            let (sender, receiver) = watch::channel(pod.clone());
                            tokio::spawn(worker::PodWorker::new(k.clone(), &pod).run(receiver));
                            workers.insert(uid, sender);
                        }
                    }
                }
                workers.retain(|uid, _| listed.contains(uid));
            }
            Err(err) => {
                let text = err.to_string();
                if last_error.as_ref() != Some(&text) {
                    warn!("cannot list the pods of node {}: {text}", k.node_name);
                }
                last_error = Some(text);
            }
        }
        tokio::time::sleep(POD_LIST_INTERVAL).await;
    }
}

/// At startup: removes this node's containers whose pod no longer exists.
async fn remove_orphans(k: &Kubelet, listed: &HashSet<String>) {
    let containers = match docker::list_labelled(&format!("{LABEL_NODE}={}", k.node_name)).await {
        Ok(containers) => containers,
        Err(err) => return warn!("cannot list containers: {err:#}"),
    };
    for container in containers {
        if container.labels.get(LABEL_UID).is_some_and(|uid| !listed.contains(uid)) {
            if let Err(err) = discard(&k.logs_dir(), &container, "its pod no longer exists").await {
                warn!("{err:#}");
            }
        }
    }
}

/// Saves the container's logs to `<ns>_<pod>_final.log` in `logs_dir`, then removes it.
async fn discard(logs_dir: &Path, container: &ContainerInfo, why: &str) -> Result<()> {
    let label = |key: &str| container.labels.get(key).map_or("unknown", String::as_str);
    let (ns, pod) = (label(LABEL_NAMESPACE), label(LABEL_POD));
    let path = logs_dir.join(format!("{ns}_{pod}_final.log"));
    let header = format!(
        "{} container {} of pod {ns}/{pod} (uid {}), removed: {why}",
        status::now(),
        container.id,
        label(LABEL_UID)
    );
    if let Err(err) = docker::save_logs(&container.id, &path, None, &header).await {
        warn!("pod {ns}/{pod}: cannot save the logs: {err:#}");
    }
    docker::remove(&container.id).await.with_context(|| format!("pod {ns}/{pod}: cannot remove its container"))?;
    info!(
        "removed container {} of pod {ns}/{pod} ({why}; logs in {})",
        &container.id[..12.min(container.id.len())],
        path.display()
    );
    Ok(())
}

/// `--cleanup`: removes the containers (of this node, or of every node with `--all`).
async fn cleanup(cli: &Cli) -> Result<()> {
    let label = if cli.all { LABEL_NODE.to_owned() } else { format!("{LABEL_NODE}={}", cli.node_name) };
    let logs_dir = std::path::absolute(cli.state_dir.join("logs")).context("--state-dir")?;
    std::fs::create_dir_all(&logs_dir).with_context(|| format!("cannot create {}", logs_dir.display()))?;
    let containers = docker::list_labelled(&label).await?;
    let mut failures = 0;
    for container in &containers {
        if let Err(err) = discard(&logs_dir, container, "cleanup").await {
            error!("{err:#}");
            failures += 1;
        }
    }
    info!("cleanup: removed {} of {} containers labelled {label}", containers.len() - failures, containers.len());
    anyhow::ensure!(failures == 0, "{failures} containers could not be removed");
    Ok(())
}
