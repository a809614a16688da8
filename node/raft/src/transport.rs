use raft::eraftpb::Message;

/// Carries raft messages between engines.
///
/// Contract: `send` never blocks; delivery is best effort (raft retries). Messages to one
/// peer keep their order. A transport that knows a send failed calls
/// `RaftEngine::report_unreachable` so raft slows down probing that peer, and
/// `RaftEngine::report_gone` when it learns the peer's process is gone.
pub trait RaftTransport: Send + Sync + 'static {
    fn send(&self, messages: Vec<(u64, Message)>);

    /// Finds out, without blocking, whether `peer` (a leader gone silent) is still there,
    /// and calls `RaftEngine::report_gone` if it certainly is not (its host answers that
    /// nothing listens at its address). A silent or slow peer is not gone.
    /// By default a transport cannot tell, and raft's election timeout decides.
    fn probe(&self, _peer: u64) {}
}
