//! The node port (5122): gRPC services (behind the configured credentials, see
//! [`crate::fabric_auth`]) plus `GET /health` and `GET /metrics`, one listener.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::NodeState;
use crate::metadata_role::{MetadataRole, RaftHost};
use crate::metrics::NodeMetrics;
use crate::node_ctl::NodeCtlService;
use crate::node_ctl_context::NodeCtlContext;

// Wiring only: each argument is one service (or its state) mounted on the node port.
#[allow(clippy::too_many_arguments)]
pub(crate) fn router(
    ctx: Arc<NodeCtlContext>,
    metadata_role: &MetadataRole,
    raft: Option<&RaftHost>,
    loglets: Option<std::sync::Arc<restate_bifrost::replicated::ReplicatedLogletHost>>,
    local_loglets: std::sync::Arc<restate_bifrost::LocalLogletProvider>,
    state: NodeState,
    metrics: NodeMetrics,
    worker: crate::running_roles::RunningRoles,
    credentials: &crate::fabric_auth::FabricCredentials,
    shutdown: &CancellationToken,
) -> Router {
    let node_name = ctx.config.node_name.clone();
    let grpc = tonic::service::Routes::new(restate_proto::node_ctl::node_ctl_server::NodeCtlServer::new(
        NodeCtlService::new(ctx),
    ));
    let mut grpc = metadata_role.add_services(grpc, &node_name, shutdown);
    if let Some(raft) = raft {
        grpc = grpc.add_service(raft.transport_service(shutdown));
    }
    if let Some(host) = loglets {
        grpc =
            grpc.add_service(restate_bifrost::replicated::LogServerService::new(host, local_loglets, shutdown.clone()));
    }
    grpc = grpc.add_service(
        restate_proto::worker::worker_server::WorkerServer::new(crate::invocations::WorkerService(worker.clone()))
            .max_decoding_message_size(64 << 20),
    );
    let grpc = crate::fabric_auth::require(grpc.into_axum_router(), credentials, metrics.fabric_refused());
    grpc
        // Liveness: the node's servers listen. Provisioning state is `restatectl status`'s business.
        .route("/health", get(|| async { "OK\n" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                let state = state.clone();
                let worker = worker.clone();
                async move {
                    metrics.observe_phase(&state.phase(), state.uptime());
                    if let Some(worker) = worker.worker() {
                        metrics.observe_partitions(&worker.status());
                    }
                    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render())
                }
            }),
        )
}
