//! The StatefulSet running the nodes.
//!
//! Contract with the reconciler: the pod template depends on the spec and the rendered
//! config, never on `spec.replicas`, so scaling changes only `.spec.replicas` and rolls no
//! pod. A config change changes the checksum annotation and rolls the pods one at a time.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cluster_secret::CLUSTER_SECRET_KEY;
use super::locations::ZONE_LABEL;
use super::services::{ADMIN_PORT_NAME, INGRESS_PORT_NAME, NODE_PORT_NAME};
use super::{cluster_names, merged, owned_meta, BuildContext};
use crate::config::{
    config_file_path, RenderedConfig, BASE_DIR, CONFIG_DIR, ENV_ADVERTISED_ADDRESS, ENV_AWS_ACCESS_KEY_ID,
    ENV_AWS_SECRET_ACCESS_KEY, ENV_AWS_SESSION_TOKEN, ENV_BASE_DIR, ENV_CLUSTER_SECRET_FILE, ENV_CONFIG_FILE,
    ENV_KUBERNETES_NODE, ENV_LOCATION_FILE, ENV_NODE_NAME, ENV_POD_NAME, LOCATIONS_DIR,
};
use crate::crd::RestateCluster;
use crate::error::BuildError;
use crate::names::{ClusterNames, ADMIN_PORT, DATA_VOLUME, INGRESS_PORT, NODE_PORT};

/// Pod template annotation with the SHA-256 of the running config; a change rolls the pods.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "restate.dev/config-checksum";
/// Name of the Restate container.
pub const CONTAINER_NAME: &str = "restate";
/// Time a node gets after SIGTERM to hand its partition leadership and log work to its
/// peers, flush and exit; the kubelet kills it after that.
/// Default of `spec.terminationGracePeriodSeconds`.
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 120;
/// Non-root user and group the node runs as; also the group owning the volume.
pub const RUN_AS_ID: i64 = 1000;

const CONFIG_VOLUME: &str = "config";
const SECRET_VOLUME: &str = "cluster-secret";
/// Where the cluster secret's Secret is mounted (its one key is the file name).
pub const SECRET_DIR: &str = "/etc/restate-secret";
const TMP_VOLUME: &str = "tmp";
/// The `<name>-locations` ConfigMap (every Kubernetes node's location).
const LOCATIONS_VOLUME: &str = "locations";

/// `<name>` with `spec.replicas` pods started in parallel, one volume claim per pod, pod
/// identity (node name, advertised address) from the pod's name, and the config checksum of
/// `rendered` on the pod template.
pub fn statefulset(
    cluster: &RestateCluster,
    ctx: &BuildContext,
    rendered: &RenderedConfig,
) -> Result<StatefulSet, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    let spec = &cluster.spec;
    check_extra_names(cluster)?;
    let pod_labels = merged(spec.labels.as_ref(), names.common_labels());
    let pod_annotations = merged(
        spec.annotations.as_ref(),
        BTreeMap::from([(CONFIG_CHECKSUM_ANNOTATION.to_owned(), rendered.checksum.clone())]),
    );
    Ok(StatefulSet {
        metadata: owned_meta(cluster, &names, names.statefulset())?,
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names.headless_service()),
            // Every node must run before the cluster can be provisioned; nodes do not depend
            // on their predecessors, so there is no reason to start them one by one.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector { match_labels: Some(names.selector_labels()), match_expressions: None },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(cluster, &names, rendered)),
            },
            volume_claim_templates: Some(vec![volume_claim_template(cluster, &names)]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    })
}

fn pod_spec(cluster: &RestateCluster, names: &ClusterNames, rendered: &RenderedConfig) -> PodSpec {
    let spec = &cluster.spec;
    PodSpec {
        service_account_name: Some(names.service_account()),
        automount_service_account_token: Some(false),
        // Service links would inject variables like RESTATE_PORT for a Service named
        // `restate` into the container's environment.
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(
            spec.termination_grace_period_seconds.unwrap_or(TERMINATION_GRACE_PERIOD_SECONDS),
        ),
        priority_class_name: spec.priority_class_name.clone(),
        topology_spread_constraints: Some(spec.topology_spread_constraints.clone().unwrap_or_else(|| {
            vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: ZONE_LABEL.to_owned(),
                when_unsatisfiable: "ScheduleAnyway".to_owned(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(names.selector_labels()),
                    match_expressions: None,
                }),
                ..TopologySpreadConstraint::default()
            }]
        }))
        .filter(|constraints| !constraints.is_empty()),
        security_context: Some(pod_security()),
        image_pull_secrets: spec.image_pull_secrets.clone(),
        node_selector: spec.node_selector.clone(),
        tolerations: spec.tolerations.clone(),
        affinity: spec.affinity.clone(),
        containers: std::iter::once(container(cluster, names, rendered))
            .chain(spec.sidecars.iter().flatten().cloned())
            .collect(),
        volumes: Some(operator_volumes(names).into_iter().chain(spec.volumes.iter().flatten().cloned()).collect()),
        ..PodSpec::default()
    }
}

/// How the operator's pods run: as [`RUN_AS_ID`], never root, the runtime's seccomp profile.
pub(super) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_ID),
        run_as_group: Some(RUN_AS_ID),
        fs_group: Some(RUN_AS_ID),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), localhost_profile: None }),
        ..PodSecurityContext::default()
    }
}

/// How the operator's containers run: no privilege escalation, a read-only root, no
/// capabilities.
pub(super) fn container_security() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), add: None }),
        ..SecurityContext::default()
    }
}

/// The volumes the operator mounts: the config, a scratch `/tmp`, the cluster secret, the
/// Kubernetes nodes' locations (the data volume comes from the claim template).
fn operator_volumes(names: &ClusterNames) -> Vec<Volume> {
    vec![
        Volume {
            name: LOCATIONS_VOLUME.to_owned(),
            // Optional: a pod whose node has no entry yet waits for it (location-file).
            config_map: Some(ConfigMapVolumeSource {
                name: names.locations_config_map(),
                optional: Some(true),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: CONFIG_VOLUME.to_owned(),
            config_map: Some(ConfigMapVolumeSource { name: names.config_map(), ..ConfigMapVolumeSource::default() }),
            ..Volume::default()
        },
        Volume { name: TMP_VOLUME.to_owned(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
        Volume {
            name: SECRET_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names.cluster_secret()),
                // Readable by the nodes' group (fsGroup) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

/// Names the operator uses itself, refused in `spec.volumes` and `spec.sidecars`.
const OPERATOR_VOLUMES: [&str; 5] = [DATA_VOLUME, CONFIG_VOLUME, TMP_VOLUME, SECRET_VOLUME, LOCATIONS_VOLUME];

/// `spec.volumes` and `spec.sidecars` must not take the operator's names or repeat a name.
fn check_extra_names(cluster: &RestateCluster) -> Result<(), BuildError> {
    let spec = &cluster.spec;
    let mut volumes: Vec<&str> = OPERATOR_VOLUMES.to_vec();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        if volumes.contains(&volume.name.as_str()) {
            return Err(BuildError::InvalidSpec {
                field: format!("spec.volumes[{i}].name"),
                reason: format!(
                    "'{}' is taken ({}); give the volume another name",
                    volume.name,
                    if OPERATOR_VOLUMES.contains(&volume.name.as_str()) { "the operator's" } else { "listed twice" }
                ),
            });
        }
        volumes.push(&volume.name);
    }
    let mut containers = vec![CONTAINER_NAME];
    for (i, sidecar) in spec.sidecars.iter().flatten().enumerate() {
        if containers.contains(&sidecar.name.as_str()) {
            return Err(BuildError::InvalidSpec {
                field: format!("spec.sidecars[{i}].name"),
                reason: format!("'{}' is taken; give the sidecar another name", sidecar.name),
            });
        }
        if sidecar.image.as_deref().is_none_or(str::is_empty) {
            return Err(BuildError::InvalidSpec {
                field: format!("spec.sidecars[{i}].image"),
                reason: format!("sidecar '{}' has no image", sidecar.name),
            });
        }
        containers.push(&sidecar.name);
    }
    Ok(())
}

fn container(cluster: &RestateCluster, names: &ClusterNames, rendered: &RenderedConfig) -> Container {
    let spec = &cluster.spec;
    let port = |name: &str, number: u16| ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(number),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        ports: Some(vec![
            port(NODE_PORT_NAME, NODE_PORT),
            port(ADMIN_PORT_NAME, ADMIN_PORT),
            port(INGRESS_PORT_NAME, INGRESS_PORT),
        ]),
        env: Some(env(cluster, names, rendered)),
        resources: spec.resources.clone(),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".to_owned()),
                port: IntOrString::Int(i32::from(NODE_PORT)),
                scheme: Some("HTTP".to_owned()),
                ..HTTPGetAction::default()
            }),
            initial_delay_seconds: Some(2),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        security_context: Some(container_security()),
        volume_mounts: Some(
            [
                mount(DATA_VOLUME, BASE_DIR, false),
                mount(CONFIG_VOLUME, CONFIG_DIR, true),
                mount(TMP_VOLUME, "/tmp", false),
                mount(SECRET_VOLUME, SECRET_DIR, true),
                mount(LOCATIONS_VOLUME, LOCATIONS_DIR, true),
            ]
            .into_iter()
            .chain(spec.volume_mounts.iter().flatten().cloned())
            .collect(),
        ),
        ..Container::default()
    }
}

/// The operator's variables, then the user's (those that survived the config merge).
/// `POD_NAME` comes first: `RESTATE_ADVERTISED_ADDRESS` refers to it as `$(POD_NAME)`, and
/// the kubelet only expands variables defined earlier in the list.
fn env(cluster: &RestateCluster, names: &ClusterNames, rendered: &RenderedConfig) -> Vec<EnvVar> {
    let literal = |name: &str, value: String| EnvVar { name: name.to_owned(), value: Some(value), value_from: None };
    let from =
        |name: &str, source: EnvVarSource| EnvVar { name: name.to_owned(), value: None, value_from: Some(source) };
    let pod_name = || EnvVarSource {
        field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".to_owned(), api_version: None }),
        ..EnvVarSource::default()
    };
    let mut env = vec![
        from(ENV_POD_NAME, pod_name()),
        from(ENV_NODE_NAME, pod_name()),
        literal(ENV_ADVERTISED_ADDRESS, names.advertised_address_template()),
        literal(ENV_CONFIG_FILE, config_file_path()),
        literal(ENV_BASE_DIR, BASE_DIR.to_owned()),
        literal(ENV_CLUSTER_SECRET_FILE, format!("{SECRET_DIR}/{CLUSTER_SECRET_KEY}")),
        from(
            ENV_KUBERNETES_NODE,
            EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "spec.nodeName".to_owned(), api_version: None }),
                ..EnvVarSource::default()
            },
        ),
        literal(ENV_LOCATION_FILE, format!("{LOCATIONS_DIR}/$({ENV_KUBERNETES_NODE})")),
    ];
    if let Some(secret) = cluster.spec.snapshots.as_ref().and_then(|s| s.credentials_secret.as_ref()) {
        let key = |key: &str, optional: bool| EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.clone(),
                key: key.to_owned(),
                optional: optional.then_some(true),
            }),
            ..EnvVarSource::default()
        };
        env.push(from(ENV_AWS_ACCESS_KEY_ID, key(ENV_AWS_ACCESS_KEY_ID, false)));
        env.push(from(ENV_AWS_SECRET_ACCESS_KEY, key(ENV_AWS_SECRET_ACCESS_KEY, false)));
        env.push(from(ENV_AWS_SESSION_TOKEN, key(ENV_AWS_SESSION_TOKEN, true)));
    }
    env.extend(rendered.user_env.iter().cloned());
    env
}

fn volume_claim_template(cluster: &RestateCluster, names: &ClusterNames) -> PersistentVolumeClaim {
    let storage = &cluster.spec.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(names.common_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), storage.size.clone())])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{fixtures, render};

    fn build(cluster: &RestateCluster) -> StatefulSet {
        let ctx = BuildContext::new(20);
        statefulset(cluster, &ctx, &render(cluster, &ctx).unwrap()).unwrap()
    }

    fn pod(set: &StatefulSet) -> &PodTemplateSpec {
        &set.spec.as_ref().unwrap().template
    }

    fn restate_container(set: &StatefulSet) -> &Container {
        let containers = &pod(set).spec.as_ref().unwrap().containers;
        assert_eq!(containers[0].name, CONTAINER_NAME);
        &containers[0]
    }

    fn env_var<'c>(container: &'c Container, name: &str) -> &'c EnvVar {
        let env = container.env.as_ref().unwrap();
        env.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no {name} in {env:?}"))
    }

    #[test]
    fn the_cluster_secret_is_mounted_and_named_to_the_node() {
        let set = build(&fixtures::cluster());
        let container = restate_container(&set);
        assert_eq!(
            env_var(container, ENV_CLUSTER_SECRET_FILE).value.as_deref(),
            Some("/etc/restate-secret/cluster-secret")
        );
        let mount = container.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == SECRET_VOLUME).unwrap();
        assert_eq!((mount.mount_path.as_str(), mount.read_only), (SECRET_DIR, Some(true)));
        let volumes = pod(&set).spec.as_ref().unwrap().volumes.as_ref().unwrap();
        let secret = volumes.iter().find(|v| v.name == SECRET_VOLUME).unwrap().secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("demo-cluster-secret"));
        assert_eq!(secret.default_mode, Some(0o440));
    }

    #[test]
    fn statefulset_shape() {
        let set = build(&fixtures::cluster());
        assert_eq!(set.metadata.name.as_deref(), Some("demo"));
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("demo-cluster"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let selector = spec.selector.match_labels.as_ref().unwrap();
        let pod_labels = pod(&set).metadata.as_ref().unwrap().labels.as_ref().unwrap();
        for (key, value) in selector {
            assert_eq!(pod_labels.get(key), Some(value), "pods match the selector");
        }
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let claim = claims[0].spec.as_ref().unwrap();
        assert_eq!(claim.access_modes.as_deref(), Some(&["ReadWriteOnce".to_owned()][..]));
        assert_eq!(claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0, "10Gi");
        assert_eq!(claim.storage_class_name, None);
        assert_eq!(claims[0].metadata.labels.as_ref().unwrap()["app.kubernetes.io/instance"], "demo");
    }

    #[test]
    fn pod_identity_comes_from_the_pod_name() {
        let set = build(&fixtures::cluster());
        let container = restate_container(&set);
        let env = container.env.as_ref().unwrap();
        assert_eq!(env[0].name, "POD_NAME", "defined before its use in $(POD_NAME)");
        for name in ["POD_NAME", "RESTATE_NODE_NAME"] {
            let field = env_var(container, name).value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
            assert_eq!(field.field_path, "metadata.name");
        }
        assert_eq!(
            env_var(container, "RESTATE_ADVERTISED_ADDRESS").value.as_deref(),
            Some("http://$(POD_NAME).demo-cluster.prod.svc.cluster.local:5122")
        );
        assert_eq!(env_var(container, "RESTATE_CONFIG").value.as_deref(), Some("/etc/restate/restate.toml"));
        assert_eq!(env_var(container, "RESTATE_BASE_DIR").value.as_deref(), Some("/restate-data"), "the volume");
        assert!(env.iter().all(|v| !v.name.starts_with("AWS_")), "no credentials asked for");
    }

    #[test]
    fn readiness_probe_hits_node_health() {
        let set = build(&fixtures::cluster());
        let probe = restate_container(&set).readiness_probe.as_ref().unwrap();
        let get = probe.http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/health"));
        assert_eq!(get.port, IntOrString::Int(5122));
        assert!(restate_container(&set).liveness_probe.is_none());
    }

    #[test]
    fn pods_run_locked_down() {
        let set = build(&fixtures::cluster());
        let pod_spec = pod(&set).spec.as_ref().unwrap();
        assert_eq!(pod_spec.enable_service_links, Some(false));
        assert_eq!(pod_spec.automount_service_account_token, Some(false));
        assert_eq!(pod_spec.service_account_name.as_deref(), Some("demo"));
        assert_eq!(
            pod_spec.termination_grace_period_seconds,
            Some(120),
            "long enough to hand over a node's leaderships"
        );
        let pod_security = pod_spec.security_context.as_ref().unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.fs_group, Some(1000));
        let container = restate_container(&set);
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(security.run_as_non_root, Some(true));
        let mounts: Vec<(&str, &str)> = container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("data", "/restate-data"),
                ("config", "/etc/restate"),
                ("tmp", "/tmp"),
                ("cluster-secret", "/etc/restate-secret"),
                ("locations", "/etc/restate-locations")
            ]
        );
        let volumes = pod_spec.volumes.as_ref().unwrap();
        assert!(volumes.iter().any(|v| v.name == "tmp" && v.empty_dir.is_some()));
        let config = volumes.iter().find(|v| v.name == "config").unwrap();
        assert_eq!(config.config_map.as_ref().unwrap().name, "demo-config");
        let ports: Vec<i32> = container.ports.as_ref().unwrap().iter().map(|p| p.container_port).collect();
        assert_eq!(ports, [5122, 9070, 8080]);
    }

    #[test]
    fn scaling_leaves_the_pod_template_alone() {
        let mut cluster = fixtures::full_cluster();
        let three = build(&cluster);
        cluster.spec.replicas = 5;
        let five = build(&cluster);
        cluster.spec.replicas = 3;
        let three_again = build(&cluster);
        assert_eq!(five.spec.as_ref().unwrap().replicas, Some(5));
        assert_eq!(pod(&three), pod(&five));
        assert_eq!(three, three_again);

        // The metadata-client list in the mounted config is the same for 3, 5 and 3 again.
        let ctx = BuildContext::new(20);
        let addresses = |replicas: i32| {
            let mut cluster = fixtures::cluster();
            cluster.spec.replicas = replicas;
            let table: toml::Table = render(&cluster, &ctx).unwrap().toml.parse().unwrap();
            table["metadata-client"]["addresses"].clone()
        };
        assert_eq!(addresses(3), addresses(5));
        assert_eq!(addresses(5), addresses(3));
        assert_eq!(addresses(1), addresses(3));
    }

    #[test]
    fn a_config_change_changes_the_checksum_annotation() {
        let mut cluster = fixtures::cluster();
        let before = build(&cluster);
        cluster.spec.config = Some("log-filter = \"debug\"".into());
        let after = build(&cluster);
        let checksum = |set: &StatefulSet| {
            pod(set).metadata.as_ref().unwrap().annotations.as_ref().unwrap()[CONFIG_CHECKSUM_ANNOTATION].clone()
        };
        assert_ne!(checksum(&before), checksum(&after));
        assert_eq!(checksum(&before).len(), 64);
    }

    #[test]
    fn user_knobs_reach_the_pod_and_operator_keys_win() {
        let mut cluster = fixtures::full_cluster();
        let labels = cluster.spec.labels.get_or_insert_default();
        labels.insert("app.kubernetes.io/instance".into(), "hijack".into());
        let annotations = cluster.spec.annotations.get_or_insert_default();
        annotations.insert(CONFIG_CHECKSUM_ANNOTATION.into(), "fake".into());
        cluster.spec.env.get_or_insert_default().push(EnvVar {
            name: "RESTATE_NODE_NAME".into(),
            value: Some("n1".into()),
            value_from: None,
        });
        let set = build(&cluster);
        let meta = pod(&set).metadata.as_ref().unwrap();
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["tier"], "backend");
        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
        let annotations = meta.annotations.as_ref().unwrap();
        assert_eq!(annotations["team"], "payments");
        assert_ne!(annotations[CONFIG_CHECKSUM_ANNOTATION], "fake");

        let pod_spec = pod(&set).spec.as_ref().unwrap();
        assert_eq!(pod_spec.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(pod_spec.tolerations.as_ref().unwrap().len(), 1);
        let container = restate_container(&set);
        assert_eq!(container.image.as_deref(), Some("restate-cluster:0.1.0"));
        assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(container.resources, cluster.spec.resources);
        assert_eq!(env_var(container, "RUST_BACKTRACE").value.as_deref(), Some("1"));
        let node_names = container.env.as_ref().unwrap().iter().filter(|v| v.name == "RESTATE_NODE_NAME").count();
        assert_eq!(node_names, 1, "the user's RESTATE_NODE_NAME is dropped");
        assert!(env_var(container, "RESTATE_NODE_NAME").value_from.is_some());

        let claim = &set.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.spec.as_ref().unwrap().storage_class_name.as_deref(), Some("fast"));
    }

    #[test]
    fn pods_spread_over_zones_by_default_and_take_the_scheduling_knobs() {
        let set = build(&fixtures::cluster());
        let pod_spec = pod(&set).spec.as_ref().unwrap();
        assert_eq!(pod_spec.termination_grace_period_seconds, Some(TERMINATION_GRACE_PERIOD_SECONDS));
        let spread = &pod_spec.topology_spread_constraints.as_ref().unwrap()[0];
        assert_eq!((spread.topology_key.as_str(), spread.max_skew), (ZONE_LABEL, 1));
        assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");

        let mut cluster = fixtures::cluster();
        cluster.spec.topology_spread_constraints = Some(Vec::new());
        cluster.spec.priority_class_name = Some("restate-critical".into());
        cluster.spec.termination_grace_period_seconds = Some(300);
        cluster.spec.volumes = Some(vec![Volume {
            name: "logs".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }]);
        cluster.spec.volume_mounts = Some(vec![VolumeMount {
            name: "logs".into(),
            mount_path: "/var/log/restate".into(),
            ..VolumeMount::default()
        }]);
        cluster.spec.sidecars = Some(vec![Container {
            name: "shipper".into(),
            image: Some("fluent-bit:3".into()),
            ..Container::default()
        }]);
        let set = build(&cluster);
        let pod_spec = pod(&set).spec.as_ref().unwrap();
        assert_eq!(pod_spec.topology_spread_constraints, None, "an empty list: no constraint");
        assert_eq!(pod_spec.priority_class_name.as_deref(), Some("restate-critical"));
        assert_eq!(pod_spec.termination_grace_period_seconds, Some(300));
        let volumes: Vec<&str> = pod_spec.volumes.as_ref().unwrap().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["locations", "config", "tmp", "cluster-secret", "logs"]);
        let containers: Vec<&str> = pod_spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(containers, ["restate", "shipper"]);
        let mounts = pod_spec.containers[0].volume_mounts.as_ref().unwrap();
        assert_eq!(mounts.last().unwrap().mount_path, "/var/log/restate");
    }

    #[test]
    fn extra_volumes_and_sidecars_may_not_take_the_operators_names() {
        let ctx = BuildContext::new(20);
        let refused =
            |cluster: &RestateCluster| statefulset(cluster, &ctx, &render(cluster, &ctx).unwrap()).unwrap_err();
        let mut cluster = fixtures::cluster();
        cluster.spec.volumes = Some(vec![Volume { name: "data".into(), ..Volume::default() }]);
        assert_eq!(
            refused(&cluster).to_string(),
            "spec.volumes[0].name: 'data' is taken (the operator's); give the volume another name"
        );
        cluster.spec.volumes = None;
        cluster.spec.sidecars =
            Some(vec![Container { name: "restate".into(), image: Some("x".into()), ..Container::default() }]);
        assert!(refused(&cluster).to_string().starts_with("spec.sidecars[0].name: 'restate' is taken"));
        cluster.spec.sidecars = Some(vec![Container { name: "shipper".into(), ..Container::default() }]);
        assert_eq!(refused(&cluster).to_string(), "spec.sidecars[0].image: sidecar 'shipper' has no image");
    }

    #[test]
    fn s3_credentials_come_from_the_named_secret() {
        let set = build(&fixtures::full_cluster());
        let container = restate_container(&set);
        for (name, optional) in
            [("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None), ("AWS_SESSION_TOKEN", Some(true))]
        {
            let var = env_var(container, name);
            assert_eq!(var.value, None, "{name} is never a literal");
            let secret = var.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
            assert_eq!(secret.name, "s3-credentials");
            assert_eq!(secret.key, name);
            assert_eq!(secret.optional, optional, "{name}");
        }
    }
}
