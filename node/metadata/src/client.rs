use std::time::Duration;

use async_trait::async_trait;
use restate_proto::channel::NodeChannel as Channel;
use restate_proto::leader_hints::{AddressPreference, AddressQueue};
use restate_proto::metadata::{self as pb, metadata_server_client::MetadataServerClient, write_response::Outcome};
use restate_types::{Backoff, Version};
use tonic::transport::Endpoint;
use tonic::Code;

use crate::store::{validate_key, validate_ops, MetadataStore, MetadataStoreError, VersionedValue, WriteOp};
use crate::wire;

#[derive(Debug, Clone)]
pub struct MetadataClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// How long one call keeps trying the address list before it gives up.
    pub retry_budget: Duration,
}

impl Default for MetadataClientOptions {
    fn default() -> Self {
        MetadataClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retry_budget: Duration::from_secs(10),
        }
    }
}

/// The metadata store as every node (and the operator) reaches it: over gRPC to the
/// `[metadata-client] addresses`, starting each call at the address that answered last and
/// trying the ones that could not be connected to last (`AddressPreference`), following
/// leader hints, with short backoff between passes (a leader election takes about a
/// second), for at most `retry_budget`. When all fail, the error lists every address tried
/// and why.
pub struct MetadataClient {
    /// Configured addresses first; leaders learned from hints are added at the end.
    endpoints: std::sync::Mutex<Vec<(String, Channel)>>,
    preference: AddressPreference,
    options: MetadataClientOptions,
}

/// The longest pause between two passes over the addresses. Short: while a new metadata
/// leader is being elected every pass fails, and a longer pause would delay the first call
/// after the election by up to that much.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// Why one address did not serve a call; `retryable` when another attempt may succeed.
struct AttemptFailure {
    reason: String,
    retryable: bool,
    /// No connection could be made, or no answer came in time (the address goes last for
    /// a while, so the next calls start at a member that answers).
    unreachable: bool,
    /// The leader's address, when the server named it.
    redirect: Option<String>,
}

impl MetadataClient {
    /// Connections are made lazily; an address that does not parse is an error naming it.
    pub fn new(addresses: &[String], options: MetadataClientOptions) -> Result<MetadataClient, MetadataStoreError> {
        if addresses.is_empty() {
            return Err(MetadataStoreError::InvalidRequest(
                "no metadata-client addresses: set `[metadata-client] addresses`".into(),
            ));
        }
        let endpoints = addresses
            .iter()
            .map(|address| Ok((address.clone(), Self::channel(address, &options)?)))
            .collect::<Result<Vec<_>, MetadataStoreError>>()?;
        Ok(MetadataClient {
            endpoints: std::sync::Mutex::new(endpoints),
            preference: AddressPreference::default(),
            options,
        })
    }

    fn channel(address: &str, options: &MetadataClientOptions) -> Result<Channel, MetadataStoreError> {
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| MetadataStoreError::InvalidRequest(format!("metadata-client address '{address}': {e}")))?
            .timeout(options.request_timeout);
        Ok(restate_proto::channel::lazy_channel(endpoint, options.connect_timeout))
    }

    pub fn addresses(&self) -> Vec<String> {
        self.endpoints.lock().expect("not poisoned").iter().map(|(a, _)| a.clone()).collect()
    }

    /// The channel of `address`, adding it (a leader learned from a hint) if unknown;
    /// `None` when a hinted address does not parse.
    fn channel_of(&self, address: &str) -> Option<Channel> {
        let mut endpoints = self.endpoints.lock().expect("not poisoned");
        if let Some((_, channel)) = endpoints.iter().find(|(a, _)| a == address) {
            return Some(channel.clone());
        }
        let channel = Self::channel(address, &self.options).ok()?;
        endpoints.push((address.to_owned(), channel.clone()));
        Some(channel)
    }

    /// Runs `call` against the addresses until one answers or the retry budget is spent.
    async fn with_failover<T, F, Fut>(&self, call: F) -> Result<T, MetadataStoreError>
    where
        F: Fn(MetadataServerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptFailure>>,
    {
        self.with_failover_at(call).await.map(|(_, value)| value)
    }

    /// [`Self::with_failover`], also naming the address that answered.
    async fn with_failover_at<T, F, Fut>(&self, call: F) -> Result<(String, T), MetadataStoreError>
    where
        F: Fn(MetadataServerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptFailure>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.retry_budget;
        let mut backoff = Backoff::new(Duration::from_millis(20), MAX_BACKOFF);
        loop {
            let mut failures = Vec::new();
            let mut queue = AddressQueue::new(self.preference.order(&self.addresses(), std::time::Instant::now()));
            while let Some(address) = queue.next_untried() {
                let Some(channel) = self.channel_of(&address) else { continue };
                match call(MetadataServerClient::new(channel)).await {
                    Ok(value) => {
                        self.preference.answered(&address);
                        return Ok((address, value));
                    }
                    Err(AttemptFailure { reason, retryable: false, unreachable, .. }) => {
                        if unreachable {
                            self.preference.unreachable(&address, std::time::Instant::now());
                        }
                        return Err(MetadataStoreError::Unavailable(format!("{address}: {reason}")));
                    }
                    Err(AttemptFailure { reason, redirect, unreachable, .. }) => {
                        if unreachable {
                            self.preference.unreachable(&address, std::time::Instant::now());
                        }
                        failures.push(format!("{address} ({reason})"));
                        // Follow a leader hint before the remaining addresses.
                        if let Some(leader) = redirect {
                            queue.try_next(leader);
                        }
                    }
                }
            }
            let pause = backoff.next_delay();
            if tokio::time::Instant::now() + pause > deadline {
                return Err(MetadataStoreError::Unavailable(format!(
                    "no metadata server answered within {:?}; tried {}",
                    self.options.retry_budget,
                    failures.join(", ")
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

impl MetadataClient {
    /// Opens the store's change feed (`MetadataServer.Watch`) at whichever address serves
    /// it (the replicated store's leader, found through leader hints), within the retry
    /// budget. Returns that address and the stream.
    pub async fn watch(&self) -> Result<(String, tonic::Streaming<pb::WatchUpdate>), MetadataStoreError> {
        let timeout = self.options.request_timeout;
        let (address, opened) = self
            .with_failover_at(|mut client| async move {
                // The channel's request timeout does not bound a streaming call's start: a
                // paused member would hold it forever.
                match tokio::time::timeout(timeout, client.watch(pb::WatchRequest {})).await {
                    Ok(Ok(response)) => Ok(Ok(response.into_inner())),
                    Ok(Err(status)) => classify(status).map(Err),
                    Err(_) => {
                        classify(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}"))).map(Err)
                    }
                }
            })
            .await?;
        Ok((address, opened?))
    }

    /// Puts `address` last for the next calls, as if it had not answered: a caller saw it
    /// go silent (a change feed that stopped sending).
    pub fn penalize(&self, address: &str) {
        self.preference.unreachable(address, std::time::Instant::now());
    }
}

/// Whether the request certainly never took effect: the server said so, or no
/// connection was ever made. Only then may a write be sent again.
fn certainly_not_applied(status: &tonic::Status) -> bool {
    if status.metadata().get(crate::replicated::NOT_APPLIED_HEADER).is_some() || status.code() == Code::Unimplemented {
        return true;
    }
    restate_proto::transport_errors::never_connected(status)
}

/// Maps a gRPC status of one attempt: transport-level trouble and servers without the
/// metadata-server role are worth trying elsewhere; bad requests are not. A write is
/// retried only when it certainly did not apply; otherwise its outcome is unknown and
/// the caller is told so (retrying could apply it twice).
fn classify_write(status: tonic::Status) -> Result<MetadataStoreError, AttemptFailure> {
    if certainly_not_applied(&status) {
        return classify(status);
    }
    match status.code() {
        Code::InvalidArgument => Ok(MetadataStoreError::InvalidRequest(status.message().to_owned())),
        // Not sent again (it could apply twice), and not an answer: a member that let the
        // write time out goes last for the next calls.
        _ => Err(AttemptFailure {
            reason: format!(
                "the write's outcome is unknown (it may or may not have applied): {}",
                restate_proto::transport_errors::describe(&status)
            ),
            retryable: false,
            unreachable: restate_proto::transport_errors::timed_out(&status),
            redirect: None,
        }),
    }
}

fn classify(status: tonic::Status) -> Result<MetadataStoreError, AttemptFailure> {
    match status.code() {
        Code::InvalidArgument => Ok(MetadataStoreError::InvalidRequest(status.message().to_owned())),
        Code::Unimplemented => Err(AttemptFailure {
            reason: "not a metadata server (the node lacks the metadata-server role)".into(),
            retryable: true,
            unreachable: false,
            redirect: None,
        }),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => Err(AttemptFailure {
            reason: restate_proto::transport_errors::describe(&status),
            retryable: true,
            unreachable: restate_proto::transport_errors::never_connected(&status)
                || restate_proto::transport_errors::timed_out(&status),
            redirect: status
                .metadata()
                .get(crate::replicated::LEADER_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
        _ => Err(AttemptFailure {
            reason: format!("{:?}: {}", status.code(), status.message()),
            retryable: false,
            unreachable: false,
            redirect: None,
        }),
    }
}

#[async_trait]
impl MetadataStore for MetadataClient {
    async fn get(&self, key: &str) -> Result<Option<VersionedValue>, MetadataStoreError> {
        validate_key(key)?;
        crate::metrics::count_read(key, crate::ReadKind::Linearizable);
        let answer = self
            .with_failover(|mut client| async move {
                match client.get(pb::GetRequest { key: key.to_owned() }).await {
                    Ok(response) => Ok(Ok(response.into_inner().value.map(wire::value_from_wire))),
                    Err(status) => classify(status).map(Err),
                }
            })
            .await?;
        answer
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Version>, MetadataStoreError> {
        validate_ops(&ops)?;
        let request = pb::WriteRequest { ops: ops.into_iter().map(wire::op_to_wire).collect() };
        let answer = self
            .with_failover(|mut client| {
                let request = request.clone();
                async move {
                    match client.write(request).await {
                        Ok(response) => Ok(match response.into_inner().outcome {
                            Some(Outcome::Written(w)) => Ok(w.versions.into_iter().map(Version).collect()),
                            Some(Outcome::PreconditionFailed(f)) => match wire::precondition_from_wire(f.expected) {
                                Ok(expected) => Err(MetadataStoreError::PreconditionFailed {
                                    key: f.key,
                                    expected,
                                    current: wire::version_from_wire(f.current_version),
                                }),
                                Err(e) => Err(e),
                            },
                            None => Err(MetadataStoreError::Storage("metadata server sent an empty answer".into())),
                        }),
                        Err(status) => classify_write(status).map(Err),
                    }
                }
            })
            .await?;
        answer
    }
}
