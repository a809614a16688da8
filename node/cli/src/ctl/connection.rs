use std::time::Duration;

use crate::error_chain as chain;
use restate_proto::channel::NodeChannel;
use restate_proto::node_ctl::node_ctl_client::NodeCtlClient;
use tonic::transport::Endpoint;

/// A failed command: the message is printed as `error: ...`, the process exits 1.
#[derive(Debug)]
pub struct CtlError(pub String);

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CtlError {
    /// A gRPC error from the node at `address`, in words.
    pub fn from_status(address: &str, status: tonic::Status) -> CtlError {
        match status.code() {
            tonic::Code::Unavailable
                if restate_proto::transport_errors::transport_failure(&status) || status.message().is_empty() =>
            {
                CtlError(format!("cannot reach node at {address}: {}", chain(&status)))
            }
            tonic::Code::DeadlineExceeded => CtlError(format!("node at {address} did not answer in time")),
            tonic::Code::Unimplemented => CtlError(format!(
                "node at {address} does not support this request (is it a restate-server of this version?)"
            )),
            _ => CtlError(status.message().to_owned()),
        }
    }
}

/// Connects to a node's node-control service, failing with one line naming the address.
pub async fn connect(address: &str) -> Result<NodeCtlClient<NodeChannel>, CtlError> {
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| {
            CtlError(format!("invalid --address '{address}': {e}; expected a URL like http://127.0.0.1:5122"))
        })?
        .timeout(Duration::from_secs(60));
    let channel = restate_proto::channel::connect(endpoint, Duration::from_secs(5))
        .await
        .map_err(|e| CtlError(format!("cannot reach node at {address}: {}", chain(&e))))?;
    Ok(NodeCtlClient::new(channel))
}
