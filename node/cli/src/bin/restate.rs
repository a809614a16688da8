//! `restate`: registers service deployments, lists services and manages invocations
//! through the admin API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use restate_cli::restate::{deployments, invocations, kv, parse_header, services, sql, CliError, Globals};

/// Manages the services of a Restate cluster through the admin REST API of any node.
///
/// Commands that change the registry ask for confirmation only when stdin is a terminal;
/// --yes skips the question. Read commands take --json for scripts.
#[derive(Debug, Parser)]
#[command(name = "restate", version, about, long_about)]
struct Cli {
    /// Admin API of any node with the admin role.
    #[arg(long, global = true, env = "RESTATE_ADMIN_URL", default_value = "http://127.0.0.1:9070", value_name = "URL")]
    admin_url: String,
    /// Print the admin API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    yes: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Service deployments: endpoints that serve services built with a Restate SDK.
    #[command(subcommand, visible_alias = "dp", alias = "deployment")]
    Deployments(DeploymentsCmd),
    /// Registered services with their handlers.
    #[command(subcommand, visible_alias = "svc", alias = "service")]
    Services(ServicesCmd),
    /// Invocations held by the partitions: running, suspended, inboxed, and completed ones
    /// within [worker] idempotency-retention.
    #[command(subcommand, visible_alias = "inv", alias = "invocation")]
    Invocations(InvocationsCmd),
    /// Runs one SQL statement over the cluster's tables (sys_invocation, sys_service,
    /// sys_deployment, ...) through the admin API's POST /query, e.g.
    /// `restate sql "SELECT id, status FROM sys_invocation WHERE status = 'suspended'"`.
    Sql {
        /// The query (a single SELECT).
        query: String,
    },
    /// The state of virtual objects and workflows.
    #[command(subcommand)]
    Kv(KvCmd),
}

#[derive(Debug, Subcommand)]
enum KvCmd {
    /// Every state key of one object (or workflow) with its value.
    Get {
        /// The virtual object's or workflow's name, e.g. Counter.
        service: String,
        /// The object's key (the workflow id).
        key: String,
    },
    /// Deletes every state key of one object (asks first; --yes skips).
    Clear {
        /// The virtual object's or workflow's name.
        service: String,
        /// The object's key.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum InvocationsCmd {
    /// Every invocation, oldest first, with its target, status and outcome.
    #[command(visible_alias = "ls")]
    List {
        /// Only invocations with this status.
        #[arg(long, value_parser = ["scheduled", "inboxed", "invoked", "suspended", "paused", "completed"])]
        status: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One invocation's status, and its output or failure once completed.
    #[command(visible_alias = "get")]
    Describe {
        /// Invocation id (inv_...).
        id: String,
    },
    /// Asks a running invocation to stop: the handler sees the cancellation and can run
    /// compensations; an inboxed one is dropped. Its result is a 409 "cancelled" failure.
    Cancel {
        /// Invocation id (inv_...).
        id: String,
        /// Kill instead: stop at once, no compensations.
        #[arg(long)]
        kill: bool,
    },
    /// Stops a running invocation at once (no compensations); its result is 409 "killed".
    Kill {
        /// Invocation id (inv_...).
        id: String,
    },
    /// Forgets a completed invocation now: its result and idempotency key (a workflow
    /// run's state and promises too). A running one must be cancelled or killed first.
    Purge {
        /// Invocation id (inv_...).
        id: String,
    },
    /// Stops running a running or suspended invocation until it is resumed: its attempt
    /// in flight is dropped and notifications wait in its journal. Invocations are also
    /// paused after the retry policy's last attempt ([invocation.default-retry-policy]).
    Pause {
        /// Invocation id (inv_...).
        id: String,
    },
    /// Runs a paused or suspended invocation now, or retries a backing-off one now. Every
    /// attempt goes to the service's latest deployment: register a fixed deployment
    /// first, then resume.
    Resume {
        /// Invocation id (inv_...).
        id: String,
    },
    /// Starts a new invocation with a completed invocation's target, input and headers
    /// (not a workflow's run); prints the new id.
    RestartAsNew {
        /// Invocation id (inv_...).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeploymentsCmd {
    /// Discovers the deployment at URL (GET URL/discover), shows its services and
    /// handlers, and registers it. Registering a URL again with the same services changes
    /// nothing; with different services it needs --force.
    #[command(visible_alias = "add")]
    Register {
        /// The deployment's address, e.g. http://127.0.0.1:9080.
        url: String,
        /// Overwrite a registration of the same URL that differs; allow service type changes.
        #[arg(long)]
        force: bool,
        /// Header sent with every request to the deployment (repeatable), e.g.
        /// --header authorization=Bearer 123.
        #[arg(long = "header", alias = "extra-header", value_name = "K=V", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// Only show what would be registered.
        #[arg(long)]
        dry_run: bool,
        /// Reach the deployment over HTTP/1.1 (an HTTP/1.1-only server; the SDK then runs
        /// in request/response mode). Without it, HTTP/2 with prior knowledge is tried
        /// first and HTTP/1.1 when the endpoint does not speak HTTP/2 that way.
        #[arg(long = "use-http1.1")]
        use_http_11: bool,
    },
    /// Every deployment with its URL, creation time and services.
    #[command(visible_alias = "ls")]
    List,
    /// One deployment with its services and their handlers.
    #[command(visible_alias = "get")]
    Describe {
        /// Deployment id (dp_...).
        id: String,
    },
    /// Removes a deployment. Refused while it serves the latest revision of a service,
    /// unless --force, which removes those services too.
    #[command(visible_alias = "rm")]
    Remove {
        /// Deployment id (dp_...).
        id: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ServicesCmd {
    /// Every service with its type, revision, deployment and handlers.
    #[command(visible_alias = "ls")]
    List,
    /// One service with its handlers and their types.
    #[command(visible_alias = "get")]
    Describe {
        /// Service name.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let globals = Globals { admin_url: cli.admin_url.clone(), json: cli.json, yes: cli.yes };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let result: Result<(), CliError> = runtime.block_on(async {
        match cli.command {
            Command::Deployments(DeploymentsCmd::Register { url, force, headers, dry_run, use_http_11 }) => {
                let args = deployments::RegisterArgs { url, force, headers, dry_run, use_http_11 };
                deployments::register(&globals, &args).await
            }
            Command::Deployments(DeploymentsCmd::List) => deployments::list(&globals).await,
            Command::Deployments(DeploymentsCmd::Describe { id }) => deployments::describe(&globals, &id).await,
            Command::Deployments(DeploymentsCmd::Remove { id, force }) => {
                deployments::remove(&globals, &id, force).await
            }
            Command::Services(ServicesCmd::List) => services::list(&globals).await,
            Command::Services(ServicesCmd::Describe { name }) => services::describe(&globals, &name).await,
            Command::Invocations(InvocationsCmd::List { status, limit }) => {
                invocations::list(&globals, status.as_deref(), limit).await
            }
            Command::Invocations(InvocationsCmd::Describe { id }) => invocations::describe(&globals, &id).await,
            Command::Invocations(InvocationsCmd::Cancel { id, kill }) => invocations::cancel(&globals, &id, kill).await,
            Command::Invocations(InvocationsCmd::Kill { id }) => invocations::cancel(&globals, &id, true).await,
            Command::Invocations(InvocationsCmd::Purge { id }) => invocations::purge(&globals, &id).await,
            Command::Invocations(InvocationsCmd::Pause { id }) => invocations::pause(&globals, &id).await,
            Command::Invocations(InvocationsCmd::Resume { id }) => invocations::resume(&globals, &id).await,
            Command::Invocations(InvocationsCmd::RestartAsNew { id }) => {
                invocations::restart_as_new(&globals, &id).await
            }
            Command::Sql { query } => sql::run(&globals, &query).await,
            Command::Kv(KvCmd::Get { service, key }) => kv::get(&globals, &service, &key).await,
            Command::Kv(KvCmd::Clear { service, key }) => kv::clear(&globals, &service, &key).await,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn aliases_and_global_flags() {
        let cli =
            Cli::try_parse_from(["restate", "dp", "register", "http://a:9080", "--yes", "--header", "k=v"]).unwrap();
        assert!(cli.yes);
        match cli.command {
            Command::Deployments(DeploymentsCmd::Register { url, headers, force, .. }) => {
                assert_eq!(url, "http://a:9080");
                assert_eq!(headers, [("k".to_owned(), "v".to_owned())]);
                assert!(!force);
            }
            other => panic!("{other:?}"),
        }
        for words in [["restate", "deployment", "list"], ["restate", "deployments", "ls"], ["restate", "dp", "list"]] {
            assert!(matches!(Cli::try_parse_from(words).unwrap().command, Command::Deployments(DeploymentsCmd::List)));
        }
        let cli = Cli::try_parse_from(["restate", "services", "list", "--json", "--admin-url", "http://x:1"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.admin_url, "http://x:1");
        assert!(Cli::try_parse_from(["restate", "dp", "register", "http://a", "--header", "nope"]).is_err());
    }
}
