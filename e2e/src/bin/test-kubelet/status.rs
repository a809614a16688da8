//! Pure builders of what the kubelet writes to the API: the pod status patch and the Node.

use std::net::Ipv4Addr;

use k8s_openapi::chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// Now as the API server writes times (RFC 3339, seconds, `Z`).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Docker's nanosecond timestamps as API times; `None` for docker's zero time ("never").
pub fn docker_time(stamp: &str) -> Option<String> {
    let time = DateTime::parse_from_rfc3339(stamp).ok()?.with_timezone(&Utc);
    (time.timestamp() > 0).then(|| time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Seconds between two docker timestamps (0 when either is unknown).
pub fn docker_duration_secs(from: &str, to: &str) -> i64 {
    match (DateTime::parse_from_rfc3339(from), DateTime::parse_from_rfc3339(to)) {
        (Ok(a), Ok(b)) if a.timestamp() > 0 => (b - a).num_seconds(),
        _ => 0,
    }
}

/// Seconds since a docker timestamp (0 when unknown).
pub fn docker_age_secs(stamp: &str) -> i64 {
    match DateTime::parse_from_rfc3339(stamp) {
        Ok(t) if t.timestamp() > 0 => (Utc::now() - t.with_timezone(&Utc)).num_seconds(),
        _ => 0,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i64,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub container_id: String,
}

impl Terminated {
    fn reason(&self) -> &'static str {
        match (self.oom_killed, self.exit_code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            _ => "Error",
        }
    }

    fn to_json(&self) -> Value {
        let mut state = json!({"exitCode": self.exit_code, "reason": self.reason(),
                               "containerID": format!("docker://{}", self.container_id)});
        if let Some(t) = &self.started_at {
            state["startedAt"] = json!(t);
        }
        if let Some(t) = &self.finished_at {
            state["finishedAt"] = json!(t);
        }
        json!({"terminated": state})
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContainerState {
    Waiting { reason: String, message: String },
    Running { started_at: String },
    Terminated(Terminated),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub ready: bool,
    pub restart_count: i32,
    pub state: ContainerState,
    pub last_state: Option<Terminated>,
}

/// What the kubelet knows about a pod; all times are API times.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    /// Pending, Running, Succeeded or Failed.
    pub phase: &'static str,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: String,
    pub scheduled_at: String,
    pub ready: bool,
    pub ready_changed_at: String,
    pub container: ContainerView,
}

/// The JSON merge patch for the pod's status subresource. Lists are replaced as a whole by a
/// merge patch, so it carries every condition the pod has (PodScheduled included).
pub fn pod_status_patch(view: &PodView) -> Value {
    let c = &view.container;
    let state = match &c.state {
        ContainerState::Waiting { reason, message } => json!({"waiting": {"reason": reason, "message": message}}),
        ContainerState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        ContainerState::Terminated(t) => t.to_json(),
    };
    let mut container = json!({
        "name": c.name,
        "image": c.image,
        "imageID": c.image_id,
        "ready": c.ready,
        "restartCount": c.restart_count,
        "started": matches!(c.state, ContainerState::Running { .. }),
        "state": state,
        "lastState": c.last_state.as_ref().map_or(json!({}), Terminated::to_json),
    });
    if let Some(id) = &c.container_id {
        container["containerID"] = json!(format!("docker://{id}"));
    }
    let readiness = |kind: &str| {
        let mut condition = json!({"type": kind, "status": if view.ready { "True" } else { "False" },
                                   "lastTransitionTime": view.ready_changed_at});
        if !view.ready {
            condition["reason"] = json!("ContainersNotReady");
            condition["message"] = json!(format!("containers with unready status: [{}]", c.name));
        }
        condition
    };
    let mut status = json!({
        "phase": view.phase,
        "hostIP": view.host_ip.to_string(),
        "startTime": view.start_time,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": view.start_time},
            readiness("Ready"),
            readiness("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": view.scheduled_at},
        ],
        "containerStatuses": [container],
    });
    if let Some(ip) = view.pod_ip {
        status["podIP"] = json!(ip.to_string());
        status["podIPs"] = json!([{"ip": ip.to_string()}]);
    }
    json!({"status": status})
}

/// Node status for a heartbeat (strategic merge patch of the status subresource): Ready since
/// `ready_since`, heartbeat `now`, the testbed machine's capacity.
pub fn node_status(now: &str, ready_since: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": ready_since})
    };
    let resources = json!({"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    json!({"status": {
        "conditions": [
            condition("Ready", "True", "KubeletReady", "test-kubelet is posting ready status"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "test-kubelet"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "test-kubelet"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "test-kubelet"),
        ],
        "capacity": resources,
        "allocatable": resources,
    }})
}

/// A new Node object named `name` (status is set by the first heartbeat).
pub fn node_object(name: &str, host_ip: Ipv4Addr, extra_labels: &std::collections::BTreeMap<String, String>) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"});
    for (key, value) in extra_labels {
        labels[key] = json!(value);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {"addresses": [{"type": "InternalIP", "address": host_ip.to_string()},
                                 {"type": "Hostname", "address": name}],
                   "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                                "osImage": "restate testbed", "containerRuntimeVersion": "docker://testbed",
                                "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                                "operatingSystem": "linux", "architecture": "amd64"}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ready: bool, state: ContainerState) -> PodView {
        PodView {
            phase: "Running",
            pod_ip: Some(Ipv4Addr::new(172, 30, 128, 1)),
            host_ip: Ipv4Addr::new(172, 30, 0, 1),
            start_time: "2024-05-01T10:00:00Z".into(),
            scheduled_at: "2024-05-01T09:59:59Z".into(),
            ready,
            ready_changed_at: "2024-05-01T10:00:05Z".into(),
            container: ContainerView {
                name: "restate".into(),
                image: "restate-cluster:dev".into(),
                image_id: "sha256:1".into(),
                container_id: Some("abc".into()),
                ready,
                restart_count: 2,
                state,
                last_state: Some(Terminated {
                    exit_code: 137,
                    oom_killed: false,
                    started_at: None,
                    finished_at: Some("2024-05-01T10:00:01Z".into()),
                    container_id: "abc".into(),
                }),
            },
        }
    }

    #[test]
    fn running_ready_pod() {
        let patch =
            pod_status_patch(&view(true, ContainerState::Running { started_at: "2024-05-01T10:00:02Z".into() }));
        let status = &patch["status"];
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "172.30.128.1");
        assert_eq!(status["podIPs"][0]["ip"], "172.30.128.1");
        let cs = &status["containerStatuses"][0];
        assert_eq!(cs["containerID"], "docker://abc");
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["restartCount"], 2);
        assert_eq!(cs["state"]["running"]["startedAt"], "2024-05-01T10:00:02Z");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        let conditions = status["conditions"].as_array().unwrap();
        let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastTransitionTime"], "2024-05-01T10:00:05Z");
        assert!(conditions.iter().any(|c| c["type"] == "PodScheduled" && c["status"] == "True"));
    }

    #[test]
    fn waiting_unready_pod() {
        let waiting = ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: "m".into() };
        let patch = pod_status_patch(&view(false, waiting));
        let cs = &patch["status"]["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["started"], false);
        let conditions = patch["status"]["conditions"].as_array().unwrap();
        let ready = conditions.iter().find(|c| c["type"] == "ContainersReady").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
    }

    #[test]
    fn docker_times() {
        assert_eq!(docker_time("2024-05-01T10:00:00.123456789Z").as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(docker_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(docker_duration_secs("2024-05-01T10:00:00.5Z", "2024-05-01T10:01:00.6Z"), 60);
        assert_eq!(docker_duration_secs("0001-01-01T00:00:00Z", "2024-05-01T10:01:00Z"), 0);
    }

    #[test]
    fn node_heartbeat() {
        let status = node_status("2024-05-01T10:00:10Z", "2024-05-01T10:00:00Z");
        let ready = &status["status"]["conditions"][0];
        assert_eq!((ready["type"].as_str(), ready["status"].as_str()), (Some("Ready"), Some("True")));
        assert_eq!(ready["lastHeartbeatTime"], "2024-05-01T10:00:10Z");
        assert_eq!(status["status"]["allocatable"]["memory"], "24Gi");
    }
}
