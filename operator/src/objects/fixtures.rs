//! Sample clusters for the builders' tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::crd::{ImagePullPolicy, NetworkSpec, RestateCluster, RestateClusterSpec, SnapshotsSpec, StorageSpec};

pub const UID: &str = "0b5e1c1e-7a4f-4d0e-9a55-2f4ad1d7c001";

/// `demo` in `prod`: 3 nodes, replication 2, nothing optional.
pub fn cluster() -> RestateCluster {
    RestateCluster {
        metadata: ObjectMeta {
            name: Some("demo".into()),
            namespace: Some("prod".into()),
            uid: Some(UID.into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: RestateClusterSpec {
            replicas: 3,
            image: "restate-cluster:0.1.0".into(),
            image_pull_policy: None,
            image_pull_secrets: None,
            config: None,
            replication: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2),
            partitions: 24,
            storage: StorageSpec {
                size: Quantity("10Gi".into()),
                storage_class_name: None,
                delete_claims_on_delete: false,
            },
            resources: None,
            snapshots: None,
            env: None,
            node_selector: None,
            tolerations: None,
            affinity: None,
            annotations: None,
            labels: None,
            network: None,
            topology_spread_constraints: None,
            priority_class_name: None,
            service_account_annotations: None,
            termination_grace_period_seconds: None,
            volumes: None,
            volume_mounts: None,
            sidecars: None,
        },
        status: None,
    }
}

/// `cluster()` with every optional field set.
pub fn full_cluster() -> RestateCluster {
    let mut cluster = cluster();
    let spec = &mut cluster.spec;
    spec.image_pull_policy = Some(ImagePullPolicy::IfNotPresent);
    spec.config = Some("rocksdb-total-memory-size = \"512 MiB\"\n".into());
    spec.storage.storage_class_name = Some("fast".into());
    spec.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".into(), Quantity("500m".into()))])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity("2Gi".into()))])),
        claims: None,
    });
    spec.snapshots = Some(SnapshotsSpec {
        destination: "s3://snapshots/demo".into(),
        interval: Some("1h".into()),
        interval_num_records: Some(10_000),
        trim: true,
        credentials_secret: Some("s3-credentials".into()),
        endpoint: Some("http://minio.storage:9000".into()),
        region: Some("us-east-1".into()),
    });
    spec.env = Some(vec![EnvVar { name: "RUST_BACKTRACE".into(), value: Some("1".into()), value_from: None }]);
    spec.node_selector = Some(BTreeMap::from([("disk".into(), "ssd".into())]));
    spec.tolerations = Some(vec![Toleration {
        key: Some("dedicated".into()),
        operator: Some("Equal".into()),
        value: Some("restate".into()),
        effect: Some("NoSchedule".into()),
        toleration_seconds: None,
    }]);
    spec.annotations = Some(BTreeMap::from([("team".into(), "payments".into())]));
    spec.labels = Some(BTreeMap::from([("tier".into(), "backend".into())]));
    spec.network = Some(NetworkSpec {
        ingress_namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("restate-client".into(), "true".into())])),
            match_expressions: None,
        }),
    });
    spec.priority_class_name = Some("restate-critical".into());
    spec.service_account_annotations =
        Some(BTreeMap::from([("eks.amazonaws.com/role-arn".into(), "arn:aws:iam::1:role/restate".into())]));
    spec.termination_grace_period_seconds = Some(180);
    spec.volumes = Some(vec![Volume {
        name: "logs".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }]);
    spec.volume_mounts = Some(vec![VolumeMount {
        name: "logs".into(),
        mount_path: "/var/log/restate".into(),
        ..VolumeMount::default()
    }]);
    spec.sidecars = Some(vec![Container {
        name: "shipper".into(),
        image: Some("fluent-bit:3".into()),
        volume_mounts: Some(vec![VolumeMount {
            name: "logs".into(),
            mount_path: "/logs".into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }]);
    cluster
}
