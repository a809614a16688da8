//! The cluster secret's Secret, made once: read when it exists, created with a new random
//! value when it does not (another replica or an earlier round that created it meanwhile
//! wins: its value is read back). A Secret whose value is not a valid cluster secret (edited
//! by hand) fails the round with the rule it breaks, never with the value.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::Client;
use restate_proto::credentials::ClusterSecret;

use super::ReconcileError;
use crate::crd::RestateCluster;
use crate::names::ClusterNames;
use crate::objects::{cluster_secret, new_secret_value, BuildContext, CLUSTER_SECRET_KEY};

/// The cluster's secret, creating its Secret first when there is none.
pub async fn ensure(
    client: &Client,
    cluster: &RestateCluster,
    build: &BuildContext,
    names: &ClusterNames,
) -> Result<ClusterSecret, ReconcileError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let name = names.cluster_secret();
    let what = format!("{}/{name}", names.namespace);
    let failed = |reason: String| ReconcileError::ClusterSecret { what: what.clone(), reason };
    let existing = secrets.get_opt(&name).await.map_err(|e| failed(format!("reading it failed: {e}")))?;
    let secret = match existing {
        Some(secret) => secret,
        None => {
            let value = new_secret_value().map_err(|e| failed(format!("no random value for a new one: {e}")))?;
            match secrets.create(&PostParams::default(), &cluster_secret(cluster, build, &value)?).await {
                Ok(created) => {
                    tracing::info!(secret = %what, "created the cluster secret");
                    created
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    secrets.get(&name).await.map_err(|e| failed(format!("reading it failed: {e}")))?
                }
                Err(e) => return Err(failed(format!("creating it failed: {e}"))),
            }
        }
    };
    let value = secret.data.as_ref().and_then(|data| data.get(CLUSTER_SECRET_KEY)).ok_or_else(|| {
        failed(format!("it has no key '{CLUSTER_SECRET_KEY}'; delete it and the operator makes a new one"))
    })?;
    let text = std::str::from_utf8(&value.0).map_err(|_| failed(format!("'{CLUSTER_SECRET_KEY}' is not text")))?;
    ClusterSecret::new(text.trim()).map_err(|rule| failed(format!("'{CLUSTER_SECRET_KEY}' {rule}")))
}
