//! `restatectl`: administers a Restate cluster through any of its nodes.

use std::process::ExitCode;

use clap::{Args as ClapArgs, Parser, Subcommand};
use restate_cli::ctl::{self, CtlError, Globals, ProvisionArgs};
use restate_types::ReplicationProperty;

/// Administers a Restate cluster through the node-control service of any node.
///
/// Commands that change the cluster ask for confirmation only when stdin is a terminal;
/// --yes skips the question. Read commands take --json for scripts.
#[derive(Debug, Parser)]
#[command(name = "restatectl", version, about, long_about)]
struct Cli {
    /// Node to talk to (its advertised address).
    #[arg(
        long,
        global = true,
        env = "RESTATECTL_ADDRESS",
        default_value = "http://127.0.0.1:5122",
        value_name = "URL"
    )]
    address: String,
    /// Print JSON (snake_case keys) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    /// File holding the cluster secret, when the nodes require one (the nodes'
    /// [networking] cluster-secret-file; same variable).
    #[arg(long, global = true, env = "RESTATE_NETWORKING__CLUSTER_SECRET_FILE", value_name = "PATH")]
    cluster_secret_file: Option<std::path::PathBuf>,
    /// CA certificate(s) (PEM) the nodes' certificates must chain to, when the nodes use
    /// mutual TLS (the nodes' [networking] tls-ca-file; same variable). Every connection is
    /// then TLS; an https:// --address without it is an error, never plaintext.
    #[arg(long, global = true, env = "RESTATE_NETWORKING__TLS_CA_FILE", value_name = "PATH")]
    tls_ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) signed by the cluster's CA (the nodes' tls-cert-file works).
    #[arg(
        long,
        global = true,
        env = "RESTATE_NETWORKING__TLS_CERT_FILE",
        value_name = "PATH",
        requires = "tls_key_file"
    )]
    tls_cert_file: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "RESTATE_NETWORKING__TLS_KEY_FILE",
        value_name = "PATH",
        requires = "tls_cert_file"
    )]
    tls_key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster name, fingerprint, provisioning state and every node with its liveness.
    Status,
    /// Runs one SQL statement over the cluster's tables (sys_invocation, state,
    /// sys_journal, ...; docs/querying.md) through the node at --address.
    Sql {
        /// The query (a single SELECT).
        query: String,
    },
    /// Provisions the cluster once: writes the initial metadata through the node at
    /// --address. A cluster that is already provisioned is left unchanged (exit 0).
    Provision(ProvisionCmd),
    /// Cluster-wide configuration (log provider, replication).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Nodes of the cluster.
    #[command(subcommand)]
    Nodes(NodesCmd),
    /// Raw access to the versioned metadata store (for administration and debugging).
    #[command(subcommand)]
    Metadata(MetadataCmd),
    /// Members of the replicated metadata store.
    #[command(subcommand)]
    MetadataServer(MetadataServerCmd),
    /// Virtual logs (one per partition): segments, trim points, tails.
    #[command(subcommand)]
    Logs(LogsCmd),
    /// Partition processors on the worker nodes.
    #[command(subcommand)]
    Partitions(PartitionsCmd),
    /// Partition snapshots in the repository of [worker.snapshots] destination.
    #[command(subcommand, alias = "snapshot")]
    Snapshots(SnapshotsCmd),
}

#[derive(Debug, Subcommand)]
enum SnapshotsCmd {
    /// Exports each partition's state through its leader and publishes it as the
    /// partition's latest snapshot; prints each snapshot's id and LSN (the partition's
    /// new archived LSN). Every partition unless some are named.
    Create {
        /// Then trim each partition's log up to its snapshot's LSN, but never past what
        /// a live replica has applied; prints the trim point reached.
        #[arg(long)]
        trim_log: bool,
        /// Partition ids (default: all).
        #[arg(value_name = "PARTITION")]
        partitions: Vec<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum PartitionsCmd {
    /// Every partition processor of every alive worker: node, mode (leader/follower),
    /// leader epoch, applied LSN, lag behind the partition's most advanced processor, and
    /// whether it is blocked at a record it cannot apply.
    List,
    /// Skips the record at LSN of PARTITION that its processors cannot apply (see
    /// `partitions list`): every processor passes over it and the partition goes on. The
    /// record's content is lost; the node logs the decision.
    SkipRecord {
        partition: u32,
        lsn: u64,
        /// Skip even when no processor is blocked at that LSN.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LogsCmd {
    /// Every log with its tail segment (from LSN, kind, loglet, replication, nodeset),
    /// trim point and tail.
    List,
    /// One log with all its segments.
    Describe {
        #[arg(long, value_name = "L")]
        log_id: u32,
    },
    /// Trims a log up to an LSN (inclusive) and reports the trim point actually reached.
    /// Trimming beyond the last written record is refused.
    Trim {
        #[arg(long, value_name = "L")]
        log_id: u32,
        #[arg(long, value_name = "LSN")]
        trim_point: u64,
    },
}

#[derive(Debug, Subcommand)]
enum MetadataServerCmd {
    /// Every metadata-server node: member state, leader, members, applied and committed
    /// index, term, log length and snapshot index.
    ListServers,
    /// Makes a node a voting member (it joins as a learner and is promoted once caught up).
    AddNode {
        /// Node id (N2) or name.
        #[arg(long)]
        node: String,
    },
    /// Removes a node from the store (never the last voter).
    RemoveNode {
        /// Node id (N2) or name.
        #[arg(long)]
        node: String,
    },
}

#[derive(Debug, ClapArgs)]
struct ProvisionCmd {
    /// Number of partitions (default: the node's `default-num-partitions`).
    #[arg(long, value_name = "N")]
    num_partitions: Option<u32>,
    /// Log replication: copies of every record, `2`, or spread over zones/regions in
    /// Restate's form, `"{zone: 2, node: 3}"` (default: the node's `default-replication`).
    #[arg(long, alias = "log-replication", value_name = "R")]
    replication: Option<ReplicationProperty>,
    /// Log provider: local or replicated (default: the node's `bifrost.default-provider`).
    #[arg(long, value_name = "PROVIDER")]
    log_provider: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Shows the cluster configuration.
    Get,
    /// Changes the log provider and/or log replication for new log segments.
    Set {
        /// local or replicated.
        #[arg(long, value_name = "PROVIDER")]
        log_provider: Option<String>,
        /// Copies of every record, `2`, or spread over zones/regions in Restate's form,
        /// `"{zone: 2, node: 3}"` (a replicated loglet needs 2R-1 log-servers, and with a
        /// zone count at most (R-1)/(zones-1) of them in any one zone).
        #[arg(long, value_name = "R")]
        log_replication: Option<ReplicationProperty>,
    },
}

#[derive(Debug, Subcommand)]
enum NodesCmd {
    /// Every node with id, generation, roles, role states and liveness.
    List,
    /// Moves everything off a node before it is stopped for good: its log replicas go to
    /// other log-servers, its partitions to other workers, and it leaves the metadata
    /// store. Idempotent: run it again (or with --wait) to see what is left. Refused when
    /// the rest of the cluster could not hold the log replication.
    Drain {
        /// Node id (N4) or name.
        node: String,
        /// Wait until the node is drained, printing progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Moves a node's partition leaderships to other workers before it is restarted (an
    /// upgrade); it keeps its log replicas and metadata vote, and leads again after it
    /// registers anew.
    PrepareRestart {
        /// Node id (N4) or name.
        node: String,
        /// Wait until it leads no partition, printing progress.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Forgets a drained (and stopped) node; its id is never reused.
    Remove {
        /// Node id (N4) or name.
        node: String,
        /// Remove even if not drained: for a node that is gone for good (asks first, --yes skips).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MetadataCmd {
    /// Prints a key's value and version.
    Get {
        #[arg(long, short = 'k')]
        key: String,
    },
    /// Writes a key. With --version N the key must be at version N now (0: must not
    /// exist), otherwise the write is refused and the current version is named.
    Put {
        #[arg(long, short = 'k')]
        key: String,
        #[arg(long, short = 'v')]
        value: String,
        #[arg(long)]
        version: Option<u32>,
    },
}

/// Sets this process's TLS from the `--tls-*` flags (or their variables).
fn configure_tls(cli: &Cli) -> Result<(), String> {
    let Some(ca) = &cli.tls_ca_file else {
        if cli.tls_cert_file.is_some() {
            return Err("--tls-cert-file needs --tls-ca-file (the cluster's CA, to verify the nodes)".into());
        }
        return Ok(());
    };
    let identity = cli.tls_cert_file.clone().zip(cli.tls_key_file.clone());
    let files = restate_proto::tls::TlsFiles { ca: ca.clone(), identity };
    let tls = restate_proto::tls::NodeTls::load(files).map_err(|e| format!("--tls-*: {e}"))?;
    restate_proto::tls::set_process_tls(Some(tls));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.cluster_secret_file {
        match restate_proto::credentials::ClusterSecret::from_file(path) {
            Ok(secret) => restate_proto::credentials::set_process_secret(Some(secret)),
            Err(e) => {
                eprintln!("error: --cluster-secret-file: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = configure_tls(&cli) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let globals = Globals { address: cli.address.clone(), json: cli.json, yes: cli.yes };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result: Result<(), CtlError> = runtime.block_on(async {
        match cli.command {
            Command::Status => ctl::status(&globals).await,
            Command::Sql { query } => ctl::sql(&globals, &query).await,
            Command::Provision(p) => {
                let args = ProvisionArgs {
                    num_partitions: p.num_partitions,
                    replication: p.replication,
                    log_provider: p.log_provider,
                };
                ctl::provision(&globals, &args).await
            }
            Command::Config(ConfigCmd::Get) => ctl::config_get(&globals).await,
            Command::Config(ConfigCmd::Set { log_provider, log_replication }) => {
                ctl::config_set(&globals, log_provider, log_replication).await
            }
            Command::Nodes(NodesCmd::List) => ctl::nodes_list(&globals).await,
            Command::Nodes(NodesCmd::Drain { node, wait, timeout }) => {
                ctl::nodes_drain(&globals, &node, wait, std::time::Duration::from_secs(timeout)).await
            }
            Command::Nodes(NodesCmd::Remove { node, force }) => ctl::nodes_remove(&globals, &node, force).await,
            Command::Nodes(NodesCmd::PrepareRestart { node, wait, timeout }) => {
                ctl::nodes_prepare_restart(&globals, &node, wait, std::time::Duration::from_secs(timeout)).await
            }
            Command::Metadata(MetadataCmd::Get { key }) => ctl::metadata_get(&globals, &key).await,
            Command::Metadata(MetadataCmd::Put { key, value, version }) => {
                ctl::metadata_put(&globals, &key, &value, version).await
            }
            Command::Logs(LogsCmd::List) => ctl::logs::list(&globals).await,
            Command::Partitions(PartitionsCmd::List) => ctl::partitions::list(&globals).await,
            Command::Partitions(PartitionsCmd::SkipRecord { partition, lsn, force }) => {
                ctl::partitions::skip_record(&globals, partition, lsn, force).await
            }
            Command::Snapshots(SnapshotsCmd::Create { trim_log, partitions }) => {
                ctl::snapshots::create(&globals, &partitions, trim_log).await
            }
            Command::Logs(LogsCmd::Describe { log_id }) => ctl::logs::describe(&globals, log_id).await,
            Command::Logs(LogsCmd::Trim { log_id, trim_point }) => ctl::logs::trim(&globals, log_id, trim_point).await,
            Command::MetadataServer(MetadataServerCmd::ListServers) => {
                ctl::metadata_server::list_servers(&globals).await
            }
            Command::MetadataServer(MetadataServerCmd::AddNode { node }) => {
                ctl::metadata_server::add_node(&globals, &node).await
            }
            Command::MetadataServer(MetadataServerCmd::RemoveNode { node }) => {
                ctl::metadata_server::remove_node(&globals, &node).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
