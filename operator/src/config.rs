//! The `restate.toml` every node of a cluster reads: the operator's keys merged over the
//! user's `spec.config`, and the user's `spec.env` minus variables that would undo them.
//!
//! Merge rule: the user's TOML is the base; every operator-owned key is then set to the
//! operator's value (or removed, for keys set per pod or kept out of the ConfigMap). Where
//! the user had written a different value, the key is reported in
//! [`RenderedConfig::overridden`] so that the reconciler can surface it in the
//! `ConfigOverridden` condition; nothing is dropped silently. A user value equal to the
//! operator's is not a conflict.
//!
//! The pod template carries [`RenderedConfig::checksum`], so a config change rolls the pods.
//! The checksum leaves out the keys a node only reads when it provisions the cluster
//! (`default-replication`, `default-num-partitions`; the operator passes both explicitly when
//! it provisions), so raising `spec.replication` (applied through the admin API) restarts
//! nothing. Nothing in the file depends on `spec.replicas`: scaling never rolls the pods.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::EnvVar;
use restate_config::{key_for_env_var, ConfigFile, ConfigSources};
use sha2::{Digest, Sha256};
use toml::{Table, Value};

use crate::crd::RestateClusterSpec;
use crate::error::BuildError;
use crate::names::{ClusterNames, ADMIN_PORT, INGRESS_PORT, NODE_PORT};

/// Key of the config file in the ConfigMap.
pub const CONFIG_FILE_NAME: &str = "restate.toml";
/// Where the ConfigMap is mounted in the container.
pub const CONFIG_DIR: &str = "/etc/restate";
/// The node's base directory: the mount point of its persistent volume.
pub const BASE_DIR: &str = "/restate-data";
/// Every node runs every role.
pub const ROLES: [&str; 5] = ["worker", "admin", "metadata-server", "log-server", "http-ingress"];

/// Env variables the operator sets on the container itself.
pub const ENV_POD_NAME: &str = "POD_NAME";
pub const ENV_NODE_NAME: &str = "RESTATE_NODE_NAME";
pub const ENV_ADVERTISED_ADDRESS: &str = "RESTATE_ADVERTISED_ADDRESS";
pub const ENV_CONFIG_FILE: &str = "RESTATE_CONFIG";
/// Also set on the container (to [`BASE_DIR`]): an image's own `RESTATE_BASE_DIR` would
/// otherwise win over the file and put the data outside the volume.
pub const ENV_BASE_DIR: &str = "RESTATE_BASE_DIR";
/// `[networking] cluster-secret-file`: the mounted cluster secret (see objects/cluster_secret.rs).
pub const ENV_CLUSTER_SECRET_FILE: &str = "RESTATE_NETWORKING__CLUSTER_SECRET_FILE";
/// The Kubernetes node the pod runs on (downward API `spec.nodeName`).
pub const ENV_KUBERNETES_NODE: &str = "KUBERNETES_NODE_NAME";
/// `location-file`: the pod's Kubernetes node's entry in the `<name>-locations` ConfigMap.
pub const ENV_LOCATION_FILE: &str = "RESTATE_LOCATION_FILE";
/// Where the `<name>-locations` ConfigMap is mounted.
pub const LOCATIONS_DIR: &str = "/etc/restate-locations";
pub const ENV_AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// Keys only read when a node provisions the cluster; left out of the checksum.
const PROVISIONING_ONLY_KEYS: [&str; 2] = ["default-replication", "default-num-partitions"];

/// Credentials, never written to the ConfigMap whoever asks for them.
const CREDENTIAL_KEYS: [&str; 3] = [
    "worker.snapshots.aws-access-key-id",
    "worker.snapshots.aws-secret-access-key",
    "worker.snapshots.aws-session-token",
];

/// Full path of the config file in the container.
pub fn config_file_path() -> String {
    format!("{CONFIG_DIR}/{CONFIG_FILE_NAME}")
}

/// Where a user setting the operator overrode was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSource {
    /// A key in `spec.config`.
    Config,
    /// A variable in `spec.env`.
    Env,
}

/// A user setting the operator overrode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverriddenKey {
    /// Dotted config key (`metadata-client.addresses`) or env variable name.
    pub key: String,
    pub source: OverrideSource,
    /// The user's value as TOML (or the env value), `***` for credentials.
    pub user_value: String,
    /// What the operator does instead.
    pub reason: String,
}

impl OverriddenKey {
    /// One line for a condition message or an event.
    pub fn describe(&self) -> String {
        let place = match self.source {
            OverrideSource::Config => "spec.config",
            OverrideSource::Env => "spec.env",
        };
        format!("{place} `{}` = {} is ignored: {}", self.key, self.user_value, self.reason)
    }
}

/// The node configuration of a cluster as the operator renders it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedConfig {
    /// Content of `restate.toml` in the ConfigMap.
    pub toml: String,
    /// Hex SHA-256 of the settings a running node reads; the pod template's
    /// `restate.dev/config-checksum` annotation.
    pub checksum: String,
    /// User settings the operator overrode (from `spec.config` and `spec.env`).
    pub overridden: Vec<OverriddenKey>,
    /// `spec.env` without the variables the operator sets or that address operator-owned keys.
    pub user_env: Vec<EnvVar>,
}

/// What the operator does with a key it owns.
enum Owned {
    /// The file holds this value.
    Value(Value),
    /// Set per pod through this environment variable; kept out of the shared file.
    PerPod(&'static str),
    /// Read by every pod from its Kubernetes node's labels (through `location-file`).
    FromKubernetesNode,
    /// A credential: never in the ConfigMap.
    Credential,
}

/// Every key the operator owns for `spec`, with its value. Snapshot keys are owned only when
/// `spec.snapshots` sets them.
fn owned_keys(spec: &RestateClusterSpec, names: &ClusterNames) -> Result<Vec<(&'static str, Owned)>, BuildError> {
    let text = |s: &str| Owned::Value(Value::String(s.to_owned()));
    let integer = |n: i64| Owned::Value(Value::Integer(n));
    let list = |items: Vec<String>| Owned::Value(Value::Array(items.into_iter().map(Value::String).collect()));
    let mut keys = vec![
        ("cluster-name", text(&names.name)),
        ("node-name", Owned::PerPod(ENV_NODE_NAME)),
        ("advertised-address", Owned::PerPod(ENV_ADVERTISED_ADDRESS)),
        ("roles", list(ROLES.iter().map(|r| r.to_string()).collect())),
        ("auto-provision", Owned::Value(Value::Boolean(false))),
        ("default-replication", replication_value(spec)?),
        ("location", Owned::FromKubernetesNode),
        ("location-file", Owned::PerPod(ENV_LOCATION_FILE)),
        ("default-num-partitions", integer(i64::from(spec.partitions))),
        ("base-dir", text(BASE_DIR)),
        ("bind-address", text(&format!("0.0.0.0:{NODE_PORT}"))),
        ("admin.bind-address", text(&format!("0.0.0.0:{ADMIN_PORT}"))),
        ("ingress.bind-address", text(&format!("0.0.0.0:{INGRESS_PORT}"))),
        ("metadata-server.type", text("replicated")),
        ("metadata-client.addresses", list(names.metadata_client_addresses())),
        ("bifrost.default-provider", text("replicated")),
    ];
    if let Some(snapshots) = &spec.snapshots {
        keys.push(("worker.snapshots.destination", text(&snapshots.destination)));
        if let Some(records) = snapshots.interval_num_records {
            keys.push(("worker.snapshots.snapshot-interval-num-records", integer(records)));
        }
        if let Some(endpoint) = &snapshots.endpoint {
            keys.push(("worker.snapshots.aws-endpoint-url", text(endpoint)));
            let plain_http = endpoint.to_ascii_lowercase().starts_with("http://");
            keys.push(("worker.snapshots.aws-allow-http", Owned::Value(Value::Boolean(plain_http))));
        }
        if let Some(region) = &snapshots.region {
            keys.push(("worker.snapshots.aws-region", text(region)));
        }
    }
    for credential in CREDENTIAL_KEYS {
        keys.push((credential, Owned::Credential));
    }
    Ok(keys)
}

/// `default-replication` from `spec.replication`: a number, or the property's text.
fn replication_value(spec: &RestateClusterSpec) -> Result<Owned, BuildError> {
    let property = spec
        .replication_property()
        .map_err(|reason| BuildError::InvalidSpec { field: "spec.replication".to_owned(), reason })?;
    Ok(Owned::Value(if property.is_count() {
        Value::Integer(i64::from(property.node))
    } else {
        Value::String(property.to_string())
    }))
}

/// Renders the cluster's `restate.toml`: `spec.config` with the operator-owned keys set.
/// Fails only when `spec.config` is not TOML.
pub fn render_config(spec: &RestateClusterSpec, names: &ClusterNames) -> Result<RenderedConfig, BuildError> {
    let mut table = match spec.config.as_deref() {
        Some(text) => text.parse::<Table>().map_err(|e| BuildError::InvalidConfig(e.to_string()))?,
        None => Table::new(),
    };
    let owned = owned_keys(spec, names)?;
    let mut overridden = Vec::new();
    for (path, ownership) in &owned {
        let previous = take(&mut table, path);
        let (replacement, reason) = match ownership {
            Owned::Value(value) => (Some(value.clone()), format!("the operator sets it to {value}")),
            Owned::PerPod(variable) => (None, format!("every pod sets its own through {variable}")),
            Owned::FromKubernetesNode => (
                None,
                "every pod reads its own from its Kubernetes node's topology.kubernetes.io/region and \
                 topology.kubernetes.io/zone labels"
                    .to_owned(),
            ),
            Owned::Credential => (
                None,
                "credentials never go into the ConfigMap; put them in the Secret named by \
                 spec.snapshots.credentialsSecret"
                    .to_owned(),
            ),
        };
        if let Some(user_value) = previous {
            if replacement.as_ref() != Some(&user_value) {
                let shown = match ownership {
                    Owned::Credential => "\"***\"".to_owned(),
                    _ if looks_secret(path) => "\"***\"".to_owned(),
                    _ => user_value.to_string(),
                };
                overridden.push(OverriddenKey {
                    key: path.to_string(),
                    source: OverrideSource::Config,
                    user_value: shown,
                    reason,
                });
            }
        }
        if let Some(value) = replacement {
            put(&mut table, path, value, &mut overridden);
        }
    }
    let (user_env, env_overrides) = filter_env(spec, &owned);
    overridden.extend(env_overrides);

    let mut running = table.clone();
    for key in PROVISIONING_ONLY_KEYS {
        running.remove(key);
    }
    let checksum = hex::encode(Sha256::digest(to_toml(&running).as_bytes()));
    let toml = format!(
        "# restate.toml of RestateCluster {}/{}, rendered by restate-operator: spec.config with the\n\
         # operator's keys set. Node name and advertised address come from each pod's environment.\n{}",
        names.namespace,
        names.name,
        to_toml(&table)
    );
    Ok(RenderedConfig { toml, checksum, overridden, user_env })
}

fn to_toml(table: &Table) -> String {
    toml::to_string(table).expect("a TOML table serializes")
}

/// Removes and returns the value at dotted `path`, if the tables on the way exist.
fn take(table: &mut Table, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => table.remove(path),
        Some((head, rest)) => match table.get_mut(head)? {
            Value::Table(inner) => take(inner, rest),
            // Not a table where one is needed: `put` replaces and reports it.
            _ => None,
        },
    }
}

/// Sets `value` at dotted `path`, creating tables on the way; a non-table in the way is
/// replaced and reported.
fn put(table: &mut Table, path: &str, value: Value, overridden: &mut Vec<OverriddenKey>) {
    put_at(table, path, value, "", overridden)
}

fn put_at(table: &mut Table, path: &str, value: Value, prefix: &str, overridden: &mut Vec<OverriddenKey>) {
    match path.split_once('.') {
        None => {
            table.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let full = format!("{prefix}{head}");
            if let Some(existing) = table.get(head).filter(|v| !v.is_table()) {
                overridden.push(OverriddenKey {
                    key: full.clone(),
                    source: OverrideSource::Config,
                    user_value: existing.to_string(),
                    reason: format!("`{full}` must be a table holding operator-owned keys"),
                });
                table.remove(head);
            }
            let inner = table.entry(head.to_owned()).or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(inner) = inner else { unreachable!("non-tables were removed above") };
            put_at(inner, rest, value, &format!("{full}."), overridden)
        }
    }
}

/// `spec.env` without the variables the operator sets itself and those that would set an
/// operator-owned key (`RESTATE_CLUSTER_NAME`, ...), each of those reported.
/// Whether a variable or key name looks like it holds a secret (`*SECRET*`, `*TOKEN*`,
/// `*PASSWORD*`, `AWS_*`): its value is never shown in conditions or Events.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase().replace('-', "_");
    ["SECRET", "TOKEN", "PASSWORD"].iter().any(|word| upper.contains(word)) || upper.starts_with("AWS_")
}

fn filter_env(spec: &RestateClusterSpec, owned: &[(&'static str, Owned)]) -> (Vec<EnvVar>, Vec<OverriddenKey>) {
    let mut operator_env = vec![
        ENV_POD_NAME,
        ENV_NODE_NAME,
        ENV_ADVERTISED_ADDRESS,
        ENV_CONFIG_FILE,
        ENV_BASE_DIR,
        ENV_CLUSTER_SECRET_FILE,
        ENV_KUBERNETES_NODE,
        ENV_LOCATION_FILE,
    ];
    if spec.snapshots.as_ref().is_some_and(|s| s.credentials_secret.is_some()) {
        operator_env.extend([ENV_AWS_ACCESS_KEY_ID, ENV_AWS_SECRET_ACCESS_KEY, ENV_AWS_SESSION_TOKEN]);
    }
    let owned_values: BTreeSet<&str> =
        owned.iter().filter(|(_, o)| !matches!(o, Owned::Credential)).map(|(path, _)| *path).collect();
    let mut kept = Vec::new();
    let mut overridden = Vec::new();
    for var in spec.env.iter().flatten() {
        let shown = match (&var.value, &var.value_from) {
            (Some(_), _) if looks_secret(&var.name) => "\"***\"".to_owned(),
            (Some(value), _) => format!("{value:?}"),
            (None, Some(_)) => "(valueFrom)".to_owned(),
            (None, None) => "\"\"".to_owned(),
        };
        let reason = if operator_env.contains(&var.name.as_str()) {
            Some("the operator sets this variable itself".to_owned())
        } else {
            key_for_env_var(&var.name)
                .filter(|key| owned_values.contains(key.as_str()))
                .map(|key| format!("it would set `{key}`, which the operator owns"))
        };
        match reason {
            Some(reason) => overridden.push(OverriddenKey {
                key: var.name.clone(),
                source: OverrideSource::Env,
                user_value: shown,
                reason,
            }),
            None => kept.push(var.clone()),
        }
    }
    (kept, overridden)
}

/// Checks the rendered config the way the node daemon will at startup, as pod 0 sees it
/// (its file and the literal `RESTATE_*` variables of its container). `Err` is the daemon's
/// own message listing every problem, for a condition, so that a bad `spec.config` is
/// reported before any pod crash-loops on it.
pub fn validate_config(rendered: &RenderedConfig, names: &ClusterNames) -> Result<(), String> {
    let mut env =
        vec![(ENV_NODE_NAME.to_owned(), names.pod(0)), (ENV_ADVERTISED_ADDRESS.to_owned(), names.node_address(0))];
    env.extend(rendered.user_env.iter().filter_map(|var| Some((var.name.clone(), var.value.clone()?))));
    let sources = ConfigSources {
        file: Some(ConfigFile { path: config_file_path().into(), contents: rendered.toml.clone() }),
        env,
        cli: Vec::new(),
    };
    restate_config::load(&sources).map(drop).map_err(|errors| errors.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SnapshotsSpec;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn names() -> ClusterNames {
        ClusterNames::new("demo", "prod", "cluster.local")
    }

    /// The fixture cluster's spec (3 nodes, replication 2) with 12 partitions and `config`.
    fn spec(config: Option<&str>) -> RestateClusterSpec {
        let mut spec = crate::objects::fixtures::cluster().spec;
        spec.partitions = 12;
        spec.config = config.map(str::to_owned);
        spec
    }

    fn parsed(rendered: &RenderedConfig) -> Table {
        rendered.toml.parse::<Table>().expect("rendered TOML parses back")
    }

    fn get<'t>(table: &'t Table, path: &str) -> Option<&'t Value> {
        let (head, rest) = match path.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (path, None),
        };
        match (table.get(head), rest) {
            (value, None) => value,
            (Some(Value::Table(inner)), Some(rest)) => get(inner, rest),
            _ => None,
        }
    }

    #[test]
    fn renders_the_operator_owned_keys() {
        let rendered = render_config(&spec(None), &names()).unwrap();
        let table = parsed(&rendered);
        assert_eq!(get(&table, "cluster-name").unwrap().as_str(), Some("demo"));
        assert_eq!(get(&table, "auto-provision").unwrap().as_bool(), Some(false));
        assert_eq!(get(&table, "default-replication").unwrap().as_integer(), Some(2));
        assert_eq!(get(&table, "default-num-partitions").unwrap().as_integer(), Some(12));
        assert_eq!(get(&table, "base-dir").unwrap().as_str(), Some("/restate-data"));
        assert_eq!(get(&table, "metadata-server.type").unwrap().as_str(), Some("replicated"));
        assert_eq!(get(&table, "bifrost.default-provider").unwrap().as_str(), Some("replicated"));
        let roles: Vec<_> = get(&table, "roles").unwrap().as_array().unwrap().iter().map(|r| r.as_str()).collect();
        assert_eq!(roles.len(), 5);
        let addresses = get(&table, "metadata-client.addresses").unwrap().as_array().unwrap();
        assert_eq!(addresses.len(), 3);
        assert_eq!(addresses[0].as_str(), Some("http://demo-0.demo-cluster.prod.svc.cluster.local:5122"));
        assert!(get(&table, "node-name").is_none(), "set per pod");
        assert!(get(&table, "advertised-address").is_none(), "set per pod");
        assert!(get(&table, "worker").is_none(), "no snapshots asked for");
        assert!(rendered.overridden.is_empty());
        assert_eq!(rendered.checksum.len(), 64);
    }

    #[test]
    fn rendered_config_passes_the_daemons_validation() {
        let mut spec = spec(Some("rocksdb-total-memory-size = \"512 MiB\"\nlog-format = \"json\"\n"));
        spec.snapshots = Some(SnapshotsSpec {
            destination: "s3://bucket/demo".into(),
            interval: Some("1h".into()),
            interval_num_records: Some(5000),
            trim: true,
            credentials_secret: Some("s3-creds".into()),
            endpoint: Some("http://minio.storage:9000".into()),
            region: Some("eu-central-1".into()),
        });
        let rendered = render_config(&spec, &names()).unwrap();
        validate_config(&rendered, &names()).unwrap();
        let table = parsed(&rendered);
        assert_eq!(get(&table, "worker.snapshots.destination").unwrap().as_str(), Some("s3://bucket/demo"));
        assert_eq!(get(&table, "worker.snapshots.snapshot-interval-num-records").unwrap().as_integer(), Some(5000));
        assert_eq!(get(&table, "worker.snapshots.aws-allow-http").unwrap().as_bool(), Some(true));
        assert_eq!(get(&table, "worker.snapshots.aws-region").unwrap().as_str(), Some("eu-central-1"));
        assert_eq!(get(&table, "log-format").unwrap().as_str(), Some("json"));
        assert!(!rendered.toml.contains("aws-access-key-id") && !rendered.toml.contains("aws-secret"));
    }

    #[test]
    fn validation_reports_a_users_typo_with_the_key() {
        let rendered = render_config(&spec(Some("rocksdb-total-memory = \"1 GiB\"")), &names()).unwrap();
        let error = validate_config(&rendered, &names()).unwrap_err();
        assert!(error.contains("rocksdb-total-memory"), "{error}");
    }

    #[test]
    fn operator_keys_win_and_every_override_is_reported() {
        let user = r#"
            cluster-name = "mine"
            node-name = "n1"
            auto-provision = false
            default-replication = 2
            rocksdb-total-memory-size = "2 GiB"
            [metadata-client]
            addresses = ["http://elsewhere:5122"]
            [admin]
            bind-address = "0.0.0.0:9999"
            [worker.snapshots]
            aws-secret-access-key = "hunter2"
        "#;
        let rendered = render_config(&spec(Some(user)), &names()).unwrap();
        let table = parsed(&rendered);
        assert_eq!(get(&table, "cluster-name").unwrap().as_str(), Some("demo"));
        assert_eq!(get(&table, "admin.bind-address").unwrap().as_str(), Some("0.0.0.0:9070"));
        assert_eq!(get(&table, "rocksdb-total-memory-size").unwrap().as_str(), Some("2 GiB"), "user key kept");
        assert!(get(&table, "node-name").is_none());
        assert!(get(&table, "worker.snapshots.aws-secret-access-key").is_none());
        assert!(!rendered.toml.contains("hunter2"));

        let keys: Vec<&str> = rendered.overridden.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "cluster-name",
                "node-name",
                "admin.bind-address",
                "metadata-client.addresses",
                "worker.snapshots.aws-secret-access-key"
            ],
            "equal values (auto-provision, default-replication) are no conflict"
        );
        let secret = rendered.overridden.iter().find(|o| o.key.ends_with("aws-secret-access-key")).unwrap();
        assert_eq!(secret.user_value, "\"***\"");
        assert!(secret.describe().contains("credentialsSecret"), "{}", secret.describe());
        let name = &rendered.overridden[0];
        assert_eq!(
            name.describe(),
            "spec.config `cluster-name` = \"mine\" is ignored: the operator sets it to \"demo\""
        );
    }

    #[test]
    fn a_scalar_where_an_owned_table_goes_is_replaced_and_reported() {
        let rendered = render_config(&spec(Some("metadata-server = \"local\"")), &names()).unwrap();
        assert_eq!(get(&parsed(&rendered), "metadata-server.type").unwrap().as_str(), Some("replicated"));
        assert_eq!(rendered.overridden.len(), 1);
        assert_eq!(rendered.overridden[0].key, "metadata-server");
    }

    #[test]
    fn invalid_toml_is_an_error_naming_the_problem() {
        let error = render_config(&spec(Some("roles = [")), &names()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("spec.config"), "{text}");
    }

    #[test]
    fn env_for_owned_keys_is_dropped_and_reported() {
        let mut spec = spec(None);
        let var = |name: &str, value: &str| EnvVar { name: name.into(), value: Some(value.into()), value_from: None };
        spec.env = Some(vec![
            var("RESTATE_CLUSTER_NAME", "other"),
            var("RESTATE_LOG_FILTER", "debug"),
            var("POD_NAME", "x"),
            var("RUST_BACKTRACE", "1"),
            var("RESTATE_METADATA_CLIENT__ADDRESSES", "[]"),
        ]);
        let rendered = render_config(&spec, &names()).unwrap();
        let kept: Vec<&str> = rendered.user_env.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(kept, ["RESTATE_LOG_FILTER", "RUST_BACKTRACE"]);
        let dropped: Vec<&str> = rendered.overridden.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(dropped, ["RESTATE_CLUSTER_NAME", "POD_NAME", "RESTATE_METADATA_CLIENT__ADDRESSES"]);
        assert!(rendered.overridden.iter().all(|o| o.source == OverrideSource::Env));
        assert!(rendered.overridden[0].reason.contains("`cluster-name`"));
    }

    #[test]
    fn values_of_secret_looking_names_are_never_shown() {
        let mut spec = spec(None);
        let var = |name: &str, value: &str| EnvVar { name: name.into(), value: Some(value.into()), value_from: None };
        spec.env = Some(vec![
            var("RESTATE_NETWORKING__CLUSTER_SECRET_FILE", "/my/secret-path"),
            var("RESTATE_BASE_DIR", "/elsewhere"),
        ]);
        let rendered = render_config(&spec, &names()).unwrap();
        let shown: Vec<(&str, &str)> =
            rendered.overridden.iter().map(|o| (o.key.as_str(), o.user_value.as_str())).collect();
        assert_eq!(
            shown,
            [("RESTATE_NETWORKING__CLUSTER_SECRET_FILE", "\"***\""), ("RESTATE_BASE_DIR", "\"/elsewhere\"")]
        );
        assert!(rendered.overridden.iter().all(|o| !o.describe().contains("/my/secret-path")));
        for name in ["MY_API_TOKEN", "db-password", "AWS_REGION", "x_secret"] {
            assert!(looks_secret(name), "{name}");
        }
        assert!(!looks_secret("RUST_LOG"));
    }

    #[test]
    fn checksum_follows_running_settings_only() {
        let base = render_config(&spec(None), &names()).unwrap();
        let mut scaled = spec(None);
        scaled.replicas = 5;
        assert_eq!(render_config(&scaled, &names()).unwrap(), base, "replicas do not enter the config");

        let mut raised = spec(None);
        raised.replication = IntOrString::Int(3);
        let raised = render_config(&raised, &names()).unwrap();
        assert_ne!(raised.toml, base.toml, "the file shows the new default");
        assert_eq!(raised.checksum, base.checksum, "but running nodes need no restart");

        let tuned = render_config(&spec(Some("log-filter = \"debug\"")), &names()).unwrap();
        assert_ne!(tuned.checksum, base.checksum);
    }
}
