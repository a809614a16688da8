//! The cluster secret's Kubernetes Secret: made once per cluster with a random value (never
//! applied again, so the value never changes under running nodes), mounted into every pod
//! for `[networking] cluster-secret-file`, and read by the operator for its own calls of
//! the node port. Owned by the `RestateCluster`: deleting the cluster deletes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;

/// The key of the secret's value in the Secret's data (and the file name in the pods).
pub const CLUSTER_SECRET_KEY: &str = "cluster-secret";

/// The Secret holding `value`.
pub fn cluster_secret(cluster: &RestateCluster, ctx: &BuildContext, value: &str) -> Result<Secret, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    Ok(Secret {
        metadata: owned_meta(cluster, &names, names.cluster_secret())?,
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(CLUSTER_SECRET_KEY.to_owned(), ByteString(value.as_bytes().to_vec()))])),
        ..Secret::default()
    })
}

/// A new secret value: 32 bytes from the kernel's random source, hex-encoded.
pub fn new_secret_value() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn the_secret_is_owned_by_the_cluster_and_holds_the_value_under_its_key() {
        let secret = cluster_secret(&fixtures::cluster(), &BuildContext::new(20), "abc").unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("demo-cluster-secret"));
        assert_eq!(secret.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        assert_eq!(secret.data.unwrap()[CLUSTER_SECRET_KEY].0, b"abc");
    }

    #[test]
    fn new_values_are_long_and_differ() {
        let (a, b) = (new_secret_value().unwrap(), new_secret_value().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(restate_proto::credentials::ClusterSecret::new(&a).is_ok());
    }
}
