//! `restate-operator`: reconciles `RestateCluster` resources (see the crate docs).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};
use restate_operator::reconcile::{error_policy, reconcile, Context};
use restate_operator::{BuildContext, RestateCluster};
use tracing_subscriber::EnvFilter;

/// Reconciles RestateCluster resources (restate.dev/v1) into StatefulSets, Services,
/// ConfigMaps, PodDisruptionBudgets, ServiceAccounts and NetworkPolicies, provisions each
/// cluster once through its first pod, and reports progress in the resource's status.
/// Uses the in-cluster service account, or KUBECONFIG outside a cluster.
#[derive(Debug, Parser)]
#[command(name = "restate-operator", version)]
struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Vec<String>,
    /// Log filter, e.g. info or restate_operator=debug.
    #[arg(long, env = "RESTATE_OPERATOR_LOG", default_value = "info")]
    log_level: String,
    /// DNS domain of the Kubernetes cluster (part of every node's advertised address).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Namespace the operator runs in (the NetworkPolicy admits it to the node ports).
    #[arg(long, env = "OPERATOR_NAMESPACE", default_value = "restate-operator")]
    operator_namespace: String,
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
    if args.namespace.len() > 1 {
        eprintln!(
            "error: watching several namespaces ({}) is not supported yet; pass one --namespace, or none to watch all",
            args.namespace.join(", ")
        );
        return ExitCode::from(2);
    }
    let client = match Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: no Kubernetes API to talk to: {e} (in a pod: the service account; outside: KUBECONFIG)");
            return ExitCode::FAILURE;
        }
    };
    let server_minor = match client.apiserver_version().await {
        Ok(info) => info.minor.trim_end_matches('+').parse().unwrap_or(20),
        Err(e) => {
            eprintln!("error: the Kubernetes API does not answer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (clusters, statefulsets): (Api<RestateCluster>, Api<StatefulSet>) = match args.namespace.first() {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let build = BuildContext {
        server_minor,
        cluster_domain: args.cluster_domain.clone(),
        operator_namespace: args.operator_namespace.clone(),
    };
    tracing::info!(server_minor, namespace = ?args.namespace.first(), "restate-operator reconciling RestateClusters");
    let context = Arc::new(Context { client, build });
    Controller::new(clusters, watcher::Config::default())
        .owns(statefulsets, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            if let Err(e) = outcome {
                tracing::debug!("reconcile: {e}");
            }
        })
        .await;
    tracing::info!("restate-operator stopped");
    ExitCode::SUCCESS
}
