//! The `RestateCluster` custom resource (`restate.dev/v1`): what a user asks for (spec) and
//! what the operator reports (status).
//!
//! Every field's doc comment becomes its `description` in the CRD, so `kubectl explain
//! restatecluster.spec.<field>` shows it. The schema holds only what OpenAPI can express
//! (ranges, patterns, enums) and nothing a 1.20 API server does not know (no CEL rules);
//! rules across fields (replication versus node count, credentials with S3) are the
//! operator's and land in status conditions.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, LocalObjectReference, ResourceRequirements, Toleration, TopologySpreadConstraint,
    Volume, VolumeMount,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt};
use restate_types::{ReplicationProperty, MAX_REPLICATION};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "restate.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1";

/// Desired state of a Restate cluster. The operator runs `replicas` nodes, each with every
/// role (metadata server, log server, worker, admin, HTTP ingress), in a StatefulSet with one
/// persistent volume per node. It provisions the cluster once, raises log replication as
/// nodes join, drains nodes before scaling in, and takes snapshots on the schedule given in
/// `snapshots`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "restate.dev",
    version = "v1",
    kind = "RestateCluster",
    plural = "restateclusters",
    singular = "restatecluster",
    shortname = "rsc",
    namespaced,
    status = "RestateClusterStatus",
    derive = "PartialEq",
    annotation("helm.sh/resource-policy", "keep"),
    doc = "A Restate cluster run by restate-operator: nodes in a StatefulSet, provisioned once, scaled with drains, snapshotted on a schedule.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Pending, Provisioning, Running, Scaling, Upgrading or Degraded"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".spec.replicas","description":"Nodes asked for in spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyNodes","description":"Nodes whose pods are ready"}"#,
    printcolumn = r#"{"name":"Provisioned","type":"boolean","jsonPath":".status.provisioned","description":"Whether the cluster's initial metadata has been written"}"#,
    printcolumn = r#"{"name":"Replication","type":"integer","jsonPath":".status.logReplication","description":"Log replication the cluster runs at"}"#,
    printcolumn = r#"{"name":"Last Snapshot","type":"date","jsonPath":".status.lastSnapshot.time","description":"When the last snapshot of all partitions finished"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RestateClusterSpec {
    /// Number of Restate nodes (pods). Every node runs all roles. Scaling out adds nodes that
    /// join the metadata store and the logs; scaling in drains the highest-numbered nodes
    /// (partition leaders and log replicas move away, the node leaves the metadata store)
    /// before their pods and volumes are removed. At most 128.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 128))]
    pub replicas: i32,

    /// Container image holding the `restate-server` binary (its entrypoint) and `restatectl`.
    #[schemars(length(min = 1))]
    pub image: String,

    /// When the kubelet pulls the image: Always, IfNotPresent or Never. Unset follows the
    /// Kubernetes default (Always for `:latest`, else IfNotPresent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "image_pull_policy_schema")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets (in the cluster's namespace) used to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// Extra `restate.toml` content (TOML text) for every node, e.g.
    /// `rocksdb-total-memory-size = "2 GiB"`. It is merged under the keys the operator owns
    /// (cluster name, roles, ports, base directory, metadata and log setup, provisioning,
    /// snapshot destination and S3 settings, and never credentials): where both set a key, the
    /// operator's value wins and the `ConfigOverridden` condition names the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,

    /// Log replication r: every log record is stored on r nodes before it is acknowledged, so
    /// the cluster survives r-1 lost nodes. Replication r needs 2r-1 nodes; with fewer, the
    /// cluster runs at the highest replication its nodes allow and the `ReplicationPending`
    /// condition says so until enough nodes have joined. A number (1 to 128), or Restate's
    /// replication property as a string, e.g. "{zone: 2, node: 3}": three copies spread over
    /// at least two zones (at most (r-1)/(zones-1) members of a nodeset in one zone, so a
    /// lost zone leaves a majority). Pods learn their zone from their Kubernetes node's
    /// `topology.kubernetes.io/region` and `topology.kubernetes.io/zone` labels.
    #[serde(default = "default_replication")]
    #[schemars(schema_with = "int_or_string_schema")]
    pub replication: IntOrString,

    /// Number of partitions, fixed when the cluster is provisioned; later changes have no
    /// effect on a provisioned cluster.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 4096))]
    pub partitions: i32,

    /// The persistent volume of every node (mounted at the node's base directory).
    pub storage: StorageSpec,

    /// CPU and memory requests and limits of the Restate container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Partition snapshots: where they go and how often the operator triggers them. Without
    /// it, no snapshots are taken and logs are never trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotsSpec>,

    /// Extra environment variables of the Restate container. Variables that would set a key the
    /// operator owns (e.g. `RESTATE_CLUSTER_NAME`) or one it sets itself are left out and named
    /// in the `ConfigOverridden` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,

    /// Node labels a node must have to run a Restate pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the Restate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Scheduling affinity of the Restate pods (e.g. spread them across zones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Annotations added to every Restate pod. The operator's own annotations win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Labels added to every Restate pod. The operator's `app.kubernetes.io/*` labels win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Who may reach the nodes (a NetworkPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,

    /// How the Restate pods spread over topology domains. Unset: over zones
    /// (`topology.kubernetes.io/zone`, maxSkew 1, ScheduleAnyway), so that one zone's loss
    /// takes as few nodes as the nodes allow; an empty list: no constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// PriorityClass of the Restate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,

    /// Annotations of the pods' ServiceAccount, e.g. a cloud identity
    /// (`eks.amazonaws.com/role-arn`, `iam.gke.io/gcp-service-account`) for S3 snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_annotations: Option<BTreeMap<String, String>>,

    /// How long a stopping node may take to hand over its leaderships and flush before the
    /// kubelet kills it, in seconds (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 3600))]
    pub termination_grace_period_seconds: Option<i64>,

    /// Extra volumes of the Restate pods (Kubernetes Volume objects, checked by the API
    /// server). `data`, `config`, `tmp` and `cluster-secret` are the operator's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kubernetes_objects_schema")]
    pub volumes: Option<Vec<Volume>>,

    /// Extra volume mounts of the Restate container (of `volumes`, or of a sidecar's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kubernetes_objects_schema")]
    pub volume_mounts: Option<Vec<VolumeMount>>,

    /// Containers run beside the Restate container in every pod (Kubernetes Container
    /// objects, checked by the API server), e.g. a log shipper. `restate` is the operator's
    /// container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "kubernetes_objects_schema")]
    pub sidecars: Option<Vec<Container>>,
}

/// A list of Kubernetes objects kept as they are written (the API server checks them when
/// the StatefulSet is applied): their full schemas would make the CRD too large for
/// `kubectl apply`'s last-applied annotation.
fn kubernetes_objects_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

fn default_replicas() -> i32 {
    1
}

fn default_replication() -> IntOrString {
    IntOrString::Int(1)
}

fn int_or_string_schema(_: &mut SchemaGenerator) -> Schema {
    // No anyOf branches: the test below keeps every junctor out (one structural form).
    json_schema!({ "x-kubernetes-int-or-string": true })
}

impl RestateClusterSpec {
    /// `spec.replication` as Restate's replication property; the error says what is wrong
    /// (the caller names the field).
    pub fn replication_property(&self) -> Result<ReplicationProperty, String> {
        let text = match &self.replication {
            IntOrString::Int(n) if !(1..=MAX_REPLICATION as i32).contains(n) => {
                return Err(format!("{n} is out of range: use 1 to {MAX_REPLICATION}"));
            }
            IntOrString::Int(n) => n.to_string(),
            IntOrString::String(text) => text.clone(),
        };
        text.parse::<ReplicationProperty>().map_err(|e| e.to_string())
    }

    /// The copy count of `spec.replication` (1 when it does not parse: the round refuses
    /// such a spec before anything reads this).
    pub fn replication_nodes(&self) -> u32 {
        self.replication_property().map_or(1, |p| p.node)
    }
}

fn default_partitions() -> i32 {
    24
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub const ALL: [ImagePullPolicy; 3] =
        [ImagePullPolicy::Always, ImagePullPolicy::IfNotPresent, ImagePullPolicy::Never];

    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// The persistent volume of every node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each node's volume, e.g. `10Gi`. It can grow (every claim is expanded where the
    /// StorageClass allows volume expansion; running pods are not restarted) but not shrink.
    pub size: Quantity,

    /// StorageClass of the volumes; unset uses the namespace's default class. Fixed once the
    /// volumes exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Delete the nodes' volume claims (and with them, depending on the StorageClass's reclaim
    /// policy, their data) when the RestateCluster is deleted. Default false: the claims
    /// `data-<name>-<i>` are kept, so that a cluster re-created under the same name finds its
    /// data, and must be deleted by hand to free the volumes.
    #[serde(default)]
    pub delete_claims_on_delete: bool,
}

/// Partition snapshots and log trimming.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotsSpec {
    /// Where snapshots go: `s3://bucket/prefix` (any S3-compatible store) or
    /// `file:///absolute/path` (only useful with one node or a shared volume).
    #[schemars(regex(pattern = r"^(s3://[^/]+.*|file:///.*)$"))]
    pub destination: String,

    /// How often the operator snapshots every partition, as a number and a unit (s, m, h or d),
    /// e.g. `30m` or `6h`. Unset: only the nodes' own record-count trigger applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(s|m|h|d)$"))]
    pub interval: Option<String>,

    /// A partition leader also snapshots by itself after this many new log records
    /// (`worker.snapshots.snapshot-interval-num-records`). Unset: the node's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub interval_num_records: Option<i64>,

    /// Trim every partition's log behind the snapshot just taken (never past what a live
    /// replica still needs), so that logs do not grow without bound.
    #[serde(default)]
    pub trim: bool,

    /// Name of a Secret in the cluster's namespace with the keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (and optionally `AWS_SESSION_TOKEN`), passed to the nodes as
    /// environment variables. Unset: the AWS default credential chain (e.g. workload identity).
    /// Credentials never go into the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,

    /// Endpoint of an S3-compatible store, e.g. `http://minio.storage:9000` (path-style
    /// addressing is used; `http://` endpoints are allowed explicitly). Unset: AWS S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://.+$"))]
    pub endpoint: Option<String>,

    /// Region of the bucket, e.g. `eu-central-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl SnapshotsSpec {
    /// `interval` as a duration; `None` when unset, `Err` naming the field when it does not
    /// have the form the schema asks for (`<number><s|m|h|d>`, e.g. `30m`).
    pub fn interval_duration(&self) -> Option<Result<Duration, String>> {
        let text = self.interval.as_deref()?;
        let invalid =
            || format!("spec.snapshots.interval {text:?} is not a number and a unit (s, m, h or d), e.g. \"30m\"");
        let unit = match text.chars().last() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            _ => return Some(Err(invalid())),
        };
        let number = text[..text.len() - 1].parse::<u64>().ok().filter(|n| *n > 0);
        Some(number.and_then(|n| n.checked_mul(unit)).map(Duration::from_secs).ok_or_else(invalid))
    }
}

/// Who may reach the nodes. Peer traffic between the cluster's own pods (all ports) and the
/// operator's namespace (admin and node ports) are always allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Namespaces whose pods may call the HTTP ingress port (8080). Unset: only pods in the
    /// cluster's own namespace; `{}`: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_namespace_selector: Option<LabelSelector>,
}

/// What the operator observed and did, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestateClusterStatus {
    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// One-word summary: Pending, Provisioning, Running, Scaling, Upgrading or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "phase_schema")]
    pub phase: Option<ClusterPhase>,

    /// Nodes whose pods are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_nodes: Option<i32>,

    /// Whether the cluster has been provisioned (its initial metadata written). Happens once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<bool>,

    /// The fingerprint the cluster got at provisioning; it never changes afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_fingerprint: Option<String>,

    /// Names of the nodes that are members of the replicated metadata store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_members: Option<Vec<String>>,

    /// Log replication the cluster currently runs at (at most `spec.replication`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_replication: Option<i32>,

    /// The whole replication property the cluster runs at, e.g. "{zone: 2, node: 3}".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_replication_property: Option<String>,

    /// Outcome of the last snapshot of all partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<SnapshotSummary>,

    /// The image the nodes ran when the last roll finished; `spec.image` is the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,

    /// Nodes whose pods run the newest pod template (image and configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_nodes: Option<i32>,

    /// The last step of a guarded roll: the StatefulSet partition it set (pods at or above
    /// it run the new template) and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_step: Option<UpgradeStep>,

    /// The last answer of a new image to the storage-format check a roll starts with (does
    /// its `restate-server` read the cluster's data?).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_format_check: Option<StorageFormatCheck>,

    /// Ready, Provisioned, Scaling, Upgrading, UpgradeStalled, UpgradeRefused, Degraded,
    /// ReplicationPending, ConfigOverridden and ConfigInvalid, each with status, reason, message and the time it
    /// last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// A step of a guarded roll.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStep {
    /// The StatefulSet's `rollingUpdate.partition` after the step: pods at or above it run
    /// the new template.
    pub partition: i32,
    /// When the step was taken (a pod that is not ready on the new revision long after it
    /// stalls the roll).
    pub time: Time,
}

/// What a new image answered when asked whether it reads the cluster's data (a Job running
/// `restate-server --check-storage-format <storageFormat>` on it, before any node restarts).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageFormatCheck {
    /// The image checked.
    pub image: String,
    /// The cluster's data format it was checked against (the highest storage format the
    /// nodes report).
    pub storage_format: i32,
    /// Whether its `restate-server` reads that format; if not, the roll is refused.
    pub passed: bool,
    /// What the check found.
    pub message: String,
    /// When it answered.
    pub time: Time,
}

/// One-word summary of the cluster's state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    /// Objects exist; waiting for every expected pod to run.
    Pending,
    /// Every pod runs; provisioning the cluster.
    Provisioning,
    /// Provisioned and every node ready.
    Running,
    /// Nodes are joining, or draining before the StatefulSet shrinks.
    Scaling,
    /// Provisioned, but some nodes are not ready.
    Degraded,
    /// A new pod template (image, configuration) rolls through the pods.
    Upgrading,
}

impl ClusterPhase {
    pub const ALL: [ClusterPhase; 6] = [
        ClusterPhase::Pending,
        ClusterPhase::Provisioning,
        ClusterPhase::Running,
        ClusterPhase::Scaling,
        ClusterPhase::Degraded,
        ClusterPhase::Upgrading,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClusterPhase::Pending => "Pending",
            ClusterPhase::Provisioning => "Provisioning",
            ClusterPhase::Running => "Running",
            ClusterPhase::Scaling => "Scaling",
            ClusterPhase::Degraded => "Degraded",
            ClusterPhase::Upgrading => "Upgrading",
        }
    }
}

/// An optional string enum as a structural schema: schemars' own rendering of `Option<enum>`
/// (`anyOf` with a null branch, or `null` among the values) is not one a 1.20 API server
/// accepts.
fn string_enum(values: impl IntoIterator<Item = &'static str>) -> Schema {
    let values: Vec<&str> = values.into_iter().collect();
    json_schema!({ "type": "string", "enum": values })
}

fn image_pull_policy_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(ImagePullPolicy::ALL.map(ImagePullPolicy::as_str))
}

fn phase_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum(ClusterPhase::ALL.map(ClusterPhase::as_str))
}

/// Outcome of the last snapshot of all partitions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    /// When the snapshot finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,

    /// Partitions snapshotted successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,

    /// Partitions whose snapshot failed (see `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_partitions: Option<i32>,

    /// Lowest log position (LSN) covered by a partition's snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lsn: Option<i64>,

    /// Highest log position (LSN) covered by a partition's snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lsn: Option<i64>,

    /// Whether the logs were trimmed behind this snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_trimmed: Option<bool>,

    /// Details, e.g. why a partition's snapshot failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The CRD as the operator publishes it: the derived one with two changes for Kubernetes
/// 1.20 and `kubectl explain` (see [`publishable`]).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = serde_json::to_value(RestateCluster::crd()).expect("a CRD serializes");
    publishable(&mut crd);
    serde_json::from_value(crd).expect("still a CRD")
}

/// The CRD as YAML, exactly what `crdgen` prints and `make crds` commits to
/// `crds/restateclusters.yaml` and the Helm chart.
pub fn crd_yaml() -> String {
    let body = serde_norway::to_string(&crd()).expect("a CRD serializes to YAML");
    format!(
        "# Generated by `make crds` (the restate-operator crate's crdgen binary). Do not edit.\n---\n{}",
        body.trim_start_matches("---\n")
    )
}

/// Rewrites the derived schema in place:
/// - drops `nullable: true`, which the derive puts on every optional field: a 1.20 API server
///   publishes nullable fields without type or sub-fields, so `kubectl explain` could not
///   show them. Nothing sends explicit nulls (unset fields are left out), and a null a user
///   writes is pruned by the API server like an absent field.
/// - joins the lines that doc comments were wrapped at (single newlines) in every
///   `description`, keeping paragraph breaks, so that `kubectl explain` can reflow them.
fn publishable(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            // Only the keyword: a property called `nullable` would be an object.
            if map.get("nullable").is_some_and(serde_json::Value::is_boolean) {
                map.remove("nullable");
            }
            for (key, inner) in map.iter_mut() {
                match inner {
                    serde_json::Value::String(text) if key == "description" => *text = unwrap_lines(text),
                    _ => publishable(inner),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(publishable),
        _ => {}
    }
}

fn unwrap_lines(text: &str) -> String {
    text.split("\n\n").map(|paragraph| paragraph.replace('\n', " ")).collect::<Vec<_>>().join("\n\n")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn crd() -> Value {
        serde_norway::from_str(&crd_yaml()).expect("the generated YAML parses")
    }

    fn schema(crd: &Value) -> &Value {
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    }

    /// Every sub-schema with the path that leads to it.
    fn schemas<'v>(node: &'v Value, path: String, out: &mut Vec<(String, &'v Value)>) {
        out.push((path.clone(), node));
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                schemas(property, format!("{path}.{name}"), out);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = node.get(key).filter(|v| v.is_object()) {
                schemas(inner, format!("{path}[]"), out);
            }
        }
    }

    #[test]
    fn names_scope_and_version() {
        let crd = crd();
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["metadata"]["name"], "restateclusters.restate.dev");
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "restate.dev");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], "RestateCluster");
        assert_eq!(spec["names"]["shortNames"], serde_json::json!(["rsc"]));
        let versions = spec["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["name"], "v1");
        assert_eq!(versions[0]["served"], true);
        assert_eq!(versions[0]["storage"], true);
    }

    #[test]
    fn status_subresource_and_printer_columns() {
        let crd = crd();
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], serde_json::json!({}));
        let columns: Vec<(&str, &str)> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Phase", ".status.phase"),
                ("Nodes", ".spec.replicas"),
                ("Ready", ".status.readyNodes"),
                ("Provisioned", ".status.provisioned"),
                ("Replication", ".status.logReplication"),
                ("Last Snapshot", ".status.lastSnapshot.time"),
                ("Age", ".metadata.creationTimestamp"),
            ]
        );
        // Every column's path exists in the schema (or is standard metadata).
        let schema = schema(&crd);
        for (_, path) in columns.iter().filter(|(_, p)| p.starts_with(".s")) {
            let mut node = schema;
            for segment in path.trim_start_matches('.').split('.') {
                node = &node["properties"][segment];
                assert!(node.is_object(), "{path}: no `{segment}` in the schema");
            }
        }
    }

    #[test]
    fn every_spec_and_status_field_is_described() {
        let crd = crd();
        let mut all = Vec::new();
        schemas(schema(&crd), String::new(), &mut all);
        let fields: Vec<_> =
            all.iter().filter(|(path, _)| path.starts_with(".spec.") || path.starts_with(".status.")).collect();
        assert!(fields.len() > 50, "nested k8s types are included: {}", fields.len());
        for (path, node) in fields {
            // List items and map values are described by their field.
            if path.ends_with("[]") {
                continue;
            }
            let description = node["description"].as_str().unwrap_or_default();
            assert!(!description.trim().is_empty(), "`{path}` has no description");
        }
        let spec_fields = schema(&crd)["properties"]["spec"]["properties"].as_object().unwrap();
        for field in [
            "replicas",
            "image",
            "imagePullPolicy",
            "config",
            "replication",
            "partitions",
            "storage",
            "resources",
            "snapshots",
            "env",
            "nodeSelector",
            "tolerations",
            "affinity",
            "annotations",
            "labels",
            "network",
        ] {
            assert!(spec_fields.contains_key(field), "spec.{field}");
        }
        let status_fields = schema(&crd)["properties"]["status"]["properties"].as_object().unwrap();
        for field in [
            "observedGeneration",
            "phase",
            "readyNodes",
            "provisioned",
            "clusterFingerprint",
            "metadataMembers",
            "logReplication",
            "lastSnapshot",
            "conditions",
        ] {
            assert!(status_fields.contains_key(field), "status.{field}");
        }
    }

    #[test]
    fn schema_is_structural_and_known_to_kubernetes_1_20() {
        let text = crd_yaml();
        assert!(!text.contains("x-kubernetes-validations"), "no CEL: unknown to 1.20");
        assert!(!text.contains("nullable"), "1.20 publishes nullable fields without their sub-fields");
        assert!(!text.contains("{{"), "the chart renders this file as a template");
        let crd = crd();
        assert!(crd["spec"]["versions"][0].get("selectableFields").is_none(), "1.30+ only");
        let mut all = Vec::new();
        schemas(schema(&crd), String::new(), &mut all);
        for (path, node) in all {
            for forbidden in ["anyOf", "oneOf", "allOf", "not", "$ref", "definitions", "$defs"] {
                assert!(node.get(forbidden).is_none(), "`{path}` has {forbidden}: not a structural schema");
            }
            let typed = node.get("type").is_some()
                || node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
                || node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            assert!(typed, "`{path}` has no type");
            if let Some(values) = node.get("enum").and_then(Value::as_array) {
                assert!(values.iter().all(Value::is_string), "`{path}` enum has a non-string value");
            }
        }
        let conditions = &schema(&crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
    }

    #[test]
    fn openapi_bounds() {
        let crd = crd();
        let spec = &schema(&crd)["properties"]["spec"];
        assert_eq!(spec["required"], serde_json::json!(["image", "storage"]));
        let properties = &spec["properties"];
        assert_eq!(properties["replicas"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(properties["replication"]["x-kubernetes-int-or-string"], true, "2 or \"{{zone: 2, node: 3}}\"");
        assert_eq!(properties["partitions"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(properties["partitions"]["maximum"].as_f64(), Some(4096.0));
        assert_eq!(properties["image"]["minLength"].as_u64(), Some(1));
        assert_eq!(properties["imagePullPolicy"]["enum"], serde_json::json!(["Always", "IfNotPresent", "Never"]));
        assert!(properties["snapshots"]["properties"]["destination"]["pattern"].is_string());
    }

    #[test]
    fn descriptions_are_unwrapped_for_kubectl_explain() {
        let crd = crd();
        let config = schema(&crd)["properties"]["spec"]["properties"]["config"]["description"].as_str().unwrap();
        assert!(config.starts_with("Extra `restate.toml` content"), "{config}");
        assert!(!config.contains('\n'), "{config}");
        assert_eq!(unwrap_lines("a\nb\n\nc\nd"), "a b\n\nc d");
    }

    #[test]
    fn snapshot_interval_parses() {
        let with = |interval: Option<&str>| SnapshotsSpec {
            destination: "s3://b/p".into(),
            interval: interval.map(str::to_owned),
            interval_num_records: None,
            trim: false,
            credentials_secret: None,
            endpoint: None,
            region: None,
        };
        assert_eq!(with(None).interval_duration(), None);
        assert_eq!(with(Some("90s")).interval_duration(), Some(Ok(Duration::from_secs(90))));
        assert_eq!(with(Some("30m")).interval_duration(), Some(Ok(Duration::from_secs(1800))));
        assert_eq!(with(Some("6h")).interval_duration(), Some(Ok(Duration::from_secs(6 * 3600))));
        assert_eq!(with(Some("1d")).interval_duration(), Some(Ok(Duration::from_secs(86_400))));
        for bad in ["0m", "h", "1 hour", "1.5h", "-1m", ""] {
            let error = with(Some(bad)).interval_duration().unwrap().unwrap_err();
            assert!(error.contains("spec.snapshots.interval"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_minimal_manifest_gets_the_defaults() {
        let cluster: RestateCluster = serde_norway::from_str(
            "apiVersion: restate.dev/v1\nkind: RestateCluster\nmetadata:\n  name: demo\n\
             spec:\n  image: restate:1\n  storage:\n    size: 1Gi\n",
        )
        .unwrap();
        assert_eq!(cluster.spec.replicas, 1);
        assert_eq!(cluster.spec.replication, IntOrString::Int(1));
        assert_eq!(cluster.spec.replication_property().unwrap(), ReplicationProperty::nodes(1));
        assert_eq!(cluster.spec.partitions, 24);
        assert_eq!(cluster.spec.storage.size.0, "1Gi");
        assert!(cluster.spec.snapshots.is_none());
        let status = RestateClusterStatus { phase: Some(ClusterPhase::Running), ..Default::default() };
        assert_eq!(serde_json::to_value(&status).unwrap(), serde_json::json!({"phase": "Running"}));
    }
}
