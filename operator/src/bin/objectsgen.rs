//! Prints, as one JSON list, the objects the operator applies for the RestateCluster read
//! (as JSON) from stdin, built for an API server of minor version `--server-minor N`
//! (default 20). `scripts/k8s-validate` checks them against Kubernetes' OpenAPI schemas.
//! A cluster without `metadata.namespace` or `metadata.uid` gets placeholders. The list ends
//! with the storage-format check's Job for `spec.image`.

use std::io::Read;
use std::process::ExitCode;

use restate_operator::objects::storage_check_job;
use restate_operator::{owned_objects, BuildContext, RestateCluster};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut server_minor = 20;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u32>())) {
            ("--server-minor", Some(Ok(minor))) => server_minor = minor,
            _ => {
                eprintln!("usage: objectsgen [--server-minor N] < restatecluster.json");
                return ExitCode::from(2);
            }
        }
    }
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("error: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    let mut cluster: RestateCluster = match serde_json::from_str(&input) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("error: stdin is not a RestateCluster as JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    cluster.metadata.namespace.get_or_insert_with(|| "default".to_owned());
    cluster.metadata.uid.get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".to_owned());
    let ctx = BuildContext::new(server_minor);
    let objects = match owned_objects(&cluster, &ctx) {
        Ok(objects) => objects,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The storage-format check's Job too (created, not applied, but just as valid); its
    // shape does not depend on the format asked about.
    let check = match storage_check_job(&cluster, &ctx, &cluster.spec.image, 2) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let values = [
        serde_json::to_value(&objects.config_map),
        serde_json::to_value(&objects.service_account),
        serde_json::to_value(&objects.headless_service),
        serde_json::to_value(&objects.client_service),
        serde_json::to_value(&objects.statefulset),
        serde_json::to_value(&objects.pod_disruption_budget),
        serde_json::to_value(&objects.network_policy),
        serde_json::to_value(&check),
    ];
    match values.into_iter().collect::<Result<Vec<_>, _>>() {
        Ok(values) => {
            println!("{}", serde_json::Value::Array(values));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
