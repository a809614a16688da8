//! The pods' ServiceAccount: the nodes never call the Kubernetes API, so it has no roles and
//! no token is mounted.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;

pub fn service_account(cluster: &RestateCluster, ctx: &BuildContext) -> Result<ServiceAccount, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    let mut metadata = owned_meta(cluster, &names, names.service_account())?;
    if let Some(annotations) = &cluster.spec.service_account_annotations {
        metadata.annotations.get_or_insert_default().extend(annotations.clone());
    }
    Ok(ServiceAccount { metadata, automount_service_account_token: Some(false), ..ServiceAccount::default() })
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

    #[test]
    fn carries_the_cloud_identity_annotations() {
        let mut cluster = fixtures::cluster();
        let role = ("eks.amazonaws.com/role-arn".to_owned(), "arn:aws:iam::1:role/restate".to_owned());
        cluster.spec.service_account_annotations = Some([role.clone()].into());
        let account = service_account(&cluster, &BuildContext::new(20)).unwrap();
        assert_eq!(account.metadata.annotations.unwrap().get(&role.0), Some(&role.1));
    }
}
