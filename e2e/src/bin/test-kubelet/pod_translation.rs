//! Pure translation of a pod into `docker run` arguments: env resolution with Kubernetes'
//! `$(VAR)` expansion, network aliases, user, mounts, command and args. No I/O here: what
//! the pod refers to (ConfigMaps, Secrets, volume directories, its IP) comes in as data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, EnvVarSource, Pod};

use crate::docker::{LABEL_IP, LABEL_NAMESPACE, LABEL_NODE, LABEL_POD, LABEL_UID};

/// Facts about where the pod runs that are not in the pod object.
#[derive(Clone, Debug)]
pub struct PodContext {
    pub node_name: String,
    pub network: String,
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    /// The API server as containers reach it (KUBERNETES_SERVICE_HOST/PORT).
    pub api_host: String,
    pub api_port: u16,
}

/// ConfigMaps and Secrets named by the container's `env`/`envFrom`, as read from the API:
/// `None` for an object that does not exist. Secret values are decoded (UTF-8, lossy).
#[derive(Clone, Debug, Default)]
pub struct ReferencedData {
    pub config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    pub secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

/// A host directory or file bind-mounted into the container.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// Everything `docker run` needs: `args` follow `docker run` and end with image and command.
#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    pub args: Vec<String>,
}

pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `namespace/name`, how log lines and errors name a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", namespace(pod), name(pod))
}

/// Docker container name: unique per pod incarnation (a recreated StatefulSet pod has the
/// same name but another UID, so it gets another container).
pub fn container_name(pod: &Pod) -> String {
    let uid: String = uid(pod).chars().filter(|c| *c != '-').take(8).collect();
    format!("k8s_{}_{}_{uid}", namespace(pod), name(pod))
}

/// The container the kubelet runs: the first one (the testbed's pods have exactly one).
pub fn main_container(pod: &Pod) -> Result<&Container, String> {
    pod.spec.as_ref().and_then(|s| s.containers.first()).ok_or_else(|| "the pod has no container".to_owned())
}

/// `spec.hostname` or the pod name, cut to the 63 characters a hostname may have.
pub fn hostname(pod: &Pod) -> String {
    let host = pod.spec.as_ref().and_then(|s| s.hostname.as_deref()).unwrap_or(name(pod));
    host.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_owned()
}

/// Names other containers on the network resolve to this pod: its name and, with
/// `spec.hostname` + `spec.subdomain` (StatefulSet pods behind a headless Service), the DNS
/// names Kubernetes gives it.
pub fn network_aliases(pod: &Pod) -> Vec<String> {
    let mut aliases = vec![name(pod).to_owned()];
    let spec = pod.spec.as_ref();
    if let (Some(host), Some(sub)) =
        (spec.and_then(|s| s.hostname.as_deref()), spec.and_then(|s| s.subdomain.as_deref()))
    {
        let ns = namespace(pod);
        aliases.push(format!("{host}.{sub}.{ns}.svc.cluster.local"));
        aliases.push(format!("{host}.{sub}.{ns}.svc"));
        aliases.push(format!("{host}.{sub}"));
    }
    aliases.dedup();
    aliases
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes `lookup(NAME)` or stays literal when
/// unknown, `$$` becomes `$`, any other `$` (and an unclosed `$(`) is kept as is.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let var = &body[..end];
                    match lookup(var) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&format!("$({var})")),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Names of the ConfigMaps and Secrets the container's env refers to: (config maps, secrets).
pub fn referenced_objects(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for source in container.env_from.iter().flatten() {
        maps.extend(source.config_map_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(source.secret_ref.as_ref().map(|r| r.name.clone()));
    }
    for from in container.env.iter().flatten().filter_map(|v| v.value_from.as_ref()) {
        maps.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
    }
    (maps, secrets)
}

/// Environment variables in a kubelet's order and precedence: KUBERNETES_SERVICE_HOST/PORT,
/// then `envFrom`, then `env` (a later definition of a name replaces the earlier one). An
/// `env` value is expanded against the variables defined before it.
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    ctx: &PodContext,
    data: &ReferencedData,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut set = |env: &mut Vec<(String, String)>, name: String, value: String| match index.get(&name) {
        Some(&i) => env[i].1 = value,
        None => {
            index.insert(name.clone(), env.len());
            env.push((name, value));
        }
    };
    set(&mut env, "KUBERNETES_SERVICE_HOST".to_owned(), ctx.api_host.clone());
    set(&mut env, "KUBERNETES_SERVICE_PORT".to_owned(), ctx.api_port.to_string());
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional, objects) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => ("configmap", &r.name, r.optional, &data.config_maps),
            (None, Some(r)) => ("secret", &r.name, r.optional, &data.secrets),
            (None, None) => continue,
        };
        match objects.get(name).and_then(Option::as_ref) {
            Some(map) => map.iter().for_each(|(k, v)| set(&mut env, format!("{prefix}{k}"), v.clone())),
            None if optional == Some(true) => {}
            None => return Err(format!("{kind} {name} (envFrom) not found")),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match value_from(pod, ctx, data, from).map_err(|e| format!("env {}: {e}", var.name))? {
                Some(value) => value,
                None => continue,
            },
            (Some(value), None) => {
                let known: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(value, |n| known.get(n).map(|v| (*v).to_owned()))
            }
            (None, None) => String::new(),
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// `Ok(None)`: an optional reference to something missing, the variable is left out.
fn value_from(
    pod: &Pod,
    ctx: &PodContext,
    data: &ReferencedData,
    from: &EnvVarSource,
) -> Result<Option<String>, String> {
    if let Some(field) = &from.field_ref {
        return field_value(pod, ctx, &field.field_path).map(Some);
    }
    if let Some(r) = &from.secret_key_ref {
        return key_value("secret", &r.name, &r.key, r.optional, &data.secrets);
    }
    if let Some(r) = &from.config_map_key_ref {
        return key_value("configmap", &r.name, &r.key, r.optional, &data.config_maps);
    }
    Err("only fieldRef, secretKeyRef and configMapKeyRef are supported by the test kubelet".to_owned())
}

fn key_value(
    kind: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
    objects: &BTreeMap<String, Option<BTreeMap<String, String>>>,
) -> Result<Option<String>, String> {
    let optional = optional.unwrap_or(false);
    match objects.get(name).and_then(Option::as_ref) {
        None if optional => Ok(None),
        None => Err(format!("{kind} {name} not found")),
        Some(map) => match map.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(format!("key {key} not found in {kind} {name}")),
        },
    }
}

/// The downward API fields a `fieldRef` may name.
pub fn field_value(pod: &Pod, ctx: &PodContext, path: &str) -> Result<String, String> {
    let spec = pod.spec.as_ref();
    let bracket = |field: &str| path.strip_prefix(field)?.strip_prefix("['")?.strip_suffix("']");
    let from_map = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => name(pod).to_owned(),
        "metadata.namespace" => namespace(pod).to_owned(),
        "metadata.uid" => uid(pod).to_owned(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| ctx.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        "status.hostIP" => ctx.host_ip.to_string(),
        _ => match (bracket("metadata.labels"), bracket("metadata.annotations")) {
            (Some(key), _) => from_map(&pod.metadata.labels, key),
            (_, Some(key)) => from_map(&pod.metadata.annotations, key),
            _ => return Err(format!("fieldRef {path} is not supported by the test kubelet")),
        },
    })
}

/// User and group from the securityContexts (the container's wins over the pod's).
pub fn run_as(pod: &Pod, container: &Container) -> (Option<i64>, Option<i64>) {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let user = sc.and_then(|s| s.run_as_user).or(pod_sc.and_then(|s| s.run_as_user));
    let group = sc.and_then(|s| s.run_as_group).or(pod_sc.and_then(|s| s.run_as_group));
    (user, group)
}

/// Owner (uid, gid) that volume files get so a non-root container can use them: the run-as
/// user and the pod's fsGroup (else the run-as group, else the user). `None` for root.
pub fn volume_owner(pod: &Pod, container: &Container) -> Option<(u32, u32)> {
    let (user, group) = run_as(pod, container);
    let user = user.filter(|u| *u > 0)?;
    let fs_group = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.fs_group);
    let group = fs_group.or(group).unwrap_or(user);
    Some((u32::try_from(user).ok()?, u32::try_from(group).ok()?))
}

/// Docker labels of the pod's container (see `docker::LABEL_*`).
pub fn labels(pod: &Pod, ctx: &PodContext) -> Vec<(&'static str, String)> {
    vec![
        (LABEL_NODE, ctx.node_name.clone()),
        (LABEL_NAMESPACE, namespace(pod).to_owned()),
        (LABEL_POD, name(pod).to_owned()),
        (LABEL_UID, uid(pod).to_owned()),
        (LABEL_IP, ctx.pod_ip.to_string()),
    ]
}

/// The `docker run` arguments for `container` of `pod` with resolved `env` and `mounts`.
/// `command` becomes `--entrypoint` + leading arguments, `args` follow; both are expanded
/// against `env`. Capabilities, seccomp and resources are ignored.
pub fn plan(
    pod: &Pod,
    container: &Container,
    ctx: &PodContext,
    env: &[(String, String)],
    mounts: &[Mount],
) -> Result<ContainerPlan, String> {
    let image = container.image.clone().filter(|i| !i.is_empty()).ok_or("the container has no image")?;
    let name = container_name(pod);
    let mut args: Vec<String> =
        ["-d", "--name", &name, "--pull", "never", "--network", &ctx.network].iter().map(|s| (*s).to_owned()).collect();
    let mut push = |flag: &str, value: String| {
        args.push(flag.to_owned());
        args.push(value);
    };
    push("--ip", ctx.pod_ip.to_string());
    push("--hostname", hostname(pod));
    for alias in network_aliases(pod) {
        push("--network-alias", alias);
    }
    for (key, value) in labels(pod, ctx) {
        push("--label", format!("{key}={value}"));
    }
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    if let (Some(user), group) = run_as(pod, container) {
        push("--user", group.map_or(user.to_string(), |g| format!("{user}:{g}")));
    }
    let groups =
        pod_sc.into_iter().flat_map(|s| s.fs_group.into_iter().chain(s.supplemental_groups.iter().flatten().copied()));
    for group in groups.collect::<BTreeSet<_>>() {
        push("--group-add", group.to_string());
    }
    if let Some(dir) = container.working_dir.as_ref().filter(|d| !d.is_empty()) {
        push("--workdir", dir.clone());
    }
    for (key, value) in env {
        push("--env", format!("{key}={value}"));
    }
    for mount in mounts {
        let source = mount.host_path.to_string_lossy();
        if source.contains(',') || mount.container_path.contains(',') {
            return Err(format!("mount {source} -> {}: paths with ',' are not supported", mount.container_path));
        }
        let read_only = if mount.read_only { ",readonly" } else { "" };
        push("--mount", format!("type=bind,source={source},target={}{read_only}", mount.container_path));
    }
    if container.security_context.as_ref().and_then(|s| s.read_only_root_filesystem) == Some(true) {
        args.push("--read-only".to_owned());
    }
    let known: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |items: &Option<Vec<String>>| -> Vec<String> {
        items.iter().flatten().map(|item| expand(item, |n| known.get(n).map(|v| (*v).to_owned()))).collect()
    };
    let command = expand_all(&container.command);
    let command_args = expand_all(&container.args);
    if let Some((entrypoint, rest)) = command.split_first() {
        args.push("--entrypoint".to_owned());
        args.push(entrypoint.clone());
        args.push(image.clone());
        args.extend(rest.iter().cloned());
    } else {
        args.push(image.clone());
    }
    args.extend(command_args);
    Ok(ContainerPlan { name, image, args })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "demo-0", "namespace": "prod", "uid": "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                         "labels": {"app": "demo"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn ctx() -> PodContext {
        PodContext {
            node_name: "testbed-node".to_owned(),
            network: "restate-testbed".to_owned(),
            pod_ip: Ipv4Addr::new(172, 30, 128, 1),
            host_ip: Ipv4Addr::new(172, 30, 0, 1),
            api_host: "172.30.0.1".to_owned(),
            api_port: 6443,
        }
    }

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("x".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_kubernetes() {
        assert_eq!(expand("$(A)-$(A)", lookup), "x-x");
        assert_eq!(expand("$(UNKNOWN)", lookup), "$(UNKNOWN)");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$$(A)", lookup), "$x");
        assert_eq!(expand("a$b", lookup), "a$b");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("end$", lookup), "end$");
        assert_eq!(expand("[$(EMPTY)]", lookup), "[]");
        assert_eq!(expand("$()", lookup), "$()");
        assert_eq!(expand("héllo $(A) wörld", lookup), "héllo x wörld");
    }

    #[test]
    fn names_and_aliases() {
        let plain = pod(json!({"containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(container_name(&plain), "k8s_prod_demo-0_0a1b2c3d");
        assert_eq!(network_aliases(&plain), vec!["demo-0"]);
        assert_eq!(hostname(&plain), "demo-0");
        let stateful = pod(json!({"hostname": "demo-0", "subdomain": "demo-cluster",
                                  "containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(
            network_aliases(&stateful),
            vec![
                "demo-0",
                "demo-0.demo-cluster.prod.svc.cluster.local",
                "demo-0.demo-cluster.prod.svc",
                "demo-0.demo-cluster"
            ]
        );
    }

    #[test]
    fn resolves_env_in_order_with_references() {
        let p = pod(json!({"serviceAccountName": "sa", "containers": [{"name": "c", "image": "i", "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "ADDR", "value": "http://$(POD_NAME).x:$(PORT)/$(KUBERNETES_SERVICE_HOST)"},
            {"name": "PORT", "value": "1"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "id"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
            {"name": "PORT", "value": "2"},
        ]}]}));
        let mut data = ReferencedData::default();
        data.secrets.insert("creds".into(), Some(BTreeMap::from([("id".into(), "secret-id".into())])));
        data.config_maps.insert("cfg".into(), Some(BTreeMap::from([("k".into(), "v".into())])));
        let container = main_container(&p).unwrap();
        assert_eq!(
            referenced_objects(container),
            (BTreeSet::from(["cfg".to_owned()]), BTreeSet::from(["creds".to_owned()]))
        );
        let env = resolve_env(&p, container, &ctx(), &data).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("172.30.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("6443"));
        assert_eq!(get("ADDR"), Some("http://demo-0.x:$(PORT)/172.30.0.1"));
        assert_eq!(get("PORT"), Some("2"));
        assert_eq!(get("IP"), Some("172.30.128.1"));
        assert_eq!(get("APP"), Some("demo"));
        assert_eq!(get("SA"), Some("sa"));
        assert_eq!(get("KEY"), Some("secret-id"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("CM"), Some("v"));
        assert_eq!(env.iter().filter(|(n, _)| n == "PORT").count(), 1);
    }

    #[test]
    fn missing_references_fail_unless_optional() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i", "env": [
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "id"}}}]}]}));
        let mut data = ReferencedData::default();
        data.secrets.insert("creds".into(), None);
        let err = resolve_env(&p, main_container(&p).unwrap(), &ctx(), &data).unwrap_err();
        assert_eq!(err, "env KEY: secret creds not found");
        let p = pod(json!({"containers": [{"name": "c", "image": "i", "envFrom": [
            {"secretRef": {"name": "creds", "optional": true}}, {"configMapRef": {"name": "cfg"}, "prefix": "P_"}]}]}));
        data.config_maps.insert("cfg".into(), Some(BTreeMap::from([("k".into(), "v".into())])));
        let env = resolve_env(&p, main_container(&p).unwrap(), &ctx(), &data).unwrap();
        assert!(env.contains(&("P_k".to_owned(), "v".to_owned())));
    }

    #[test]
    fn plans_docker_run() {
        let p = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
            "containers": [{"name": "c", "image": "restate-cluster:dev",
                "command": ["/bin/sh", "-c"], "args": ["echo $(GREETING) $$(GREETING)"],
                "env": [{"name": "GREETING", "value": "hi"}],
                "securityContext": {"readOnlyRootFilesystem": true}}]}));
        let container = main_container(&p).unwrap();
        let env = resolve_env(&p, container, &ctx(), &ReferencedData::default()).unwrap();
        let mounts = vec![Mount { host_path: "/s/v".into(), container_path: "/etc/x".into(), read_only: true }];
        let plan = plan(&p, container, &ctx(), &env, &mounts).unwrap();
        let joined = plan.args.join(" ");
        assert!(joined.starts_with("-d --name k8s_prod_demo-0_0a1b2c3d --pull never --network restate-testbed"));
        assert!(joined.contains("--ip 172.30.128.1 --hostname demo-0 --network-alias demo-0"));
        assert!(joined.contains("--label restate-testbed.node=testbed-node"));
        assert!(joined.contains("--user 1000:1000 --group-add 2000"));
        assert!(joined.contains("--env GREETING=hi"));
        assert!(joined.contains("--mount type=bind,source=/s/v,target=/etc/x,readonly --read-only"));
        let tail: Vec<&str> = plan.args.iter().rev().take(4).rev().map(String::as_str).collect();
        assert_eq!(tail, ["/bin/sh", "restate-cluster:dev", "-c", "echo hi $(GREETING)"]);
        assert_eq!(volume_owner(&p, container), Some((1000, 2000)));

        let args_only = pod(json!({"containers": [{"name": "c", "image": "img", "args": ["--flag"]}]}));
        let container = main_container(&args_only).unwrap();
        let plan = super::plan(&args_only, container, &ctx(), &[], &[]).unwrap();
        assert_eq!(plan.args[plan.args.len() - 2..], ["img".to_owned(), "--flag".to_owned()]);
        assert!(!plan.args.contains(&"--user".to_owned()));
        assert_eq!(volume_owner(&args_only, container), None);
    }
}
