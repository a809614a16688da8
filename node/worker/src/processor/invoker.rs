//! One invocation round as the leader runs it: send `Start` + journal to the deployment,
//! append what the SDK produced (one `Journal` record), then `Complete` or `Suspend`.
//! A failed attempt appends nothing and is retried as `[invocation.default-retry-policy]`
//! says; after its last attempt the invocation is paused (or failed).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use restate_metadata::objects::Schema;
use restate_types::Backoff;

use super::attempts::{Attempt, OnMaxAttempts};
use super::context::{ProcessorHandle, WorkerContext};
use restate_partition::{Awaiting, Command, Envelope, Failure, InvocationResult, JournalEntry, StartRequest};
use restate_service_protocol::discovery::{EndpointManifest, HandlerManifest, ServiceManifest};
use restate_service_protocol::protocol::pb::output_command_message;
use restate_service_protocol::protocol::Message;
use restate_service_protocol::HttpVersion;

pub(crate) async fn run_round(
    ctx: &Arc<WorkerContext>,
    handle: &Arc<ProcessorHandle>,
    epoch: u64,
    start: StartRequest,
) {
    let attempt = handle.attempts.begin(start.id);
    attempt_until_done(ctx, handle, epoch, &start, &attempt).await;
    handle.attempts.end(&start.id, &attempt);
}

/// Attempts the round until its records are appended, the retry policy gives up, the
/// invocation is paused or killed (`attempt.abort`), or this node stops leading.
async fn attempt_until_done(
    ctx: &Arc<WorkerContext>,
    handle: &Arc<ProcessorHandle>,
    epoch: u64,
    start: &StartRequest,
    attempt: &Attempt,
) {
    let policy = &ctx.retry_policy;
    // Appends that fail (the log, not the deployment) are retried on their own pace.
    let mut append_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut failures = 0u32;
    loop {
        if handle.active_epoch.load(Ordering::SeqCst) != epoch
            || handle.shutdown.is_cancelled()
            || attempt.abort.is_cancelled()
        {
            return;
        }
        attempt.update(|a| {
            a.retry_count += 1;
            a.last_start_at_ms = Some(super::now_ms());
            a.next_retry_at_ms = None;
            a.in_flight = true;
        });
        let outcome = tokio::select! {
            _ = attempt.abort.cancelled() => return,
            outcome = tokio::time::timeout(ctx.invoke_abort_timeout, round(ctx, epoch, start, attempt)) => {
                outcome.unwrap_or_else(|_| Err(AttemptFailure::local(format!(
                    "the round took longer than {:?} ([worker.invoker] abort-timeout)",
                    ctx.invoke_abort_timeout
                ))))
            }
        };
        attempt.update(|a| a.in_flight = false);
        match outcome {
            Ok(records) => {
                if let Err(e) = ctx.bifrost.append(handle.log, records).await {
                    tracing::warn!(invocation = %start.id, "appending the round's journal failed: {e}");
                    tokio::time::sleep(append_backoff.next_delay()).await;
                    continue;
                }
                return;
            }
            Err(failure) => {
                failures += 1;
                attempt.update(|a| {
                    a.last_failure = Some(failure.message.clone());
                    a.last_failure_code = failure.code;
                });
                if policy.exhausted(failures) {
                    give_up(ctx, handle, epoch, start, failures, &failure).await;
                    return;
                }
                let pause = policy.delay_after(failures);
                attempt.update(|a| a.next_retry_at_ms = Some(super::now_ms() + pause.as_millis() as u64));
                tracing::warn!(invocation = %start.id, target = %start.target, attempt = failures, "invocation attempt failed, retrying in {pause:?}: {}", failure.message);
                tokio::select! {
                    _ = attempt.abort.cancelled() => return,
                    _ = handle.shutdown.cancelled() => return,
                    _ = attempt.retry_now.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// The retry policy's last attempt failed: pause the invocation, or fail it with that
/// attempt's error (`on-max-attempts`). Retried until appended or no longer leading.
async fn give_up(
    ctx: &WorkerContext,
    handle: &ProcessorHandle,
    epoch: u64,
    start: &StartRequest,
    attempts: u32,
    last: &AttemptFailure,
) {
    let id = start.id;
    let record = match ctx.retry_policy.on_max_attempts {
        OnMaxAttempts::Pause => {
            tracing::warn!(invocation = %id, target = %start.target, "pausing the invocation after {attempts} failed attempts ([invocation.default-retry-policy] max-attempts); `restate invocations resume {id}` runs it again. Last error: {}", last.message);
            Envelope::external(Command::Pause { id })
        }
        OnMaxAttempts::Kill => {
            tracing::warn!(invocation = %id, target = %start.target, "failing the invocation after {attempts} failed attempts ([invocation.default-retry-policy] on-max-attempts = \"kill\"). Last error: {}", last.message);
            let failure =
                Failure::new(last.code.unwrap_or(500), format!("gave up after {attempts} attempts: {}", last.message));
            Envelope::from_leader(
                epoch,
                Command::Complete { id, result: Err(failure), completed_at_ms: super::now_ms() },
            )
        }
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while handle.active_epoch.load(Ordering::SeqCst) == epoch && !handle.shutdown.is_cancelled() {
        match ctx.bifrost.append(handle.log, vec![record.encode()]).await {
            Ok(_) => return,
            Err(e) => tracing::warn!(invocation = %id, "appending the invocation's end of retries failed: {e}"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Why an attempt failed: the deployment's error (with its code) or the node's own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttemptFailure {
    code: Option<u32>,
    message: String,
}

impl AttemptFailure {
    fn local(message: impl Into<String>) -> AttemptFailure {
        AttemptFailure { code: None, message: message.into() }
    }
}

impl From<String> for AttemptFailure {
    fn from(message: String) -> AttemptFailure {
        AttemptFailure::local(message)
    }
}

impl From<&str> for AttemptFailure {
    fn from(message: &str) -> AttemptFailure {
        AttemptFailure::local(message)
    }
}

/// Runs the round; returns the records to append.
async fn round(
    ctx: &WorkerContext,
    epoch: u64,
    start: &StartRequest,
    attempt: &Attempt,
) -> Result<Vec<Bytes>, AttemptFailure> {
    // The view's schema; the store's when the view does not know the service yet.
    let knows_service =
        |schema: &Arc<(Schema, restate_types::Version)>| schema.0.services.contains_key(&start.target.service);
    let schema = match ctx.metadata.get::<Schema>().filter(knows_service) {
        Some(schema) => schema,
        None => {
            ctx.metadata.refresh::<Schema>().await.map_err(|e| e.to_string())?.ok_or("no deployments are registered")?
        }
    };
    let schema = &schema.0;
    let service = schema
        .services
        .get(&start.target.service)
        .ok_or_else(|| format!("service '{}' is not registered", start.target.service))?;
    let deployment = schema
        .deployments
        .get(&service.deployment_id)
        .ok_or_else(|| format!("deployment {} of '{}' is gone", service.deployment_id, service.name))?;
    attempt.update(|a| a.deployment_id = Some(deployment.id.to_string()));
    let uri: Uri = deployment.uri.parse().map_err(|e| format!("deployment uri {}: {e}", deployment.uri))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &deployment.additional_headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    let manifest = EndpointManifest {
        manifest_version: 0,
        protocol_mode: None,
        min_protocol_version: deployment.min_protocol_version,
        max_protocol_version: deployment.max_protocol_version,
        // The round only needs to know the target handler exists.
        services: vec![ServiceManifest {
            name: service.name.clone(),
            ty: service.ty,
            handlers: vec![HandlerManifest { name: start.target.handler.clone(), ty: None }],
        }],
    };
    let response = ctx
        .deployments
        .invoke(
            &uri,
            if deployment.use_http_11 { HttpVersion::Http11 } else { HttpVersion::Http2 },
            &manifest,
            &start.target.service,
            &start.target.handler,
            &start.messages,
            &headers,
        )
        .await
        .map_err(|e| e.to_string())?;

    let mut entries = Vec::new();
    let mut output: Option<InvocationResult> = None;
    let mut terminal = None;
    let mut awaiting = None;
    for message in &response.messages {
        match message {
            Message::End(_) => terminal = Some("end"),
            Message::Suspension(suspension) => {
                terminal = Some("suspension");
                awaiting = suspension.awaiting_on.as_ref().map(awaited_by);
            }
            Message::Error(e) => {
                return Err(AttemptFailure {
                    code: Some(e.code),
                    message: format!("the deployment answered error {}: {}", e.code, e.message),
                });
            }
            Message::ProposeRunCompletion { message, .. } => entries.push(JournalEntry::run_completion(message)),
            other => {
                if let Message::OutputCommand(o) = other {
                    output = Some(match &o.result {
                        Some(output_command_message::Result::Value(v)) => Ok(v.content.clone()),
                        Some(output_command_message::Result::Failure(f)) => {
                            Err(Failure::new(f.code, f.message.clone()))
                        }
                        None => Ok(Bytes::new()),
                    });
                }
                // Control messages (e.g. the AwaitingOn hint) are not journal entries.
                if let Ok(entry) = JournalEntry::from_message(other) {
                    entries.push(entry);
                }
            }
        }
    }
    let id = start.id;
    let mut records = Vec::new();
    if !entries.is_empty() {
        let journal = Command::Journal { id, first_command_index: start.known_commands, entries };
        records.push(Envelope::from_leader(epoch, journal).encode());
    }
    match terminal {
        Some("end") => {
            let result = output.unwrap_or_else(|| Ok(Bytes::new()));
            records.push(
                Envelope::from_leader(epoch, Command::Complete { id, result, completed_at_ms: super::now_ms() })
                    .encode(),
            );
        }
        Some(_) => {
            records.push(
                Envelope::from_leader(epoch, Command::Suspend { id, known_entries: start.known_entries, awaiting })
                    .encode(),
            );
        }
        None => return Err(AttemptFailure::local("the deployment's answer ended without End, Suspension or Error")),
    }
    Ok(records)
}

/// Every notification id `future` (a `SuspensionMessage.awaiting_on`) waits on, nested
/// futures included.
fn awaited_by(future: &restate_service_protocol::protocol::pb::Future) -> Awaiting {
    let mut awaiting = Awaiting::default();
    let mut pending = vec![future];
    while let Some(future) = pending.pop() {
        awaiting.completions.extend(&future.waiting_completions);
        awaiting.signals.extend(&future.waiting_signals);
        awaiting.named_signals.extend(future.waiting_named_signals.iter().cloned());
        pending.extend(&future.nested_futures);
    }
    awaiting
}
