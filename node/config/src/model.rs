//! The typed configuration of one node and its defaults.
//!
//! Every key here also appears in `schema::SCHEMA`; a unit test keeps the two in step.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use restate_types::{Location, LogProviderKind, MetadataServerKind, ParseError, ReplicationProperty, RoleSet};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::size::{GIB, MIB};

/// Shown instead of secret values in `Config::to_toml`.
pub const REDACTED: &str = "***";

/// Everything a node reads at startup. Deserialization assumes the input has been validated by
/// `load`; deserializing unvalidated input gives serde's terser messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Unique within the cluster; also the node's directory under `base-dir`.
    pub node_name: String,
    /// Nodes refuse to join a cluster with a different name.
    pub cluster_name: String,
    /// How other nodes reach this node's fabric port; `None` derives it from `bind-address`
    /// (see `advertised_address_for`).
    #[serde(with = "url_text::optional", skip_serializing_if = "Option::is_none")]
    pub advertised_address: Option<Url>,
    /// Whether a node may create the cluster's initial metadata itself.
    pub auto_provision: bool,
    /// Log replication a new cluster gets: copies of every record, and over how many zones
    /// and regions they spread (`2` or `"{zone: 2, node: 3}"`).
    pub default_replication: ReplicationProperty,
    /// Where this node runs, `region.zone` (env `RESTATE_LOCATION`); nodesets spread over it.
    #[serde(skip_serializing_if = "Location::is_empty")]
    pub location: Location,
    /// A file holding the location, read at start when `location` is not set (the
    /// operator points it at the entry of the Kubernetes node the pod runs on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_file: Option<PathBuf>,
    pub default_num_partitions: u32,
    pub roles: RoleSet,
    pub base_dir: PathBuf,
    /// Fabric (node-to-node gRPC) listener.
    pub bind_address: SocketAddr,
    /// Bytes shared by all RocksDB instances of the node.
    #[serde(with = "crate::size::human_bytes")]
    pub rocksdb_total_memory_size: u64,
    /// A tracing `EnvFilter` directive, e.g. `info,restate_bifrost=debug`.
    pub log_filter: String,
    pub log_format: LogFormat,
    /// An Ed25519 private key (PKCS#8 PEM) that signs every request to deployments
    /// (request identity v1); `None`: requests go unsigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_identity_private_key_pem_file: Option<PathBuf>,
    pub bifrost: BifrostOptions,
    pub metadata_server: MetadataServerOptions,
    pub metadata_client: MetadataClientOptions,
    pub admin: AdminOptions,
    pub ingress: IngressOptions,
    pub worker: WorkerOptions,
    pub invocation: InvocationOptions,
    pub networking: NetworkingOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_name: default_node_name(),
            cluster_name: "localcluster".to_owned(),
            advertised_address: None,
            auto_provision: true,
            default_replication: ReplicationProperty::nodes(1),
            location: Location::default(),
            location_file: None,
            default_num_partitions: 24,
            roles: RoleSet::all(),
            base_dir: PathBuf::from("restate-data"),
            bind_address: SocketAddr::from(([0, 0, 0, 0], 5122)),
            rocksdb_total_memory_size: GIB,
            log_filter: "info".to_owned(),
            log_format: LogFormat::default(),
            request_identity_private_key_pem_file: None,
            bifrost: BifrostOptions::default(),
            metadata_server: MetadataServerOptions::default(),
            metadata_client: MetadataClientOptions::default(),
            admin: AdminOptions::default(),
            ingress: IngressOptions::default(),
            worker: WorkerOptions::default(),
            invocation: InvocationOptions::default(),
            networking: NetworkingOptions::default(),
        }
    }
}

/// The machine's host name, restricted to the node-name character set; `"localhost"` when the
/// host name is unavailable or has nothing usable.
fn default_node_name() -> String {
    let host = hostname::get().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let sanitized: String = host.chars().map(|c| if is_name_char(c) { c } else { '-' }).collect();
    if sanitized.trim_matches(['-', '.']).is_empty() {
        "localhost".to_owned()
    } else {
        sanitized
    }
}

pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl Config {
    /// This node's own data directory: `base-dir/node-name`.
    pub fn node_dir(&self) -> PathBuf {
        self.base_dir.join(&self.node_name)
    }

    /// The address other nodes use to reach this node: the configured `advertised-address`,
    /// or else derived from the actually bound fabric address, with an unspecified IP
    /// (`0.0.0.0` / `::`) replaced by `127.0.0.1` (`https://` with TLS on the node port).
    pub fn advertised_address_for(&self, bound_fabric: SocketAddr) -> Url {
        if let Some(configured) = &self.advertised_address {
            return configured.clone();
        }
        let ip = if bound_fabric.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { bound_fabric.ip() };
        let authority = SocketAddr::new(ip, bound_fabric.port());
        let scheme = if self.networking.tls_cert_file.is_some() { "https" } else { "http" };
        Url::parse(&format!("{scheme}://{authority}")).expect("<scheme>://<ip>:<port> is a valid URL")
    }

    /// The metadata servers this node talks to: the configured list, or this node alone.
    pub fn metadata_client_addresses_for(&self, advertised: &Url) -> Vec<Url> {
        if self.metadata_client.addresses.is_empty() {
            vec![advertised.clone()]
        } else {
            self.metadata_client.addresses.clone()
        }
    }

    /// The effective configuration as TOML (for `--dump-config`), with secrets shown as `***`.
    /// Loading the output again gives the same configuration except for the secrets.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.worker.snapshots.redact_secrets();
        toml::to_string_pretty(&shown).expect("every Config value has a TOML form")
    }
}

/// Output format of the node's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable, one event per line (possibly with colors on a terminal).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub const ALL: [LogFormat; 2] = [LogFormat::Pretty, LogFormat::Json];
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[bifrost]`: the durable log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BifrostOptions {
    /// Loglet kind for newly created log segments.
    pub default_provider: LogProviderKind,
}

/// `[metadata-server]`: only relevant on nodes with the `metadata-server` role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetadataServerOptions {
    #[serde(rename = "type")]
    pub kind: MetadataServerKind,
    /// A replicated member joins the store by itself once its node is registered.
    pub auto_join: bool,
    /// Raft tick of the replicated store, in milliseconds.
    #[serde(rename = "raft-tick-interval")]
    pub raft_tick_interval_ms: u64,
    /// Ticks without a leader before a member campaigns (randomized up to twice this).
    pub raft_election_tick: u32,
    /// Ticks between leader heartbeats; must be below `raft-election-tick`.
    pub raft_heartbeat_tick: u32,
}

impl Default for MetadataServerOptions {
    /// 50 ms ticks, election after 12-24 ticks (0.6-1.2 s), heartbeats every 100 ms:
    /// a lost leader is replaced well under 2 s, and a 500 ms stall of a saturated
    /// machine still does not trigger an election.
    fn default() -> Self {
        MetadataServerOptions {
            kind: MetadataServerKind::default(),
            auto_join: true,
            raft_tick_interval_ms: 50,
            raft_election_tick: 12,
            raft_heartbeat_tick: 2,
        }
    }
}

/// `[metadata-client]`: how every node reaches the metadata servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetadataClientOptions {
    /// Advertised addresses of metadata-server nodes; empty means this node itself.
    #[serde(with = "url_text::list")]
    pub addresses: Vec<Url>,
}

/// `[admin]`: the admin API (only on nodes with the `admin` role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AdminOptions {
    pub bind_address: SocketAddr,
    pub query_engine: QueryEngineOptions,
    /// How long a log-server may stay unreachable before the cluster controller replaces
    /// it in the nodesets of replicated loglets (when a spare log-server exists), in
    /// milliseconds.
    #[serde(rename = "log-server-repair-grace-period")]
    pub log_server_repair_grace_period_ms: u64,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            bind_address: SocketAddr::from(([0, 0, 0, 0], 9070)),
            query_engine: QueryEngineOptions::default(),
            log_server_repair_grace_period_ms: 30_000,
        }
    }
}

/// `[admin.query-engine]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QueryEngineOptions {
    /// PostgreSQL wire-protocol listener for SQL introspection; `None` disables it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgsql_bind_address: Option<SocketAddr>,
    /// Rows one query may return (more is an error naming this key).
    pub max_rows: u64,
    /// Memory one query's sorts, joins and aggregations may hold.
    #[serde(with = "crate::size::human_bytes")]
    pub max_memory: u64,
}

impl Default for QueryEngineOptions {
    fn default() -> Self {
        QueryEngineOptions { pgsql_bind_address: None, max_rows: 100_000, max_memory: 256 * MIB }
    }
}

/// `[ingress]`: the HTTP ingress (on nodes with the `worker` or `http-ingress` role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IngressOptions {
    pub bind_address: SocketAddr,
    /// Largest request body the ingress accepts; larger ones get 413.
    #[serde(with = "crate::size::human_bytes")]
    pub request_body_size_limit: u64,
}

impl Default for IngressOptions {
    fn default() -> Self {
        IngressOptions { bind_address: SocketAddr::from(([0, 0, 0, 0], 8080)), request_body_size_limit: 10 * MIB }
    }
}

/// `[networking]`: who may talk to the node port, and the limits of every listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkingOptions {
    /// A file holding the cluster secret (the same on every node): every RPC on the node
    /// port must carry it. `None`: RPCs are not authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Mutual TLS on the node port: this node's certificate chain (PEM), its private key
    /// (PEM) and the cluster's CA certificate(s) every peer's certificate must chain to.
    /// All three or none; re-read when the files change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// Permits binding the node port to a non-loopback address without credentials
    /// (anyone who reaches the port can then change the cluster).
    pub insecure: bool,
    /// How long a connection may take to deliver a request's whole head, in milliseconds
    /// (also how long an HTTP/1.1 keep-alive connection may stay idle).
    #[serde(rename = "request-header-timeout")]
    pub request_header_timeout_ms: u64,
    /// Connections each listener (node port, admin API, ingress) keeps open at most.
    pub max_connections: u64,
}

impl Default for NetworkingOptions {
    fn default() -> Self {
        NetworkingOptions {
            cluster_secret_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            insecure: false,
            request_header_timeout_ms: 10_000,
            max_connections: 10_000,
        }
    }
}

/// `[worker]`: partition processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkerOptions {
    /// How long a completed invocation's result (and its idempotency key) is kept, in
    /// milliseconds: a repeated request with the same key within it gets the stored
    /// result, `/attach` and `/output` find it. Purged by the partition leader after.
    #[serde(rename = "idempotency-retention")]
    pub idempotency_retention_ms: u64,
    /// How long a finished workflow run's result, state and promises are kept, in
    /// milliseconds (a service's `workflow_completion_retention` in the admin API
    /// overrides it); after it the workflow key can run again.
    #[serde(rename = "workflow-completion-retention")]
    pub workflow_completion_retention_ms: u64,
    pub snapshots: SnapshotOptions,
    pub invoker: InvokerOptions,
}

/// `[invocation]`: how invocations are run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct InvocationOptions {
    pub default_retry_policy: RetryPolicyOptions,
}

/// `[invocation.default-retry-policy]`: how a failed attempt is retried (exponential
/// backoff), and what happens after the last one. Restate's keys and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryPolicyOptions {
    /// The pause before the first retry, in milliseconds.
    #[serde(rename = "initial-interval")]
    pub initial_interval_ms: u64,
    /// Each pause is the previous one times this.
    pub exponentiation_factor: f64,
    /// The longest pause, in milliseconds.
    #[serde(rename = "max-interval")]
    pub max_interval_ms: u64,
    /// Attempts in all (the first included) before `on-max-attempts`.
    pub max_attempts: u32,
    pub on_max_attempts: OnMaxAttempts,
}

impl Default for RetryPolicyOptions {
    fn default() -> Self {
        RetryPolicyOptions {
            initial_interval_ms: 50,
            exponentiation_factor: 2.0,
            max_interval_ms: 10_000,
            max_attempts: 70,
            on_max_attempts: OnMaxAttempts::Pause,
        }
    }
}

/// What becomes of an invocation whose last attempt failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnMaxAttempts {
    /// `paused` until an operator resumes it (`restate invocations resume`).
    #[default]
    Pause,
    /// Failed with the last attempt's error (no compensation runs).
    Kill,
}

/// `[worker.invoker]`: how long an invocation attempt may go quiet, and last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct InvokerOptions {
    /// An attempt whose deployment sends nothing (no response, no frame) for this long is
    /// cut and retried with backoff, in milliseconds.
    #[serde(rename = "inactivity-timeout")]
    pub inactivity_timeout_ms: u64,
    /// The longest one attempt may take in all, in milliseconds; then it is cut and retried.
    #[serde(rename = "abort-timeout")]
    pub abort_timeout_ms: u64,
}

impl Default for InvokerOptions {
    fn default() -> Self {
        InvokerOptions { inactivity_timeout_ms: 60_000, abort_timeout_ms: 600_000 }
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            idempotency_retention_ms: 24 * 3_600_000,
            workflow_completion_retention_ms: 24 * 3_600_000,
            snapshots: SnapshotOptions::default(),
            invoker: InvokerOptions::default(),
        }
    }
}

/// `[worker.snapshots]`: where and how often partition snapshots are written. The `aws-*`
/// keys only matter for an `s3://` destination; unset ones fall back to the AWS SDK defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SnapshotOptions {
    /// `None` disables snapshots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<SnapshotDestination>,
    /// Write a snapshot after this many applied log records; `None` = only on request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_interval_num_records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(with = "url_text::optional", skip_serializing_if = "Option::is_none")]
    pub aws_endpoint_url: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<String>,
    /// Secret: never shown by `Config::to_toml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<String>,
    /// Secret: never shown by `Config::to_toml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_session_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_profile: Option<String>,
    /// Permit a plain-http `aws-endpoint-url` (e.g. a local MinIO).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_allow_http: Option<bool>,
}

impl SnapshotOptions {
    fn redact_secrets(&mut self) {
        for secret in [&mut self.aws_secret_access_key, &mut self.aws_session_token] {
            if secret.is_some() {
                *secret = Some(REDACTED.to_owned());
            }
        }
    }
}

/// Where partition snapshots go. Written as `s3://<bucket>/<prefix>` or
/// `file:///<absolute directory>`; `Display` gives that form back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SnapshotDestination {
    /// `prefix` has no leading or trailing `/` and may be empty.
    S3 { bucket: String, prefix: String },
    /// Always an absolute path.
    Directory(PathBuf),
}

const SNAPSHOT_DESTINATION_FORMS: &str = "expected s3://<bucket>/<prefix> for an S3 bucket \
     (e.g. s3://snapshots-bucket/cluster-prefix) or file://<absolute path> for a local \
     directory (e.g. file:///var/lib/restate/snapshots)";

impl FromStr for SnapshotDestination {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |expected: String| ParseError { what: "snapshot destination", input: s.to_owned(), expected };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(format!("the bucket name is missing; {SNAPSHOT_DESTINATION_FORMS}")));
            }
            if let Some(c) = bucket.chars().find(|c| c.is_whitespace() || matches!(c, '?' | '#' | '@' | ':')) {
                return Err(invalid(format!("the bucket name contains {c:?}; {SNAPSHOT_DESTINATION_FORMS}")));
            }
            Ok(SnapshotDestination::S3 { bucket: bucket.to_owned(), prefix: prefix.trim_matches('/').to_owned() })
        } else if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(format!(
                    "a file:// destination needs an absolute path, i.e. three slashes as in \
                     file:///var/lib/restate/snapshots; {SNAPSHOT_DESTINATION_FORMS}"
                )));
            }
            Ok(SnapshotDestination::Directory(PathBuf::from(path)))
        } else {
            Err(invalid(SNAPSHOT_DESTINATION_FORMS.to_owned()))
        }
    }
}

impl fmt::Display for SnapshotDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotDestination::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            SnapshotDestination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            SnapshotDestination::Directory(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl Serialize for SnapshotDestination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SnapshotDestination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde adapters writing URLs as their text form (the `url` crate's own serde support is
/// not enabled in this workspace).
mod url_text {
    pub mod optional {
        use serde::{Deserialize, Deserializer, Serializer};
        use url::Url;

        pub fn serialize<S: Serializer>(url: &Option<Url>, serializer: S) -> Result<S::Ok, S::Error> {
            match url {
                Some(url) => serializer.serialize_some(url.as_str()),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Url>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| Url::parse(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    pub mod list {
        use serde::{Deserialize, Deserializer, Serializer};
        use url::Url;

        pub fn serialize<S: Serializer>(urls: &[Url], serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(urls.iter().map(Url::as_str))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Url>, D::Error> {
            Vec::<String>::deserialize(deserializer)?
                .iter()
                .map(|text| Url::parse(text).map_err(serde::de::Error::custom))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_bound_nowhere() -> Config {
        Config { node_name: "n1".into(), ..Config::default() }
    }

    #[test]
    fn node_dir_is_base_dir_slash_node_name() {
        let config = Config { base_dir: "/data".into(), ..config_bound_nowhere() };
        assert_eq!(config.node_dir(), PathBuf::from("/data/n1"));
    }

    #[test]
    fn advertised_address_is_derived_from_the_bound_address() {
        let config = config_bound_nowhere();
        let any: SocketAddr = "0.0.0.0:40123".parse().unwrap();
        assert_eq!(config.advertised_address_for(any).as_str(), "http://127.0.0.1:40123/");
        let specific: SocketAddr = "10.1.2.3:5122".parse().unwrap();
        assert_eq!(config.advertised_address_for(specific).as_str(), "http://10.1.2.3:5122/");
        let v6: SocketAddr = "[fd00::1]:5122".parse().unwrap();
        assert_eq!(config.advertised_address_for(v6).as_str(), "http://[fd00::1]:5122/");
        let mut tls = config.clone();
        tls.networking.tls_cert_file = Some("node.crt".into());
        assert_eq!(tls.advertised_address_for(specific).as_str(), "https://10.1.2.3:5122/");

        let configured = Url::parse("http://node1:5122").unwrap();
        let config = Config { advertised_address: Some(configured.clone()), ..config };
        assert_eq!(config.advertised_address_for(any), configured);
    }

    #[test]
    fn metadata_client_defaults_to_this_node() {
        let mut config = config_bound_nowhere();
        let me = Url::parse("http://127.0.0.1:5122").unwrap();
        assert_eq!(config.metadata_client_addresses_for(&me), vec![me.clone()]);
        let others = vec![Url::parse("http://n1:5122").unwrap(), Url::parse("http://n2:5122").unwrap()];
        config.metadata_client.addresses = others.clone();
        assert_eq!(config.metadata_client_addresses_for(&me), others);
    }

    #[test]
    fn snapshot_destinations_round_trip_through_text() {
        let s3: SnapshotDestination = "s3://snapshots-bucket/cluster-prefix".parse().unwrap();
        assert_eq!(s3, SnapshotDestination::S3 { bucket: "snapshots-bucket".into(), prefix: "cluster-prefix".into() });
        assert_eq!(s3.to_string(), "s3://snapshots-bucket/cluster-prefix");
        let bare: SnapshotDestination = "s3://bucket".parse().unwrap();
        assert_eq!(bare.to_string(), "s3://bucket");
        let dir: SnapshotDestination = "file:///var/snaps".parse().unwrap();
        assert_eq!(dir, SnapshotDestination::Directory("/var/snaps".into()));
        assert_eq!(dir.to_string(), "file:///var/snaps");

        for bad in ["s3://", "s3:///prefix", "file://relative/dir", "/var/snaps", "gs://bucket"] {
            let err = bad.parse::<SnapshotDestination>().unwrap_err().to_string();
            assert!(err.contains("s3://") && err.contains("file://"), "{bad}: {err}");
        }
    }

    #[test]
    fn default_node_name_is_a_valid_name() {
        let name = default_node_name();
        assert!(!name.is_empty() && name.chars().all(is_name_char), "{name}");
    }
}
