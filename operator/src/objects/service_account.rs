//! The pods' ServiceAccount: the nodes never call the Kubernetes API, so it has no roles and
//! no token is mounted.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;

pub fn service_account(cluster: &RestateCluster, ctx: &BuildContext) -> Result<ServiceAccount, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    Ok(ServiceAccount {
        metadata: owned_meta(cluster, &names, names.service_account())?,
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn mounts_no_token() {
        let account = service_account(&fixtures::cluster(), &BuildContext::new(20)).unwrap();
        assert_eq!(account.metadata.name.as_deref(), Some("demo"));
        assert_eq!(account.automount_service_account_token, Some(false));
    }
}
