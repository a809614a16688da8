use std::sync::Arc;

use restate_proto::metadata::{self as pb, metadata_server_server::MetadataServer, write_response::Outcome};
use tonic::{Request, Response, Status};

use crate::store::{MetadataStore, MetadataStoreError};
use crate::wire;

/// Serves a metadata store over gRPC on the node port (nodes with the metadata-server role).
///
/// Precondition failures are answers (`WriteResponse.precondition_failed`), not gRPC
/// errors; `UNAVAILABLE` means the caller may try another address.
pub struct MetadataServerService {
    store: Arc<dyn MetadataStore>,
}

impl MetadataServerService {
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        MetadataServerService { store }
    }

    pub fn into_server(self) -> restate_proto::metadata::metadata_server_server::MetadataServerServer<Self> {
        restate_proto::metadata::metadata_server_server::MetadataServerServer::new(self)
    }
}

pub(crate) fn status_from_error(err: MetadataStoreError) -> Status {
    crate::replicated::status_from_store_error(err)
}

#[tonic::async_trait]
impl MetadataServer for MetadataServerService {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let key = request.into_inner().key;
        let value = self.store.get(&key).await.map_err(status_from_error)?;
        Ok(Response::new(pb::GetResponse { value: value.map(wire::value_to_wire) }))
    }

    async fn write(&self, request: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let ops = request
            .into_inner()
            .ops
            .into_iter()
            .map(wire::op_from_wire)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status_from_error)?;
        let outcome = match self.store.write(ops).await {
            Ok(versions) => Outcome::Written(pb::Written { versions: versions.into_iter().map(|v| v.0).collect() }),
            Err(MetadataStoreError::PreconditionFailed { key, expected, current }) => {
                Outcome::PreconditionFailed(pb::PreconditionFailed {
                    key,
                    expected: Some(wire::precondition_to_wire(expected)),
                    current_version: current.map_or(0, |v| v.0),
                })
            }
            Err(other) => return Err(status_from_error(other)),
        };
        Ok(Response::new(pb::WriteResponse { outcome: Some(outcome) }))
    }
}
