//! `restate-server`: runs one node of a Restate cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use restate_config::{CliOverride, ConfigFile, ConfigSources, LogFormat};
use restate_server::{Node, NodeExit, StartupError};

/// Runs one node of a Restate cluster.
///
/// Configuration comes from (lowest to highest precedence) built-in defaults, the
/// restate.toml given by --config-file or RESTATE_CONFIG, RESTATE_* environment
/// variables (`RESTATE_` + key, `__` between nesting levels, `-` as `_`, lists as JSON,
/// e.g. RESTATE_METADATA_CLIENT__ADDRESSES='["http://n1:5122"]'), and the flags below.
/// With no configuration at all the node runs every role on 5122 (node), 9070 (admin)
/// and 8080 (ingress), keeps data in ./restate-data and provisions itself.
#[derive(Debug, Parser)]
#[command(name = "restate-server", version, about, long_about)]
struct Args {
    /// Path of restate.toml.
    #[arg(long, env = "RESTATE_CONFIG", value_name = "PATH")]
    config_file: Option<PathBuf>,
    /// Unique name of this node (default: the hostname).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// Name of the cluster; nodes of other names are never joined.
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Directory for node data; the node uses <base-dir>/<node-name>/.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<String>,
    /// Address of the node port (gRPC fabric, /health, /metrics), e.g. 0.0.0.0:5122.
    #[arg(long, value_name = "ADDR")]
    bind_address: Option<String>,
    /// URL other nodes use to reach this one, e.g. http://node1:5122.
    #[arg(long, value_name = "URL")]
    advertised_address: Option<String>,
    /// Whether this node provisions the cluster by itself when nobody has (true|false).
    #[arg(long, value_name = "BOOL")]
    auto_provision: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    dump_config: bool,
    /// Check that this binary reads data of storage format N and exit: 0 if it does, 3 if
    /// the format is newer than it reads (both formats printed). Reads no configuration and
    /// no data; the operator runs it on a new image before an upgrade restarts any node.
    #[arg(long, value_name = "N")]
    check_storage_format: Option<u32>,
}

impl Args {
    fn overrides(&self) -> Vec<CliOverride> {
        let flags = [
            ("node-name", "--node-name", &self.node_name),
            ("cluster-name", "--cluster-name", &self.cluster_name),
            ("base-dir", "--base-dir", &self.base_dir),
            ("bind-address", "--bind-address", &self.bind_address),
            ("advertised-address", "--advertised-address", &self.advertised_address),
            ("auto-provision", "--auto-provision", &self.auto_provision),
        ];
        flags
            .into_iter()
            .filter_map(|(key, flag, value)| {
                value.as_ref().map(|v| CliOverride { key: key.into(), value: v.clone(), flag: flag.into() })
            })
            .collect()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(format) = args.check_storage_format {
        return match restate_storage::check_storage_format(format) {
            Ok(()) => {
                println!(
                    "storage format {format}: readable by this restate-server {} (formats up to {})",
                    env!("CARGO_PKG_VERSION"),
                    restate_storage::STORAGE_FORMAT_VERSION
                );
                ExitCode::SUCCESS
            }
            Err(refusal) => {
                eprintln!("error: {refusal}");
                ExitCode::from(3)
            }
        };
    }
    let file = match &args.config_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(contents) => Some(ConfigFile { path: path.clone(), contents }),
            Err(e) => {
                eprintln!("error: cannot read config file {} (--config-file / RESTATE_CONFIG): {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let sources = ConfigSources { file, env: restate_config::env_sources_from_process(), cli: args.overrides() };
    let loaded = match restate_config::load(&sources) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("error: {errors}");
            return ExitCode::from(2);
        }
    };
    if args.dump_config {
        print!("{}", loaded.config.to_toml());
        return ExitCode::SUCCESS;
    }
    init_logging(&loaded.config.log_filter, loaded.config.log_format);
    raise_open_files_limit();
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(run(loaded.config))
}

async fn run(config: restate_config::Config) -> ExitCode {
    let mut node = match Node::start(config).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("error: {e}");
            tracing::error!("startup failed: {e}");
            return ExitCode::from(match e {
                StartupError::Bind { .. }
                | StartupError::Unsupported { .. }
                | StartupError::MetadataClient(_)
                | StartupError::Snapshots(_)
                | StartupError::ClusterSecret(_)
                | StartupError::Tls(_)
                | StartupError::IncompleteTls { .. }
                | StartupError::RequestIdentity(_)
                | StartupError::InsecureFabric { .. } => 2,
                StartupError::Storage(restate_storage::StorageError::Identity(_)) => 2,
                StartupError::Storage(_) => 1,
            });
        }
    };
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    let reason = tokio::select! {
        _ = sigterm.recv() => { tracing::info!("SIGTERM received"); None }
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT received"); None }
        failure = node.failed() => { tracing::error!("{failure}"); Some(failure) }
    };
    match node.shutdown(reason).await {
        NodeExit::Clean => ExitCode::SUCCESS,
        NodeExit::Failed(reason) => {
            eprintln!("error: {reason}");
            ExitCode::from(1)
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit: every connection and
/// every RocksDB file takes one, and the common soft default of 1,024 is used up by a few
/// hundred idle clients (accepts would then fail, `/health` among them).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by reference.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        (libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0).then_some(before)
    };
    match raised {
        Some(before) => tracing::info!(from = before, to = limit.rlim_max, "raised the open files limit"),
        None => tracing::warn!(
            "could not raise the open files limit to {}: {}",
            limit.rlim_max,
            std::io::Error::last_os_error()
        ),
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| filter.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: log-filter '{filter}' is invalid ({e}); using 'info'");
        tracing_subscriber::EnvFilter::new("info")
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        _ => builder.init(),
    }
}
