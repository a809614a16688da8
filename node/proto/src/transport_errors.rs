//! What a failed gRPC call says about delivery: whether the request certainly never
//! reached a server (so even a non-idempotent request may be sent again, elsewhere).

/// The status's message and every source under it, joined with `: ` (tonic and hyper keep
/// the useful part, such as "Connection refused" or "dns error", in the sources).
pub fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        text = format!("{text}: {err}");
        source = err.source();
    }
    text
}

/// Whether no connection was ever made for this call: the address did not resolve (a
/// stopped container's name vanishes from Docker's DNS), the connect was refused (nothing
/// listens: the process is gone) or failed otherwise. Such a request was never sent.
pub fn never_connected(status: &tonic::Status) -> bool {
    let text = describe(status);
    NEVER_CONNECTED.iter().any(|m| text.contains(m))
}

/// Whether the failure says no process is there, however long it took to say so: the port
/// refused the connection, or the name no longer resolves (a stopped container's name
/// leaves Docker's DNS, a deleted pod's its headless Service). A connect that merely timed
/// out says nothing of the kind (a partitioned or paused peer).
pub fn peer_gone(status: &tonic::Status) -> bool {
    let text = describe(status);
    text.contains("dns error") || text.contains("Connection refused")
}

/// Whether the peer's host answered that nothing listens on the port: its process is gone,
/// and this node can reach that host. Stricter than [`peer_gone`]: a node cut off from
/// the network also sees every other node's name stop resolving, so a vanished name says
/// as much about the asker as about the peer.
pub fn refused(status: &tonic::Status) -> bool {
    describe(status).contains("Connection refused")
}

/// Whether the call got no answer in time (tonic's request timeout, or a deadline): the
/// peer may be paused, partitioned or overloaded. Says nothing of whether it was received.
pub fn timed_out(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::DeadlineExceeded || describe(status).contains("Timeout expired")
}

/// Whether the call failed in the transport (no connection, a broken one, a timeout on
/// the wire) rather than with an answer from the server: a `tonic::transport::Error`
/// somewhere in the status's sources.
pub fn transport_failure(status: &tonic::Status) -> bool {
    std::iter::successors(std::error::Error::source(status), |s| s.source()).any(|s| s.is::<tonic::transport::Error>())
}

/// Fragments of hyper's and tonic's connect-failure messages.
const NEVER_CONNECTED: [&str; 4] = ["tcp connect error", "error trying to connect", "Connection refused", "dns error"];

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_failure_and_a_server_answer_is_not() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
        let mut client = crate::node_ctl::node_ctl_client::NodeCtlClient::new(channel);
        let status = client.get_node_info(crate::node_ctl::GetNodeInfoRequest {}).await.unwrap_err();
        assert!(transport_failure(&status), "{status:?}");
        assert!(refused(&status), "{}", describe(&status));
        assert!(!transport_failure(&tonic::Status::unavailable("transport is a word in this message")));
    }

    #[derive(Debug)]
    struct Cause(&'static str);
    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Cause {}

    fn status_with_cause(cause: &'static str) -> tonic::Status {
        tonic::Status::from_error(Box::new(Cause(cause)))
    }

    #[test]
    fn connect_failures_of_every_kind_were_never_sent() {
        assert!(never_connected(&status_with_cause("dns error: failed to lookup address information")));
        assert!(never_connected(&status_with_cause("tcp connect error: Connection refused (os error 111)")));
        assert!(never_connected(&tonic::Status::unavailable("error trying to connect: timed out")));
        assert!(!never_connected(&status_with_cause("connection reset by peer")));
        assert!(!never_connected(&tonic::Status::unavailable("request timed out")));
        assert!(describe(&status_with_cause("dns error")).contains("dns error"));
        assert!(refused(&status_with_cause("tcp connect error: Connection refused (os error 111)")));
        assert!(!refused(&status_with_cause("dns error: failed to lookup address information")));
        assert!(!refused(&tonic::Status::unavailable("error trying to connect: timed out")));
        assert!(peer_gone(&status_with_cause("dns error: no-such-host: failed to lookup")));
        assert!(peer_gone(&status_with_cause("tcp connect error: Connection refused (os error 111)")));
        assert!(!peer_gone(&status_with_cause("tcp connect error: 10.0.0.1:5122: no answer within 1s")));
        assert!(timed_out(&tonic::Status::cancelled("Timeout expired")));
        assert!(timed_out(&tonic::Status::deadline_exceeded("deadline")));
        assert!(!timed_out(&tonic::Status::unavailable("not the leader")));
    }
}
