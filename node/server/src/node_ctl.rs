//! The node-control gRPC service: what `restatectl` and the operator ask a node.

use std::sync::Arc;

use bytes::Bytes;
use restate_metadata::objects::{self, ClusterConfiguration, MetadataObject, NodesConfiguration};
use restate_metadata::{typed, MetadataStoreError, Precondition};
use restate_proto::node_ctl::{self as pb, node_ctl_server::NodeCtl};
use restate_types::{LogProviderKind, ReplicationProperty, Version};
use tonic::{Request, Response, Status};

use crate::cluster_view::{self, configuration_to_wire};
use crate::lifecycle::NodePhase;
use crate::node_ctl_context::NodeCtlContext;
use crate::provisioning::{ProvisionOutcome, ProvisionParams};

pub(crate) struct NodeCtlService {
    ctx: Arc<NodeCtlContext>,
}

impl NodeCtlService {
    pub fn new(ctx: Arc<NodeCtlContext>) -> Self {
        NodeCtlService { ctx }
    }
}

fn metadata_status(err: MetadataStoreError) -> Status {
    match err {
        MetadataStoreError::PreconditionFailed { .. } => Status::failed_precondition(err.to_string()),
        MetadataStoreError::InvalidRequest(m) => Status::invalid_argument(m),
        MetadataStoreError::Unavailable(m) => Status::unavailable(format!("metadata store unavailable: {m}")),
        MetadataStoreError::NotLeader { .. } | MetadataStoreError::NotApplied(_) => {
            Status::unavailable(err.to_string())
        }
        MetadataStoreError::Storage(m) => Status::internal(m),
    }
}

fn not_provisioned() -> Status {
    Status::failed_precondition("the cluster is not provisioned yet; run `restatectl provision --address <node> --yes`")
}

fn parse_provider(flag: &str, value: &str) -> Result<LogProviderKind, Status> {
    value.parse().map_err(|e: restate_types::ParseError| Status::invalid_argument(format!("{flag}: {e}")))
}

#[tonic::async_trait]
impl NodeCtl for NodeCtlService {
    async fn get_node_info(&self, _: Request<pb::GetNodeInfoRequest>) -> Result<Response<pb::NodeInfo>, Status> {
        self.ctx.metrics.request("get_node_info");
        Ok(Response::new(self.ctx.node_info()))
    }

    async fn get_cluster_status(
        &self,
        _: Request<pb::GetClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        self.ctx.metrics.request("get_cluster_status");
        match cluster_view::cluster_status(&self.ctx).await {
            Ok(status) => Ok(Response::new(status)),
            // Without metadata the node still tells what it knows about itself.
            Err(MetadataStoreError::Unavailable(reason)) => Ok(Response::new(pb::ClusterStatus {
                cluster_name: self.ctx.config.cluster_name.clone(),
                provisioned: false,
                answered_by: Some(pb::NodeInfo {
                    state_reason: format!("metadata store unavailable: {reason}"),
                    ..self.ctx.node_info()
                }),
                ..Default::default()
            })),
            Err(other) => Err(metadata_status(other)),
        }
    }

    async fn provision(
        &self,
        request: Request<pb::ProvisionRequest>,
    ) -> Result<Response<pb::ProvisionResponse>, Status> {
        self.ctx.metrics.request("provision");
        let request = request.into_inner();
        let defaults = &self.ctx.membership.default_params;
        let log_provider = match request.log_provider.as_deref() {
            Some(p) => parse_provider("--log-provider", p)?,
            None => defaults.log_provider,
        };
        let requested = requested_replication(request.replication, request.replication_property.as_deref())?;
        let replication = match (requested, log_provider) {
            (Some(r), _) => r,
            // A local loglet has one copy whatever default-replication says.
            (None, LogProviderKind::Local) => ReplicationProperty::nodes(1),
            (None, LogProviderKind::Replicated) => defaults.replication,
        };
        let params = ProvisionParams {
            num_partitions: request.num_partitions.unwrap_or(defaults.num_partitions),
            replication,
            log_provider,
        };
        params.validate().map_err(Status::invalid_argument)?;
        let outcome = self.ctx.membership.provision(&params).await.map_err(|e| match e {
            crate::provisioning::ProvisionError::Invalid(m) => Status::invalid_argument(m),
            crate::provisioning::ProvisionError::OtherCluster { .. } => Status::failed_precondition(e.to_string()),
            crate::provisioning::ProvisionError::Metadata(m) => metadata_status(m),
        })?;
        let (newly_provisioned, configuration) = match outcome {
            ProvisionOutcome::Provisioned { configuration, .. } => (true, configuration),
            ProvisionOutcome::AlreadyProvisioned { configuration } => (false, configuration),
        };
        let version = typed::get::<ClusterConfiguration>(self.ctx.metadata.as_ref())
            .await
            .map_err(metadata_status)?
            .map_or(0, |(_, v)| v.0);
        Ok(Response::new(pb::ProvisionResponse {
            newly_provisioned,
            cluster_name: configuration.cluster_name.clone(),
            cluster_fingerprint: configuration.cluster_fingerprint.clone(),
            configuration: Some(configuration_to_wire(&configuration, version)),
        }))
    }

    async fn get_cluster_configuration(
        &self,
        _: Request<pb::GetClusterConfigurationRequest>,
    ) -> Result<Response<pb::ClusterConfiguration>, Status> {
        self.ctx.metrics.request("get_cluster_configuration");
        let (configuration, version) = typed::get::<ClusterConfiguration>(self.ctx.metadata.as_ref())
            .await
            .map_err(metadata_status)?
            .ok_or_else(not_provisioned)?;
        Ok(Response::new(configuration_to_wire(&configuration, version.0)))
    }

    async fn set_cluster_configuration(
        &self,
        request: Request<pb::SetClusterConfigurationRequest>,
    ) -> Result<Response<pb::ClusterConfiguration>, Status> {
        self.ctx.metrics.request("set_cluster_configuration");
        let request = request.into_inner();
        let provider = request.log_provider.as_deref().map(|p| parse_provider("--log-provider", p)).transpose()?;
        let requested = requested_replication(request.replication, request.replication_property.as_deref())?;
        if provider.is_none() && requested.is_none() {
            return Err(Status::invalid_argument("nothing to change: pass --log-provider and/or --log-replication"));
        }
        let metadata = self.ctx.metadata.as_ref();
        for _ in 0..16 {
            let (current, version) = typed::get::<ClusterConfiguration>(metadata)
                .await
                .map_err(metadata_status)?
                .ok_or_else(not_provisioned)?;
            let nodes = self.nodes_configuration().await?;
            let next = ClusterConfiguration {
                log_provider: provider.unwrap_or(current.log_provider),
                replication: requested.unwrap_or(current.replication),
                ..current.clone()
            };
            check_log_settings(&next, &nodes)?;
            if next == current {
                return Ok(Response::new(configuration_to_wire(&current, version.0)));
            }
            match typed::put(metadata, &next, Precondition::MatchesVersion(version)).await {
                Ok(new_version) => {
                    // Logs follow: seal each tail segment, continue on the new provider.
                    let NodePhase::Running { node_id } = self.ctx.state.phase() else {
                        return Err(Status::unavailable("this node is not running yet"));
                    };
                    let nodeset = restate_cluster::placement::reconfiguration_nodeset(&next, &nodes, node_id.id);
                    crate::logs_ctl::reconfigure(
                        crate::logs_ctl::bifrost(&self.ctx.roles)?,
                        next.log_provider,
                        next.replication.node,
                        nodeset,
                    )
                    .await?;
                    tracing::info!(log_provider = %next.log_provider, replication = %next.replication, "cluster configuration changed");
                    return Ok(Response::new(configuration_to_wire(&next, new_version.0)));
                }
                Err(MetadataStoreError::PreconditionFailed { .. }) => continue,
                Err(other) => return Err(metadata_status(other)),
            }
        }
        Err(Status::aborted("the cluster configuration kept changing under this request; try again"))
    }

    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        self.ctx.metrics.request("get_metadata");
        let key = request.into_inner().key;
        let value = self.ctx.metadata.get(&key).await.map_err(metadata_status)?;
        Ok(Response::new(match value {
            // Deployments' additional headers (often credentials) are answered masked.
            Some(v) if key == objects::Schema::KEY => {
                let schema: objects::Schema = serde_json::from_slice(&v.value)
                    .map_err(|e| Status::internal(format!("the stored schema does not decode: {e}")))?;
                let masked = serde_json::to_vec(&schema.masked()).expect("a schema serializes");
                pb::GetMetadataResponse { found: true, version: v.version.0, value: masked }
            }
            Some(v) => pb::GetMetadataResponse { found: true, version: v.version.0, value: v.value.to_vec() },
            None => pb::GetMetadataResponse { found: false, version: 0, value: Vec::new() },
        }))
    }

    async fn put_metadata(
        &self,
        request: Request<pb::PutMetadataRequest>,
    ) -> Result<Response<pb::PutMetadataResponse>, Status> {
        self.ctx.metrics.request("put_metadata");
        let mut request = request.into_inner();
        objects::check_well_known(&request.key, &request.value).map_err(Status::invalid_argument)?;
        if request.key == objects::Schema::KEY {
            // A schema read through `metadata get` carries masked header values: keep the
            // stored ones for those.
            let mut schema: objects::Schema =
                serde_json::from_slice(&request.value).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let current = self.ctx.metadata.get(objects::Schema::KEY).await.map_err(metadata_status)?;
            let current: Option<objects::Schema> = current.and_then(|v| serde_json::from_slice(&v.value).ok());
            schema.unmask_from(current.as_ref()).map_err(Status::invalid_argument)?;
            request.value = serde_json::to_vec(&schema).expect("a schema serializes");
        }
        let precondition = match request.expected_version {
            None => Precondition::None,
            Some(0) => Precondition::DoesNotExist,
            Some(v) => Precondition::MatchesVersion(Version(v)),
        };
        let version = self
            .ctx
            .metadata
            .put(&request.key, Bytes::from(request.value), precondition)
            .await
            .map_err(metadata_status)?;
        Ok(Response::new(pb::PutMetadataResponse { version: version.0 }))
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        self.ctx.metrics.request("query");
        let sql = request.into_inner().query;
        let error = |e: restate_query::QueryError| match e {
            restate_query::QueryError::Invalid(m) | restate_query::QueryError::Limit(m) => Status::invalid_argument(m),
            restate_query::QueryError::Unavailable(m) => Status::unavailable(m),
            restate_query::QueryError::Internal(m) => Status::internal(m),
        };
        let result = self.ctx.queries.execute(&sql).await.map_err(error)?;
        let rows = restate_query::json::rows(&result).map_err(error)?;
        Ok(Response::new(pb::QueryResponse {
            columns: result.schema.fields().iter().map(|f| f.name().clone()).collect(),
            rows_json: rows.iter().map(|r| serde_json::to_vec(r).expect("JSON values serialize")).collect(),
        }))
    }

    async fn join_metadata_cluster(
        &self,
        _: Request<pb::JoinMetadataClusterRequest>,
    ) -> Result<Response<pb::JoinMetadataClusterResponse>, Status> {
        self.ctx.metrics.request("join_metadata_cluster");
        self.join_metadata().await?;
        Ok(Response::new(pb::JoinMetadataClusterResponse {}))
    }

    async fn list_logs(&self, _: Request<pb::ListLogsRequest>) -> Result<Response<pb::ListLogsResponse>, Status> {
        self.ctx.metrics.request("list_logs");
        let nodes = self.nodes_configuration().await?;
        Ok(Response::new(crate::logs_ctl::list(crate::logs_ctl::bifrost(&self.ctx.roles)?, &nodes).await?))
    }

    async fn list_partition_processors(
        &self,
        _: Request<pb::ListPartitionProcessorsRequest>,
    ) -> Result<Response<pb::ListPartitionProcessorsResponse>, Status> {
        self.ctx.metrics.request("list_partition_processors");
        let processors = self
            .ctx
            .roles
            .worker()
            .map(|worker| worker.status())
            .unwrap_or_default()
            .into_iter()
            .map(|p| pb::PartitionProcessorStatus {
                partition_id: p.partition.0 as u32,
                mode: if p.leading { "leader" } else { "follower" }.to_owned(),
                epoch: p.epoch,
                applied_lsn: p.applied_lsn,
                archived_lsn: p.archived_lsn,
                blocked_lsn: p.blocked.as_ref().map_or(0, |(lsn, _)| *lsn),
                blocked_reason: p.blocked.map(|(_, reason)| reason).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListPartitionProcessorsResponse { processors }))
    }

    async fn create_snapshots(
        &self,
        request: Request<pb::CreateSnapshotsRequest>,
    ) -> Result<Response<pb::CreateSnapshotsResponse>, Status> {
        self.ctx.metrics.request("create_snapshots");
        let request = request.into_inner();
        let mut partitions = Vec::new();
        for id in request.partition_ids {
            let id = u16::try_from(id)
                .map_err(|_| Status::invalid_argument(format!("partition id {id} is out of range (0..65535)")))?;
            partitions.push(restate_types::PartitionId(id));
        }
        let bifrost = crate::logs_ctl::bifrost(&self.ctx.roles)?;
        let snapshots =
            crate::snapshots_ctl::create_snapshots(&self.ctx.routing, bifrost, partitions, request.trim_log)
                .await
                .map_err(Status::unavailable)?;
        Ok(Response::new(pb::CreateSnapshotsResponse { snapshots }))
    }

    async fn drain_node(
        &self,
        request: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        self.ctx.metrics.request("drain_node");
        Ok(Response::new(crate::drain_ctl::drain(&self.ctx, &request.into_inner().node).await?))
    }

    async fn prepare_restart(
        &self,
        request: Request<pb::PrepareRestartRequest>,
    ) -> Result<Response<pb::PrepareRestartResponse>, Status> {
        self.ctx.metrics.request("prepare_restart");
        Ok(Response::new(crate::drain_ctl::prepare_restart(&self.ctx, &request.into_inner().node).await?))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        self.ctx.metrics.request("remove_node");
        let request = request.into_inner();
        Ok(Response::new(crate::drain_ctl::remove(&self.ctx, &request.node, request.force).await?))
    }

    async fn skip_record(
        &self,
        request: Request<pb::SkipRecordRequest>,
    ) -> Result<Response<pb::SkipRecordResponse>, Status> {
        self.ctx.metrics.request("skip_record");
        let request = request.into_inner();
        let partition = u16::try_from(request.partition_id)
            .map_err(|_| Status::invalid_argument(format!("partition {} does not exist", request.partition_id)))?;
        if request.lsn == 0 {
            return Err(Status::invalid_argument(
                "LSN 0 holds no record; give the LSN `partitions list` shows as blocked",
            ));
        }
        let metadata = self.ctx.metadata.as_ref();
        let partitions = typed::get::<restate_metadata::objects::PartitionTable>(metadata)
            .await
            .map_err(|e| Status::unavailable(format!("reading the partition table: {e}")))?
            .ok_or_else(|| Status::failed_precondition("the cluster is not provisioned"))?;
        if !partitions.0.partitions.contains_key(&restate_types::PartitionId(partition)) {
            return Err(Status::invalid_argument(format!("partition {partition} does not exist")));
        }
        let mut newly = false;
        typed::read_modify_write::<restate_metadata::objects::PartitionSkips, String, _>(metadata, |current| {
            let mut skips = current.unwrap_or_default();
            newly = skips.add(partition, request.lsn);
            Ok(newly.then_some(skips))
        })
        .await
        .map_err(|e| Status::unavailable(format!("writing the skipped records: {e}")))?
        .map_err(Status::internal)?;
        if newly {
            tracing::warn!(partition, lsn = request.lsn, "an operator asked to skip the log record at LSN {}: every processor of partition {partition} passes over it, its content is lost", request.lsn);
        }
        Ok(Response::new(pb::SkipRecordResponse { newly_skipped: newly }))
    }

    async fn describe_log(
        &self,
        request: Request<pb::DescribeLogRequest>,
    ) -> Result<Response<pb::LogDescription>, Status> {
        self.ctx.metrics.request("describe_log");
        let nodes = self.nodes_configuration().await?;
        Ok(Response::new(
            crate::logs_ctl::describe(crate::logs_ctl::bifrost(&self.ctx.roles)?, request.into_inner().log_id, &nodes)
                .await?,
        ))
    }

    async fn trim_log(&self, request: Request<pb::TrimLogRequest>) -> Result<Response<pb::TrimLogResponse>, Status> {
        self.ctx.metrics.request("trim_log");
        let request = request.into_inner();
        let bifrost = crate::logs_ctl::bifrost(&self.ctx.roles)?;
        Ok(Response::new(crate::logs_ctl::trim(bifrost, request.log_id, request.trim_point).await?))
    }

    async fn append_log(
        &self,
        request: Request<pb::AppendLogRequest>,
    ) -> Result<Response<pb::AppendLogResponse>, Status> {
        self.ctx.metrics.request("append_log");
        let request = request.into_inner();
        let bifrost = crate::logs_ctl::bifrost(&self.ctx.roles)?;
        Ok(Response::new(crate::logs_ctl::append(bifrost, request.log_id, request.records).await?))
    }

    async fn read_log(&self, request: Request<pb::ReadLogRequest>) -> Result<Response<pb::ReadLogResponse>, Status> {
        self.ctx.metrics.request("read_log");
        let r = request.into_inner();
        let bifrost = crate::logs_ctl::bifrost(&self.ctx.roles)?;
        Ok(Response::new(crate::logs_ctl::read(bifrost, r.log_id, r.from_lsn, r.max_records).await?))
    }
}

impl NodeCtlService {
    /// The nodes as the metadata store has them now (empty before provisioning).
    async fn nodes_configuration(&self) -> Result<NodesConfiguration, Status> {
        Ok(typed::get::<NodesConfiguration>(self.ctx.metadata.as_ref())
            .await
            .map_err(metadata_status)?
            .map(|(nodes, _)| nodes)
            .unwrap_or_default())
    }

    async fn join_metadata(&self) -> Result<(), Status> {
        let role = self.ctx.membership.replicated.clone().ok_or_else(|| {
            Status::failed_precondition(
                "this node runs no replicated metadata server: it needs the metadata-server role and `[metadata-server] type = \"replicated\"`",
            )
        })?;
        let NodePhase::Running { node_id } = self.ctx.state.phase() else {
            return Err(Status::failed_precondition(format!(
                "this node is not part of the cluster yet ({})",
                self.ctx.state.phase().reason()
            )));
        };
        let me = role.server.member_info(node_id.id.0, &self.ctx.config.node_name, &self.ctx.advertised_address);
        crate::metadata_join::join(&role, me, &self.ctx.metadata_client_addresses).await.map_err(Status::unavailable)
    }
}

/// The replication a request asks for: the property text when given (Restate's form), else
/// the plain count; `None` when neither is set.
fn requested_replication(count: Option<u32>, property: Option<&str>) -> Result<Option<ReplicationProperty>, Status> {
    match (property, count) {
        (Some(text), _) => text
            .parse::<ReplicationProperty>()
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("--log-replication: {e}"))),
        (None, Some(0)) => Err(Status::invalid_argument("--log-replication 0 is invalid: use 1 or more")),
        (None, Some(n)) => Ok(Some(ReplicationProperty::nodes(n))),
        (None, None) => Ok(None),
    }
}

/// Log settings must be satisfiable by the registered log-servers and their locations; the
/// error shows the arithmetic.
pub(crate) fn check_log_settings(next: &ClusterConfiguration, nodes: &NodesConfiguration) -> Result<(), Status> {
    if next.replication.node == 0 {
        return Err(Status::invalid_argument("--log-replication 0 is invalid: use 1 or more"));
    }
    match next.log_provider {
        LogProviderKind::Local if next.replication.node > 1 => Err(Status::invalid_argument(format!(
            "--log-replication {} with log provider local: a local loglet keeps exactly one copy; use --log-provider replicated",
            next.replication
        ))),
        LogProviderKind::Replicated => {
            let log_servers: Vec<_> = nodes.log_servers().map(|n| n.id).collect();
            restate_cluster::placement::choose_nodeset(&log_servers, nodes, &Default::default(), next.replication)
                .map(drop)
                .map_err(Status::failed_precondition)
        }
        LogProviderKind::Local => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(provider: LogProviderKind, replication: &str) -> ClusterConfiguration {
        ClusterConfiguration {
            cluster_name: "c".into(),
            cluster_fingerprint: "f".into(),
            num_partitions: 1,
            replication: replication.parse().unwrap(),
            log_provider: provider,
            provisioned_at_unix_ms: 0,
        }
    }

    /// `n` log-servers, node i in zone `zones[i]` of region "r" (fewer zones: no location).
    fn log_servers(n: usize, zones: &[&str]) -> NodesConfiguration {
        let mut nodes = NodesConfiguration::default();
        for i in 0..n {
            let location = zones.get(i).map_or(Default::default(), |z| format!("r.{z}").parse().unwrap());
            let roles = restate_types::RoleSet::all();
            nodes.register(&format!("n{i}"), "http://x:1", &roles, "s", false, &location);
        }
        nodes
    }

    #[test]
    fn replication_beyond_the_log_servers_is_refused_with_the_arithmetic() {
        let replicated = |r| config(LogProviderKind::Replicated, r);
        let err = check_log_settings(&replicated("3"), &log_servers(3, &[])).unwrap_err();
        assert_eq!(err.message(), "replication 3 needs 5 log-servers (2 x 3 - 1) but 3 are available");
        assert!(check_log_settings(&replicated("1"), &log_servers(1, &[])).is_ok());
        assert!(check_log_settings(&replicated("2"), &log_servers(3, &[])).is_ok());
        assert!(check_log_settings(&config(LogProviderKind::Local, "2"), &log_servers(3, &[])).is_err());
        // Two zones cannot hold {zone: 2, node: 3}; three can.
        let zoned = replicated("{zone: 2, node: 3}");
        let err = check_log_settings(&zoned, &log_servers(5, &["a", "a", "a", "b", "b"])).unwrap_err();
        assert!(err.message().contains("at most 2 in any zone"), "{}", err.message());
        assert!(check_log_settings(&zoned, &log_servers(5, &["a", "a", "b", "b", "c"])).is_ok());
    }

    #[test]
    fn a_requested_property_wins_over_the_count() {
        assert_eq!(requested_replication(Some(2), None).unwrap(), Some(ReplicationProperty::nodes(2)));
        let zoned = requested_replication(Some(3), Some("{zone: 2, node: 3}")).unwrap().unwrap();
        assert_eq!(zoned.to_string(), "{zone: 2, node: 3}");
        assert_eq!(requested_replication(None, None).unwrap(), None);
        let bad = requested_replication(None, Some("{rack: 2}")).unwrap_err();
        assert!(bad.message().contains("--log-replication") && bad.message().contains("unknown scope 'rack'"));
        assert!(requested_replication(Some(0), None).is_err());
    }
}
