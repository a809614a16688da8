use std::sync::Arc;

use restate_proto::metadata::{self as pb, metadata_server_admin_server::MetadataServerAdmin};
use tonic::{Request, Response, Status};

use super::server::ReplicatedMetadataServer;
use super::state::MemberInfo;
use crate::store::MetadataStoreError;

/// gRPC header that carries the leader's address on `UNAVAILABLE` answers.
pub const LEADER_HEADER: &str = restate_proto::leader_hints::METADATA_LEADER_HEADER;
/// gRPC header on `UNAVAILABLE` answers for requests that were certainly not applied, so
/// a client may retry a write elsewhere without risking applying it twice.
pub const NOT_APPLIED_HEADER: &str = "x-restate-not-applied";

/// Status and membership of the replicated metadata store on this node.
pub struct MetadataAdminService {
    server: Arc<ReplicatedMetadataServer>,
    name: String,
}

impl MetadataAdminService {
    pub fn new(
        server: Arc<ReplicatedMetadataServer>,
        node_name: String,
    ) -> pb::metadata_server_admin_server::MetadataServerAdminServer<Self> {
        pb::metadata_server_admin_server::MetadataServerAdminServer::new(MetadataAdminService {
            server,
            name: node_name,
        })
    }
}

pub(crate) fn member_to_wire(m: &MemberInfo) -> pb::Member {
    pb::Member {
        raft_id: m.raft_id,
        node_id: m.node_id,
        name: m.name.clone(),
        address: m.address.clone(),
        voter: m.voter,
    }
}

/// Maps a store error to a gRPC status; `NotLeader` carries the leader's address header.
pub fn status_from_store_error(err: MetadataStoreError) -> Status {
    match err {
        MetadataStoreError::NotLeader { leader } => {
            let mut status = Status::unavailable(MetadataStoreError::NotLeader { leader: leader.clone() }.to_string());
            if let Some(address) = leader.and_then(|l| l.parse().ok()) {
                status.metadata_mut().insert(LEADER_HEADER, address);
            }
            status.metadata_mut().insert(NOT_APPLIED_HEADER, "1".parse().expect("valid header"));
            status
        }
        MetadataStoreError::NotApplied(m) => {
            let mut status = Status::unavailable(m);
            status.metadata_mut().insert(NOT_APPLIED_HEADER, "1".parse().expect("valid header"));
            status
        }
        MetadataStoreError::InvalidRequest(m) => Status::invalid_argument(m),
        MetadataStoreError::Unavailable(m) => Status::unavailable(m),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl MetadataServerAdmin for MetadataAdminService {
    async fn status(&self, _: Request<pb::StatusRequest>) -> Result<Response<pb::ServerStatus>, Status> {
        let members = self.server.members().iter().map(member_to_wire).collect();
        let answer = match self.server.status() {
            Some(s) => pb::ServerStatus {
                state: "member".into(),
                raft_id: self.server.raft_id(),
                is_leader: s.is_leader,
                leader: s.leader,
                leader_address: self.server.leader_address().unwrap_or_default(),
                term: s.term,
                commit: s.commit,
                applied: s.applied,
                last_index: s.last_index,
                snapshot_index: s.snapshot_index,
                log_length: s.log_length,
                members,
                name: self.name.clone(),
            },
            None => pb::ServerStatus {
                state: "not-member".into(),
                raft_id: self.server.raft_id(),
                name: self.name.clone(),
                ..Default::default()
            },
        };
        Ok(Response::new(answer))
    }

    async fn join(&self, request: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let member = request.into_inner().member.ok_or_else(|| Status::invalid_argument("join needs a member"))?;
        if member.raft_id == 0 {
            return Err(Status::invalid_argument("raft id 0 is reserved"));
        }
        let info = MemberInfo {
            raft_id: member.raft_id,
            node_id: member.node_id,
            name: member.name,
            address: member.address,
            voter: false,
        };
        let commit = self.server.join(info).await.map_err(status_from_store_error)?;
        Ok(Response::new(pb::JoinResponse { commit }))
    }

    async fn promote(&self, request: Request<pb::PromoteRequest>) -> Result<Response<pb::MembershipResponse>, Status> {
        self.server.promote(request.into_inner().raft_id).await.map_err(status_from_store_error)?;
        Ok(Response::new(pb::MembershipResponse {
            members: self.server.members().iter().map(member_to_wire).collect(),
        }))
    }

    async fn hand_over_leadership(
        &self,
        request: Request<pb::HandOverLeadershipRequest>,
    ) -> Result<Response<pb::HandOverLeadershipResponse>, Status> {
        let (leader_node_id, handing_over) =
            self.server.hand_over_leadership(request.into_inner().node_id).map_err(status_from_store_error)?;
        Ok(Response::new(pb::HandOverLeadershipResponse { leader_node_id, handing_over }))
    }

    async fn remove(&self, request: Request<pb::RemoveRequest>) -> Result<Response<pb::MembershipResponse>, Status> {
        self.server.remove(request.into_inner().raft_id).await.map_err(status_from_store_error)?;
        Ok(Response::new(pb::MembershipResponse {
            members: self.server.members().iter().map(member_to_wire).collect(),
        }))
    }
}
