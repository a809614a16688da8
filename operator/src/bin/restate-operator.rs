//! `restate-operator`: reconciles `RestateCluster` resources (see the crate docs).
//!
//! The process: serve `/health`, `/ready` and `/metrics`; take part in the leader election;
//! once leading, run one controller per watched namespace (or one over all namespaces). On
//! SIGTERM: let running rounds finish, then release the Lease so that a standby takes over
//! at once. A leader that loses the Lease exits at once (Kubernetes restarts it as a standby).

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};
use restate_operator::names::{LABEL_MANAGED_BY, MANAGER};
use restate_operator::reconcile::{error_policy, reconcile, Context, ReconcileError};
use restate_operator::runtime::backoff::Backoff;
use restate_operator::runtime::http;
use restate_operator::runtime::leader::{default_identity, Ended, LeaderElection, Leadership, Role, Timing};
use restate_operator::runtime::metrics::OperatorMetrics;
use restate_operator::{BuildContext, RestateCluster};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// How long a stopping leader waits for running rounds before it exits without releasing
/// the Lease (it then expires by itself); below the pod's default 30 s grace period.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Reconciles RestateCluster resources (restate.dev/v1) into StatefulSets, Services,
/// ConfigMaps, PodDisruptionBudgets, ServiceAccounts and NetworkPolicies, provisions each
/// cluster once through its first pod, and reports progress in the resource's status.
/// Uses the in-cluster service account, or KUBECONFIG outside a cluster.
#[derive(Debug, Parser)]
#[command(name = "restate-operator", version)]
struct Args {
    /// Watch only this namespace; repeat for several (default: all namespaces).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Vec<String>,
    /// Log filter, e.g. info or restate_operator=debug.
    #[arg(long, env = "RESTATE_OPERATOR_LOG", default_value = "info")]
    log_level: String,
    /// DNS domain of the Kubernetes cluster (part of every node's advertised address).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Namespace the operator runs in: the leader-election Lease lives there, and the
    /// NetworkPolicy of every cluster admits it to the node ports.
    #[arg(long, env = "OPERATOR_NAMESPACE", default_value = "restate-operator")]
    operator_namespace: String,
    /// Labels of the operator's pods (`key=value,...`): the NetworkPolicy of every cluster
    /// then admits only these pods of the operator's namespace (the Helm chart sets it).
    #[arg(long, env = "OPERATOR_POD_LABELS", default_value = "", value_name = "LABELS",
          value_parser = restate_operator::objects::parse_pod_labels)]
    operator_pod_labels: std::collections::BTreeMap<String, String>,
    /// Port of the HTTP endpoint: /health, /ready and /metrics.
    #[arg(long, default_value_t = 8081)]
    http_port: u16,
    /// Elect one leader among the operator's replicas (a Lease in the operator's namespace).
    /// Turn off only where exactly one operator runs, e.g. outside a cluster for development.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "restate-operator")]
    lease_name: String,
    /// Seconds a leader's Lease lasts without renewal; it renews every third of it and gives
    /// up leading after two thirds.
    #[arg(long, default_value_t = 15, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(3..=600))]
    lease_duration: u64,
    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

type Waiting<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Resolves on SIGTERM or Ctrl-C, with the signal's name.
fn shutdown_signal() -> Waiting<&'static str> {
    Box::pin(async {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

/// Ends the process at once: a leader that lost the Lease must not reconcile another moment.
fn exit_lost(reason: &str) -> ! {
    tracing::error!(
        "lost leadership: {reason}; exiting so that only the new leader reconciles (Kubernetes restarts this container as a standby)"
    );
    std::process::exit(1)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: --log-level '{}' is not a log filter: {e} (try info or debug)", args.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let client = match Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: no Kubernetes API to talk to: {e} (in a pod: the service account; outside: KUBECONFIG)");
            return ExitCode::FAILURE;
        }
    };
    let server_minor = match client.apiserver_version().await {
        Ok(info) => match restate_operator::objects::parse_server_minor(&info.major, &info.minor) {
            Some(minor) => minor,
            // A version that does not parse (a vendor's build): ask which PDB API it serves
            // rather than guess an old one that may be removed.
            None => {
                let serves_policy_v1 = client.list_api_group_resources("policy/v1").await.is_ok();
                tracing::warn!(major = %info.major, minor = %info.minor, serves_policy_v1, "the API server's version does not parse; chose API versions by discovery");
                if serves_policy_v1 {
                    restate_operator::objects::POLICY_V1_SINCE_MINOR
                } else {
                    20
                }
            }
        },
        Err(e) => {
            eprintln!("error: the Kubernetes API does not answer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let identity = args.identity.clone().filter(|i| !i.is_empty()).unwrap_or_else(default_identity);

    let metrics = Arc::new(OperatorMetrics::new(&ReconcileError::KINDS));
    let (role, roles) = watch::channel(Role::Starting);
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", args.http_port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot serve HTTP on port {} ({e}); choose another with --http-port", args.http_port);
            return ExitCode::from(2);
        }
    };
    let router = http::router(metrics.clone(), roles.clone());
    tokio::spawn(async move {
        if let Err(e) = http::serve(listener, router).await {
            tracing::error!("the HTTP endpoint stopped: {e}");
        }
    });
    tracing::info!(server_minor, namespaces = ?args.namespace, %identity, http_port = args.http_port, "restate-operator starting");

    let (stop_election, election_stopped) = watch::channel(false);
    let (mut election, leadership): (Waiting<Ended>, Leadership) = if args.leader_election {
        let timing = Timing::new(Duration::from_secs(args.lease_duration));
        let election =
            LeaderElection::new(client.clone(), &args.operator_namespace, &args.lease_name, &identity, timing);
        let leadership = election.leadership();
        let task = tokio::spawn(election.run(role.clone(), election_stopped));
        let ended = async move { task.await.unwrap_or_else(|e| Ended::Lost(format!("the election task failed: {e}"))) };
        (Box::pin(ended), leadership)
    } else {
        tracing::info!("leader election is off (--leader-election=false): leading");
        role.send_replace(Role::Leading);
        (Box::pin(futures::future::pending()), Leadership::unconditional())
    };
    let mut shutdown = shutdown_signal();

    let mut leading = roles.clone();
    tokio::select! {
        _ = leading.wait_for(|r| *r == Role::Leading) => {}
        signal = &mut shutdown => {
            tracing::info!("{signal}: stopping while standing by");
            role.send_replace(Role::Stopping);
            let _ = stop_election.send(true);
            let _ = election.await;
            return ExitCode::SUCCESS;
        }
        ended = &mut election => {
            return match ended {
                Ended::Lost(reason) => exit_lost(&reason),
                Ended::Stopped => ExitCode::SUCCESS,
            };
        }
    }

    let build = BuildContext {
        server_minor,
        cluster_domain: args.cluster_domain.clone(),
        operator_namespace: args.operator_namespace.clone(),
        operator_pod_labels: args.operator_pod_labels.clone(),
    };
    let reporter = Reporter { controller: MANAGER.to_owned(), instance: Some(identity.clone()) };
    let context = Arc::new(Context {
        client: client.clone(),
        build,
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        backoff: Backoff::default(),
        leadership,
    });
    let (start_drain, drain) = futures::channel::oneshot::channel::<()>();
    let drain = drain.map(|_| ()).shared();
    let scopes: Vec<Option<&String>> =
        if args.namespace.is_empty() { vec![None] } else { args.namespace.iter().map(Some).collect() };
    let mut controllers = Vec::new();
    for scope in scopes {
        let (clusters, statefulsets): (Api<RestateCluster>, Api<StatefulSet>) = match scope {
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let controller = Controller::new(clusters, watcher::Config::default())
            .owns(statefulsets, watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}")))
            .graceful_shutdown_on(drain.clone());
        metrics.watch_clusters(controller.store());
        controllers.push(
            controller
                .run(reconcile, error_policy, context.clone())
                .for_each(|outcome| async move {
                    if let Err(e) = outcome {
                        tracing::debug!("reconcile: {e}");
                    }
                })
                .boxed(),
        );
    }
    tracing::info!(namespaces = ?args.namespace, "reconciling RestateClusters");
    let mut controllers = futures::future::join_all(controllers);

    let signal = tokio::select! {
        _ = &mut controllers => {
            // Controllers end only after a graceful shutdown was asked for; stop all the same.
            tracing::warn!("the controllers stopped unexpectedly");
            let _ = stop_election.send(true);
            let _ = election.await;
            return ExitCode::FAILURE;
        }
        ended = &mut election => match ended {
            Ended::Lost(reason) => exit_lost(&reason),
            Ended::Stopped => exit_lost("the election stopped unexpectedly"),
        },
        signal = &mut shutdown => signal,
    };
    tracing::info!("{signal}: letting running rounds finish (at most {DRAIN_TIMEOUT:?})");
    role.send_replace(Role::Stopping);
    let _ = start_drain.send(());
    tokio::select! {
        drained = tokio::time::timeout(DRAIN_TIMEOUT, &mut controllers) => {
            if drained.is_err() {
                tracing::warn!("rounds still running after {DRAIN_TIMEOUT:?}; exiting without releasing the Lease (it expires by itself)");
                std::process::exit(0);
            }
        }
        ended = &mut election => match ended {
            Ended::Lost(reason) => exit_lost(&reason),
            Ended::Stopped => exit_lost("the election stopped unexpectedly"),
        },
    }
    // Only now that nothing reconciles may another replica lead: release the Lease.
    let _ = stop_election.send(true);
    let _ = election.await;
    tracing::info!("restate-operator stopped");
    ExitCode::SUCCESS
}
