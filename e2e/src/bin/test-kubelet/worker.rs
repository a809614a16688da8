//! One task per pod incarnation (pod UID): creates the pod's container, restarts it when it
//! exits, runs the readiness probe, reports the pod status, and stops and removes the
//! container when the pod goes away.
//!
//! Contract with `main`: the task gets the latest pod object through a watch channel and
//! syncs on every change and every second. A pod with a deletionTimestamp is stopped
//! (`docker stop` with its grace period, at most 30 s), its logs saved, its container
//! removed and the pod deleted for good (gracePeriodSeconds 0, UID precondition). A closed
//! channel means the pod is gone from the API (force-deleted): its container is removed the
//! same way. The task ends after either. A container that already exists under the pod's
//! container name (kubelet restart) is adopted, not recreated.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::chrono::SecondsFormat;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use crate::docker::{self, ContainerInfo, LABEL_IP};
use crate::pod_translation::{
    container_name, main_container, name, namespace, plan, pod_key, referenced_objects, resolve_env, uid,
    ReferencedData,
};
use crate::probes::{self, ProbeState};
use crate::status::{self, ContainerState, ContainerView, PodView, Terminated};
use crate::{volumes, Kubelet};

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A container that ran this long before exiting restarts after `INITIAL_BACKOFF` again.
const BACKOFF_RESET_AFTER_SECS: i64 = 60;
const MAX_GRACE_SECONDS: i64 = 30;
const LOG_TAIL_LINES: usize = 200;

/// Why the pod has no running container, shown as the container's waiting state.
#[derive(Clone, Debug, PartialEq)]
struct Waiting {
    reason: &'static str,
    message: String,
}

impl Waiting {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Waiting { reason, message: message.into() }
    }
}

fn waiting(reason: &'static str) -> impl Fn(anyhow::Error) -> Waiting {
    move |err| Waiting::new(reason, format!("{err:#}"))
}

pub struct PodWorker {
    k: Arc<Kubelet>,
    key: String,
    namespace: String,
    pod_name: String,
    uid: String,
    container_name: String,
    ip: Option<Ipv4Addr>,
    /// The container as of the last `docker inspect`.
    info: Option<ContainerInfo>,
    restart_count: i32,
    backoff: Duration,
    /// When the exited container is started again; `None`: running, or not to be restarted.
    restart_at: Option<Instant>,
    /// FinishedAt of the last exit handled (logs saved, restart decided).
    handled_exit: Option<String>,
    last_terminated: Option<Terminated>,
    ready: bool,
    ready_changed_at: String,
    probe: ProbeState,
    next_probe: Option<Instant>,
    start_time: String,
    waiting: Option<Waiting>,
    grace_seconds: i64,
    last_patch: Option<Value>,
    noted_unsupported: bool,
}

impl PodWorker {
    /// A worker for `pod`; readiness, restart count and start time continue from the pod's
    /// status, so a restarted kubelet does not flap a Ready pod.
    pub fn new(k: Arc<Kubelet>, pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let ready_condition =
            status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        let ready = ready_condition.is_some_and(|c| c.status == "True");
        let api_time =
            |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| t.0.to_rfc3339_opts(SecondsFormat::Secs, true);
        PodWorker {
            key: pod_key(pod),
            namespace: namespace(pod).to_owned(),
            pod_name: name(pod).to_owned(),
            uid: uid(pod).to_owned(),
            container_name: container_name(pod),
            ip: None,
            info: None,
            restart_count: status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .map_or(0, |c| c.restart_count),
            backoff: INITIAL_BACKOFF,
            restart_at: None,
            handled_exit: None,
            last_terminated: None,
            ready,
            ready_changed_at: ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map_or_else(status::now, api_time),
            probe: if ready { ProbeState::ready() } else { ProbeState::default() },
            next_probe: None,
            start_time: status.and_then(|s| s.start_time.as_ref()).map_or_else(status::now, api_time),
            waiting: None,
            grace_seconds: grace_seconds(pod),
            last_patch: None,
            noted_unsupported: false,
            k,
        }
    }

    pub async fn run(mut self, mut pods: watch::Receiver<Arc<Pod>>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let restart_at = self.restart_at;
            let gone = tokio::select! {
                changed = pods.changed() => changed.is_err(),
                _ = tick.tick() => false,
                () = sleep_until(restart_at) => false,
            };
            if gone {
                self.remove(None).await;
                return;
            }
            let pod = pods.borrow_and_update().clone();
            if pod.metadata.deletion_timestamp.is_some() {
                self.remove(Some(&pod)).await;
                return;
            }
            self.grace_seconds = grace_seconds(&pod);
            match self.sync(&pod).await {
                Ok(()) => self.waiting = None,
                Err(w) => {
                    if self.waiting.as_ref().map(|w| &w.message) != Some(&w.message) {
                        warn!("pod {}: {}", self.key, w.message);
                    }
                    self.waiting = Some(w);
                }
            }
            self.report(&pod).await;
        }
    }

    /// Brings the container to where the pod wants it: created, running (or restarting
    /// after a backoff), probed.
    async fn sync(&mut self, pod: &Pod) -> Result<(), Waiting> {
        let container = main_container(pod).map_err(|m| Waiting::new("CreateContainerConfigError", m))?;
        if !self.noted_unsupported {
            self.noted_unsupported = true;
            let count = pod.spec.as_ref().map_or(0, |s| s.containers.len());
            if count > 1 {
                warn!(
                    "pod {}: {count} containers, the test kubelet runs only the first ({})",
                    self.key, container.name
                );
            }
            if pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).is_some_and(|c| !c.is_empty()) {
                warn!("pod {}: initContainers are not run by the test kubelet", self.key);
            }
            if container.liveness_probe.is_some() {
                info!("pod {}: livenessProbe is not run by the test kubelet", self.key);
            }
        }
        let mut info = docker::inspect(&self.container_name).await.map_err(waiting("ContainerCreating"))?;
        if info.is_none() {
            if self.info.take().is_some() {
                warn!("pod {}: container {} disappeared, creating it again", self.key, self.container_name);
                self.restart_count += 1;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                return Ok(());
            }
            self.create(pod, container).await?;
            info = docker::inspect(&self.container_name).await.map_err(waiting("ContainerCreating"))?;
        }
        let info = info.ok_or_else(|| Waiting::new("ContainerCreating", "the container vanished after docker run"))?;
        if self.ip.is_none() {
            // Adopting a container of an earlier run of the kubelet.
            if let Some(ip) = info.labels.get(LABEL_IP).and_then(|ip| ip.parse().ok()) {
                self.k.ipam.hold(ip).await;
                self.ip = Some(ip);
            }
            let ip = self.ip.map_or("unknown".to_owned(), |ip| ip.to_string());
            info!("pod {}: adopted existing container {} ip {ip}", self.key, self.container_name);
        }
        self.info = Some(info.clone());
        if info.running {
            self.restart_at = None;
            self.probe(container, &info).await;
            Ok(())
        } else {
            self.exited(pod, &info).await
        }
    }

    async fn create(&mut self, pod: &Pod, container: &Container) -> Result<(), Waiting> {
        self.set_ready(false);
        let image = container.image.clone().unwrap_or_default();
        match docker::image_id(&image).await.map_err(waiting("ErrImageNeverPull"))? {
            Some(_) => {}
            None => {
                let message = format!("image {image} not found locally: build it with `make images`");
                return Err(Waiting::new("ErrImageNeverPull", message));
            }
        }
        let mounts = volumes::prepare(&self.k, pod, container).await.map_err(waiting("ContainerCreating"))?;
        let data = self.referenced_data(container).await.map_err(waiting("CreateContainerConfigError"))?;
        let ip = match self.ip {
            Some(ip) => ip,
            None => *self.ip.insert(self.k.ipam.allocate().await.map_err(waiting("ContainerCreating"))?),
        };
        let ctx = self.k.pod_context(ip);
        let config_error = |m: String| Waiting::new("CreateContainerConfigError", m);
        let env = resolve_env(pod, container, &ctx, &data).map_err(config_error)?;
        let plan = plan(pod, container, &ctx, &env, &mounts).map_err(config_error)?;
        if let Err(err) = docker::run(&plan.args).await {
            // A half-created container would hold the name.
            let _ = docker::remove(&plan.name).await;
            let message = format!("{err:#}");
            if message.contains("Address already in use") {
                // Another node's kubelet took the address between our look and our run:
                // the next attempt picks another.
                self.ip = None;
                self.k.ipam.release(ip).await;
            }
            return Err(Waiting::new("RunContainerError", message));
        }
        self.probe = ProbeState::default();
        self.next_probe = None;
        info!("started pod {} as container {} ip {ip} (image {})", self.key, plan.name, plan.image);
        Ok(())
    }

    /// ConfigMaps and Secrets the container's env refers to.
    async fn referenced_data(&self, container: &Container) -> Result<ReferencedData> {
        let (maps, secrets) = referenced_objects(container);
        let mut data = ReferencedData::default();
        for name in maps {
            let map = Api::<ConfigMap>::namespaced(self.k.client.clone(), &self.namespace).get_opt(&name).await?;
            data.config_maps.insert(name, map.map(|m| m.data.unwrap_or_default()));
        }
        for name in secrets {
            let secret = Api::<Secret>::namespaced(self.k.client.clone(), &self.namespace).get_opt(&name).await?;
            let decoded = secret.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            });
            data.secrets.insert(name, decoded);
        }
        Ok(data)
    }

    /// Handles a stopped container: the first time an exit is seen its logs are saved and a
    /// restart is scheduled (restart policy permitting); the restart happens when it is due.
    async fn exited(&mut self, pod: &Pod, info: &ContainerInfo) -> Result<(), Waiting> {
        if self.handled_exit.as_deref() != Some(info.finished_at.as_str()) {
            self.handled_exit = Some(info.finished_at.clone());
            self.set_ready(false);
            self.last_terminated = Some(terminated(info));
            let path =
                self.k.logs_dir().join(format!("{}_{}_{}.log", self.namespace, self.pod_name, self.restart_count));
            let header = format!(
                "{} container {} of pod {} (uid {}) exited with code {} at {}; last {LOG_TAIL_LINES} lines",
                status::now(),
                self.container_name,
                self.key,
                self.uid,
                info.exit_code,
                info.finished_at
            );
            if let Err(err) = docker::save_logs(&info.id, &path, Some(LOG_TAIL_LINES), &header).await {
                warn!("pod {}: cannot save the logs: {err:#}", self.key);
            }
            let ran = status::docker_duration_secs(&info.started_at, &info.finished_at);
            if ran >= BACKOFF_RESET_AFTER_SECS {
                self.backoff = INITIAL_BACKOFF;
            }
            let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
            if policy == "Always" || (policy == "OnFailure" && info.exit_code != 0) {
                self.restart_at = Some(Instant::now() + self.backoff);
                info!(
                    "pod {}: container {} exited with code {} after {ran} s, restarting in {:?} (logs in {})",
                    self.key,
                    self.container_name,
                    info.exit_code,
                    self.backoff,
                    path.display()
                );
            } else {
                self.restart_at = None;
                info!(
                    "pod {}: container exited with code {}, restartPolicy {policy}: not restarted",
                    self.key, info.exit_code
                );
            }
        }
        match self.restart_at {
            Some(at) if Instant::now() >= at => {}
            _ => return Ok(()),
        }
        let result = docker::start(&info.id).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if let Err(err) = result {
            self.restart_at = Some(Instant::now() + self.backoff);
            return Err(Waiting::new(
                "CrashLoopBackOff",
                format!("cannot restart container {}: {err:#}", self.container_name),
            ));
        }
        self.restart_count += 1;
        self.restart_at = None;
        self.probe = ProbeState::default();
        self.next_probe = None;
        info!("restarted pod {} (container {}, restart {})", self.key, self.container_name, self.restart_count);
        if let Ok(Some(info)) = docker::inspect(&info.id).await {
            self.info = Some(info);
        }
        Ok(())
    }

    /// Runs the readiness probe when due; without one a running container is ready.
    async fn probe(&mut self, container: &Container, info: &ContainerInfo) {
        let Some(ip) = self.ip else { return };
        let spec = match probes::readiness(container, IpAddr::V4(ip)) {
            Ok(Some(spec)) => spec,
            Ok(None) => return self.set_ready(true),
            Err(message) => {
                if !self.ready {
                    warn!("pod {}: {message}; ready while running instead", self.key);
                }
                return self.set_ready(true);
            }
        };
        if status::docker_age_secs(&info.started_at) < spec.initial_delay.as_secs() as i64 {
            return;
        }
        let now = Instant::now();
        if self.next_probe.is_some_and(|at| now < at) {
            return;
        }
        self.next_probe = Some(now + spec.period);
        let result = probes::check(&spec.action, &info.id, spec.timeout).await;
        if self.probe.record(result.is_ok(), &spec) {
            match &result {
                Ok(()) => info!("pod {}: ready ({} succeeded)", self.key, probes::describe(&spec.action)),
                Err(err) => info!("pod {}: not ready: {err}", self.key),
            }
        }
        self.set_ready(self.probe.ready);
    }

    fn set_ready(&mut self, ready: bool) {
        if self.ready != ready {
            self.ready = ready;
            self.ready_changed_at = status::now();
        }
    }

    fn view(&self, pod: &Pod) -> PodView {
        let container = main_container(pod).ok();
        let state = match (&self.info, &self.waiting) {
            (Some(info), _) if info.running => ContainerState::Running {
                started_at: status::docker_time(&info.started_at).unwrap_or_else(|| self.start_time.clone()),
            },
            (_, Some(w)) => ContainerState::Waiting { reason: w.reason.to_owned(), message: w.message.clone() },
            (Some(_), None) if self.restart_at.is_some() => ContainerState::Waiting {
                reason: "CrashLoopBackOff".to_owned(),
                message: format!("back-off {:?} restarting failed container", self.backoff),
            },
            (Some(info), None) => ContainerState::Terminated(terminated(info)),
            (None, None) => ContainerState::Waiting { reason: "ContainerCreating".to_owned(), message: String::new() },
        };
        let phase = match &self.info {
            None => "Pending",
            Some(info) if info.running || self.restart_at.is_some() || self.waiting.is_some() => "Running",
            Some(info) if info.exit_code == 0 => "Succeeded",
            Some(_) => "Failed",
        };
        let scheduled_at = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or_else(|| self.start_time.clone(), |t| t.0.to_rfc3339_opts(SecondsFormat::Secs, true));
        let ready = self.ready && self.info.as_ref().is_some_and(|i| i.running);
        PodView {
            phase,
            pod_ip: self.ip.filter(|_| self.info.is_some()),
            host_ip: self.k.host_ip,
            start_time: self.start_time.clone(),
            scheduled_at,
            ready,
            ready_changed_at: self.ready_changed_at.clone(),
            container: ContainerView {
                name: container.map(|c| c.name.clone()).unwrap_or_default(),
                image: container.and_then(|c| c.image.clone()).unwrap_or_default(),
                image_id: self.info.as_ref().map(|i| format!("docker://{}", i.image_id)).unwrap_or_default(),
                container_id: self.info.as_ref().map(|i| i.id.clone()),
                ready,
                restart_count: self.restart_count,
                state,
                last_state: self.last_terminated.clone(),
            },
        }
    }

    /// Patches the pod's status when it differs from what was last written. The UID in the
    /// patch makes the API server refuse it for another pod of the same name.
    async fn report(&mut self, pod: &Pod) {
        let mut patch = status::pod_status_patch(&self.view(pod));
        patch["metadata"] = json!({"uid": self.uid});
        if self.last_patch.as_ref() == Some(&patch) {
            return;
        }
        let api = Api::<Pod>::namespaced(self.k.client.clone(), &self.namespace);
        match api.patch_status(&self.pod_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => self.last_patch = Some(patch),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(err) => warn!("pod {}: status update failed: {err}", self.key),
        }
    }

    /// Stops and removes the container, keeps its logs, frees the pod's address and
    /// directories; with `pod` (graceful deletion) also deletes the pod object for good.
    async fn remove(&mut self, pod: Option<&Pod>) {
        let grace = pod.map_or(self.grace_seconds, grace_seconds).clamp(0, MAX_GRACE_SECONDS);
        let started = Instant::now();
        let log_path = self.k.logs_dir().join(format!("{}_{}_final.log", self.namespace, self.pod_name));
        match docker::inspect(&self.container_name).await {
            Ok(Some(info)) => {
                if info.running {
                    if let Err(err) = docker::stop(&info.id, grace).await {
                        warn!("pod {}: {err:#}", self.key);
                    }
                }
                let header = format!(
                    "{} container {} of pod {} (uid {})",
                    status::now(),
                    self.container_name,
                    self.key,
                    self.uid
                );
                if let Err(err) = docker::save_logs(&info.id, &log_path, None, &header).await {
                    warn!("pod {}: cannot save the logs: {err:#}", self.key);
                }
                if let Err(err) = docker::remove(&info.id).await {
                    warn!("pod {}: {err:#}", self.key);
                }
            }
            Ok(None) => {}
            Err(err) => warn!("pod {}: {err:#}", self.key),
        }
        if let Err(err) = volumes::remove_pod_dir(&self.k, &self.uid) {
            warn!("pod {}: {err:#}", self.key);
        }
        if let Some(ip) = self.ip.take() {
            self.k.ipam.release(ip).await;
        }
        let Some(_) = pod else {
            info!(
                "pod {} gone from the API: removed container {} (logs in {})",
                self.key,
                self.container_name,
                log_path.display()
            );
            return;
        };
        let api = Api::<Pod>::namespaced(self.k.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        for attempt in 1..=10 {
            match api.delete(&self.pod_name, &params).await {
                Ok(_) | Err(kube::Error::Api(kube::core::ErrorResponse { code: 404 | 409, .. })) => {
                    info!(
                        "pod deleted {} (container {} stopped in {:.1} s, logs in {})",
                        self.key,
                        self.container_name,
                        started.elapsed().as_secs_f64(),
                        log_path.display()
                    );
                    return;
                }
                Err(err) if attempt == 10 => warn!("pod {}: final delete failed: {err}", self.key),
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
}

/// Sleeps until `at`; forever without it.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn terminated(info: &ContainerInfo) -> Terminated {
    Terminated {
        exit_code: info.exit_code,
        oom_killed: info.oom_killed,
        started_at: status::docker_time(&info.started_at),
        finished_at: status::docker_time(&info.finished_at),
        container_id: info.id.clone(),
    }
}

/// The pod's deletion grace period, else its termination grace period, else 30 s.
fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
}
