//! Leader election over a `coordination.k8s.io/v1` Lease, so that two or more operator
//! replicas are safe: only the holder of the Lease runs the controllers, the others stand by.
//!
//! The rules ([`decide`], pure):
//! - A Lease that does not exist or has no holder is free: take it.
//! - A Lease held by this replica is renewed every [`Timing::renew_interval`].
//! - A Lease held by another replica is taken over only once it has not changed for its
//!   `leaseDurationSeconds`, measured on this replica's own clock from when this replica
//!   first saw that version (so clock skew between replicas does not matter).
//! - A leader that has not renewed for [`Timing::renew_deadline`] (two thirds of the lease
//!   duration), or sees another holder, has lost: it must stop reconciling at once. The
//!   binary exits (Kubernetes restarts the container, which then stands by). The deadline
//!   counts from the start of the last successful renewal, so the leader stops before any
//!   other replica can see the Lease expire.
//!
//! Every write is a replace carrying the `resourceVersion` that was read, so two replicas
//! racing for the Lease cannot both win: the API server refuses the second with a conflict.
//! On a clean shutdown the leader clears the holder, and a standby takes over on its next
//! poll instead of waiting for the Lease to expire.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::chrono::{DateTime, Utc};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// What this replica is doing; `/ready` answers 200 for [`Role::Standby`] and [`Role::Leading`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The Lease has not been read yet (the API server has not answered).
    Starting,
    /// Another replica leads; this one waits for the Lease to be free or expire.
    Standby,
    /// This replica holds the Lease and runs the controllers.
    Leading,
    /// Shutting down.
    Stopping,
}

/// The timing of the election, all derived from the lease duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `leaseDurationSeconds` written into the Lease: how long others wait before taking over.
    pub lease_duration: Duration,
    /// How often the leader renews, and how often a standby looks at the Lease.
    pub renew_interval: Duration,
    /// A leader that has not renewed successfully for this long gives up.
    pub renew_deadline: Duration,
    /// How soon a leader retries a failed renewal.
    pub retry_interval: Duration,
}

impl Timing {
    /// Renewal every third of `lease_duration`, deadline at two thirds (15 s: renew every 5 s,
    /// give up after 10 s, retry failed renewals every second).
    pub fn new(lease_duration: Duration) -> Timing {
        Timing {
            lease_duration,
            renew_interval: lease_duration / 3,
            renew_deadline: lease_duration * 2 / 3,
            retry_interval: (lease_duration / 15).max(Duration::from_millis(200)),
        }
    }

    /// `leaseDurationSeconds` as the Lease stores it (whole seconds, at least 1).
    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1)
    }
}

/// Whether this replica may reconcile right now, for the reconciler to check before each
/// round: a leader paused past its deadline (a frozen VM, a stopped process) notices it only
/// when its election task runs again, and must not start rounds before then.
#[derive(Debug, Clone)]
pub struct Leadership {
    /// When the last successful renewal started; `None` before the first.
    renewed: Arc<Mutex<Option<Instant>>>,
    /// `None`: no election, this replica always leads.
    deadline: Option<Duration>,
}

impl Leadership {
    /// For a replica that runs without leader election.
    pub fn unconditional() -> Leadership {
        Leadership { renewed: Arc::default(), deadline: None }
    }

    fn renewed_at(&self, at: Instant) {
        *self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(at);
    }

    /// Whether the Lease was renewed within the deadline (always, without an election).
    pub fn holds(&self) -> bool {
        let Some(deadline) = self.deadline else { return true };
        let renewed = *self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        renewed.is_some_and(|at| at.elapsed() < deadline)
    }
}

/// This replica's view of the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView<'a> {
    /// `spec.holderIdentity`; `None` or empty when released.
    pub holder: Option<&'a str>,
    /// `spec.leaseDurationSeconds`, when set.
    pub duration: Option<Duration>,
    /// When this replica first saw the Lease's current version (its own clock).
    pub unchanged_since: Instant,
}

/// What to do next with the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Create the Lease, or write this replica as the holder.
    Acquire,
    /// Renew this replica's hold.
    Renew,
    /// Another replica holds a live Lease: stand by.
    Wait { holder: String },
    /// This replica led and no longer may: stop reconciling now.
    Lost { reason: String },
}

/// Whether a leader whose last successful renewal started at `renewed` has passed its
/// deadline at `now`.
pub fn renewal_overdue(renewed: Instant, timing: &Timing, now: Instant) -> bool {
    now.saturating_duration_since(renewed) >= timing.renew_deadline
}

fn overdue(renewed: Instant, timing: &Timing, now: Instant) -> String {
    format!(
        "the Lease was not renewed for {:.1?} (deadline {:?})",
        now.saturating_duration_since(renewed),
        timing.renew_deadline
    )
}

/// The next step for the replica `me`, given the Lease as read (`None`: it does not exist)
/// and, if it leads, when its last successful renewal started (`renewed`).
pub fn decide(
    lease: Option<&LeaseView>,
    me: &str,
    renewed: Option<Instant>,
    timing: &Timing,
    now: Instant,
) -> Decision {
    if let Some(renewed) = renewed {
        if renewal_overdue(renewed, timing, now) {
            return Decision::Lost { reason: overdue(renewed, timing, now) };
        }
    }
    let Some(lease) = lease else { return Decision::Acquire };
    match lease.holder.filter(|holder| !holder.is_empty()) {
        None => Decision::Acquire,
        Some(holder) if holder == me => Decision::Renew,
        Some(holder) if renewed.is_some() => Decision::Lost { reason: format!("the Lease is now held by {holder}") },
        Some(holder) => {
            let duration = lease.duration.unwrap_or(timing.lease_duration);
            if now.saturating_duration_since(lease.unchanged_since) >= duration {
                Decision::Acquire
            } else {
                Decision::Wait { holder: holder.to_owned() }
            }
        }
    }
}

/// The Lease spec after `me` acquires (`acquire`) or renews `current` at `now`. Acquiring
/// an existing Lease that `me` does not hold counts a transition.
pub fn claimed(current: Option<&LeaseSpec>, me: &str, acquire: bool, timing: &Timing, now: DateTime<Utc>) -> LeaseSpec {
    let mut spec = current.cloned().unwrap_or_default();
    let previous = spec.holder_identity.clone().filter(|h| !h.is_empty());
    if acquire {
        spec.acquire_time = Some(MicroTime(now));
        let transitions = spec.lease_transitions.unwrap_or(0);
        // A new Lease starts at 0; taking an existing one from another holder, or after a
        // release, is a transition.
        let taken = current.is_some() && previous.as_deref() != Some(me);
        spec.lease_transitions = Some(if taken { transitions.saturating_add(1) } else { transitions });
    }
    spec.holder_identity = Some(me.to_owned());
    spec.lease_duration_seconds = Some(timing.lease_duration_seconds());
    spec.renew_time = Some(MicroTime(now));
    spec
}

/// The Lease spec after its holder lets go at `now`: no holder, so the next replica that
/// looks takes it at once.
pub fn released(current: &LeaseSpec, now: DateTime<Utc>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..current.clone()
    }
}

/// This replica's identity in the Lease: `POD_NAME` (the chart sets it from the downward
/// API), else the host name, else the process id.
pub fn default_identity() -> String {
    let from_env = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    from_env("POD_NAME")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| format!("restate-operator-{}", std::process::id()))
}

/// How [`LeaderElection::run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Asked to stop; the Lease was released if this replica held it.
    Stopped,
    /// This replica led and lost the Lease; it must stop reconciling at once.
    Lost(String),
}

/// One replica's side of the election: the Lease `namespace/name`, claimed as `identity`.
pub struct LeaderElection {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
    leadership: Leadership,
}

/// The version of the Lease this replica last saw, and since when (for expiry).
struct Seen {
    resource_version: Option<String>,
    since: Instant,
}

impl LeaderElection {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str, timing: Timing) -> LeaderElection {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            leadership: Leadership { renewed: Arc::default(), deadline: Some(timing.renew_deadline) },
        }
    }

    /// The handle the reconciler checks before each round.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Runs the election until `stop` turns true (or its sender is dropped), publishing this
    /// replica's role in `role`. Returns [`Ended::Lost`] as soon as a leader may no longer
    /// lead; on stop, a leader releases the Lease first. The caller must stop the controllers
    /// before it sets `stop`, since releasing lets another replica lead at once.
    pub async fn run(self, role: watch::Sender<Role>, mut stop: watch::Receiver<bool>) -> Ended {
        let mut seen: Option<Seen> = None;
        let mut renewed: Option<Instant> = None;
        loop {
            let pause = match self.step(&mut seen, &mut renewed, &role).await {
                Ok(pause) => pause,
                Err(reason) => return Ended::Lost(reason),
            };
            tokio::select! {
                // The guard `wait_for` returns must not live across the release's awaits.
                _ = async { drop(stop.wait_for(|stop| *stop).await) } => {
                    if renewed.is_some() {
                        self.release().await;
                    }
                    return Ended::Stopped;
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Reads the Lease, decides and writes; returns how long to wait before the next step,
    /// or why leadership is lost.
    async fn step(
        &self,
        seen: &mut Option<Seen>,
        renewed: &mut Option<Instant>,
        role: &watch::Sender<Role>,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        if let Some(at) = renewed.filter(|at| renewal_overdue(*at, &self.timing, started)) {
            return Err(overdue(at, &self.timing, started));
        }
        // A leader's requests must end before its deadline, so that it notices in time.
        let budget = match *renewed {
            Some(at) => self.timing.renew_deadline.saturating_sub(started.saturating_duration_since(at)),
            None => self.timing.renew_interval,
        }
        .min(self.timing.renew_interval);
        let until = tokio::time::Instant::from_std(started + budget);
        let failed = |what: String, renewed: &Option<Instant>| -> Result<Duration, String> {
            match renewed {
                Some(at) if renewal_overdue(*at, &self.timing, Instant::now()) => {
                    Err(format!("{what}; {}", overdue(*at, &self.timing, Instant::now())))
                }
                Some(_) => {
                    tracing::warn!("leader election: {what}; retrying");
                    Ok(self.timing.retry_interval)
                }
                None => {
                    tracing::warn!("leader election: {what}; retrying");
                    Ok(self.timing.renew_interval)
                }
            }
        };

        let lease = match tokio::time::timeout_at(until, self.api.get_opt(&self.name)).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(e)) => return failed(format!("cannot read Lease {}: {e}", self.lease()), renewed),
            Err(_) => return failed(format!("reading Lease {} timed out after {budget:?}", self.lease()), renewed),
        };
        let version = lease.as_ref().and_then(|l| l.metadata.resource_version.clone());
        if seen.as_ref().is_none_or(|s| s.resource_version != version) {
            *seen = Some(Seen { resource_version: version, since: started });
        }
        let spec = lease.as_ref().and_then(|l| l.spec.as_ref());
        let view = lease.as_ref().map(|_| LeaseView {
            holder: spec.and_then(|s| s.holder_identity.as_deref()),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            unchanged_since: seen.as_ref().map_or(started, |s| s.since),
        });

        let acquire = match decide(view.as_ref(), &self.identity, *renewed, &self.timing, Instant::now()) {
            Decision::Lost { reason } => return Err(reason),
            Decision::Wait { holder } => {
                if *role.borrow() != Role::Standby {
                    tracing::info!("standing by: Lease {} is held by {holder}", self.lease());
                    role.send_replace(Role::Standby);
                }
                return Ok(self.timing.renew_interval);
            }
            Decision::Acquire => true,
            Decision::Renew => false,
        };
        let next = claimed(spec, &self.identity, acquire, &self.timing, Utc::now());
        let write = async {
            match lease {
                Some(mut current) => {
                    current.spec = Some(next);
                    self.api.replace(&self.name, &PostParams::default(), &current).await
                }
                None => {
                    let new = Lease {
                        metadata: ObjectMeta {
                            name: Some(self.name.clone()),
                            namespace: Some(self.namespace.clone()),
                            ..ObjectMeta::default()
                        },
                        spec: Some(next),
                    };
                    self.api.create(&PostParams::default(), &new).await
                }
            }
        };
        match tokio::time::timeout_at(until, write).await {
            Ok(Ok(_)) => {
                *renewed = Some(started);
                self.leadership.renewed_at(started);
                if *role.borrow() != Role::Leading {
                    tracing::info!(identity = %self.identity, "leading: holding Lease {}", self.lease());
                    role.send_replace(Role::Leading);
                }
                Ok(self.timing.renew_interval)
            }
            // Another replica wrote first (conflict on replace, or created it): read again.
            Ok(Err(kube::Error::Api(e))) if e.code == 409 && renewed.is_none() => {
                tracing::debug!("Lease {} changed while acquiring it: {}", self.lease(), e.message);
                if *role.borrow() == Role::Starting {
                    role.send_replace(Role::Standby);
                }
                Ok(self.timing.retry_interval)
            }
            Ok(Err(e)) => failed(format!("cannot write Lease {}: {e}", self.lease()), renewed),
            Err(_) => failed(format!("writing Lease {} timed out after {budget:?}", self.lease()), renewed),
        }
    }

    /// Clears the holder if this replica still holds the Lease. Failures are logged: the
    /// Lease then expires by itself.
    async fn release(&self) {
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(false) };
            let Some(spec) = lease.spec.as_ref().filter(|s| s.holder_identity.as_deref() == Some(&self.identity))
            else {
                return Ok(false);
            };
            lease.spec = Some(released(spec, Utc::now()));
            self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| true)
        };
        match tokio::time::timeout(self.timing.renew_interval, result).await {
            Ok(Ok(true)) => tracing::info!("released Lease {}", self.lease()),
            Ok(Ok(false)) => tracing::info!("Lease {} was no longer held by {}", self.lease(), self.identity),
            Ok(Err(e)) => tracing::warn!("could not release Lease {} (it expires by itself): {e}", self.lease()),
            Err(_) => tracing::warn!("releasing Lease {} timed out (it expires by itself)", self.lease()),
        }
    }

    fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::chrono::TimeZone;

    use super::*;

    fn timing() -> Timing {
        Timing::new(Duration::from_secs(15))
    }

    fn held_by(holder: &str, since: Instant) -> LeaseView<'_> {
        LeaseView { holder: Some(holder), duration: Some(Duration::from_secs(15)), unchanged_since: since }
    }

    #[test]
    fn timing_follows_the_lease_duration() {
        let t = timing();
        assert_eq!(
            (t.renew_interval, t.renew_deadline, t.retry_interval),
            (Duration::from_secs(5), Duration::from_secs(10), Duration::from_secs(1))
        );
        assert_eq!(t.lease_duration_seconds(), 15);
    }

    #[test]
    fn a_missing_or_released_lease_is_acquired() {
        let now = Instant::now();
        assert_eq!(decide(None, "a", None, &timing(), now), Decision::Acquire);
        for holder in [None, Some("")] {
            let view = LeaseView { holder, duration: Some(Duration::from_secs(1)), unchanged_since: now };
            assert_eq!(decide(Some(&view), "a", None, &timing(), now), Decision::Acquire, "{holder:?}");
        }
    }

    #[test]
    fn a_live_lease_of_another_replica_is_waited_for_until_it_expires() {
        let t0 = Instant::now();
        let lease = held_by("b", t0);
        let wait = Decision::Wait { holder: "b".into() };
        assert_eq!(decide(Some(&lease), "a", None, &timing(), t0), wait);
        assert_eq!(decide(Some(&lease), "a", None, &timing(), t0 + Duration::from_secs(14)), wait);
        assert_eq!(decide(Some(&lease), "a", None, &timing(), t0 + Duration::from_secs(15)), Decision::Acquire);
        // The Lease's own duration counts, not ours.
        let long = LeaseView { duration: Some(Duration::from_secs(60)), ..lease };
        assert_eq!(decide(Some(&long), "a", None, &timing(), t0 + Duration::from_secs(30)), wait);
    }

    #[test]
    fn the_holder_renews_until_its_deadline() {
        let t0 = Instant::now();
        let lease = held_by("a", t0);
        assert_eq!(decide(Some(&lease), "a", Some(t0), &timing(), t0 + Duration::from_secs(5)), Decision::Renew);
        // Before leading (e.g. a restarted container with the same pod name): its own Lease.
        assert_eq!(decide(Some(&lease), "a", None, &timing(), t0), Decision::Renew);
        let late = decide(Some(&lease), "a", Some(t0), &timing(), t0 + Duration::from_secs(10));
        assert!(matches!(&late, Decision::Lost { reason } if reason.contains("not renewed")), "{late:?}");
        assert!(!renewal_overdue(t0, &timing(), t0 + Duration::from_millis(9_999)));
        assert!(renewal_overdue(t0, &timing(), t0 + Duration::from_secs(10)));
        // The deadline comes before any other replica may take over (the lease duration).
        assert!(timing().renew_deadline < timing().lease_duration);
    }

    #[test]
    fn a_leader_that_sees_another_holder_has_lost() {
        let t0 = Instant::now();
        let lost = decide(Some(&held_by("b", t0)), "a", Some(t0), &timing(), t0 + Duration::from_secs(1));
        assert_eq!(lost, Decision::Lost { reason: "the Lease is now held by b".into() });
        // A leader whose Lease was deleted re-creates it (the create fails if another won).
        assert_eq!(decide(None, "a", Some(t0), &timing(), t0 + Duration::from_secs(1)), Decision::Acquire);
    }

    #[test]
    fn claiming_counts_transitions_and_releasing_clears_the_holder() {
        let at = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let first = claimed(None, "a", true, &timing(), at(0));
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!((first.lease_duration_seconds, first.lease_transitions), (Some(15), Some(0)));
        assert_eq!(
            (first.acquire_time.clone(), first.renew_time.clone()),
            (Some(MicroTime(at(0))), Some(MicroTime(at(0))))
        );

        let renewed = claimed(Some(&first), "a", false, &timing(), at(5));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(0))), "renewing keeps the acquire time");
        assert_eq!(renewed.renew_time, Some(MicroTime(at(5))));
        assert_eq!(renewed.lease_transitions, Some(0));

        let taken = claimed(Some(&renewed), "b", true, &timing(), at(30));
        assert_eq!((taken.holder_identity.as_deref(), taken.lease_transitions), (Some("b"), Some(1)));

        let free = released(&taken, at(40));
        assert_eq!(free.holder_identity, None);
        assert_eq!(free.lease_duration_seconds, Some(1));
        assert_eq!(free.lease_transitions, Some(1));
        let after_release = claimed(Some(&free), "a", true, &timing(), at(41));
        assert_eq!(after_release.lease_transitions, Some(2), "taking over a released Lease is a transition");
        let again = claimed(Some(&after_release), "a", true, &timing(), at(42));
        assert_eq!(again.lease_transitions, Some(2), "re-acquiring its own Lease is not");
    }

    #[test]
    fn leadership_holds_only_within_the_deadline() {
        assert!(Leadership::unconditional().holds());
        let leadership = Leadership { renewed: Arc::default(), deadline: Some(Duration::from_secs(10)) };
        assert!(!leadership.holds(), "never renewed");
        leadership.renewed_at(Instant::now());
        assert!(leadership.holds());
        leadership.renewed_at(Instant::now() - Duration::from_secs(11));
        assert!(!leadership.holds());
    }
}
