//! The ConfigMap holding the cluster's `restate.toml`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{cluster_names, owned_meta, BuildContext};
use crate::config::{RenderedConfig, CONFIG_FILE_NAME};
use crate::crd::RestateCluster;
use crate::error::BuildError;

/// `<name>-config` with `restate.toml` = `rendered.toml` (never credentials).
pub fn config_map(
    cluster: &RestateCluster,
    ctx: &BuildContext,
    rendered: &RenderedConfig,
) -> Result<ConfigMap, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    Ok(ConfigMap {
        metadata: owned_meta(cluster, &names, names.config_map())?,
        data: Some(BTreeMap::from([(CONFIG_FILE_NAME.to_owned(), rendered.toml.clone())])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{fixtures, render};

    #[test]
    fn holds_the_rendered_file_under_its_name() {
        let cluster = fixtures::full_cluster();
        let ctx = BuildContext::new(30);
        let rendered = render(&cluster, &ctx).unwrap();
        let map = config_map(&cluster, &ctx, &rendered).unwrap();
        assert_eq!(map.metadata.name.as_deref(), Some("demo-config"));
        let data = map.data.unwrap();
        assert_eq!(data.len(), 1);
        let file = &data["restate.toml"];
        assert_eq!(file, &rendered.toml);
        let table: toml::Table = file.parse().unwrap();
        assert_eq!(table["cluster-name"].as_str(), Some("demo"));
        assert!(!file.contains("AWS_") && !file.contains("aws-secret"), "no credentials in a ConfigMap");
    }
}
