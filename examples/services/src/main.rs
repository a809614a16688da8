//! `example-services`: Restate example services on the real Restate Rust SDK, served over
//! HTTP/2 (prior knowledge only, as the SDK's server does) for tests of workers and ingress.

mod approval;
mod counter;
mod greeter;
mod signals;
mod signup;
mod ticket;

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use restate_sdk::hyper::HyperEndpoint;
use restate_sdk::prelude::Endpoint;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

use crate::approval::{Approval, Approver};
use crate::counter::Counter;
use crate::greeter::Greeter;
use crate::signals::Signals;
use crate::signup::Signup;
use crate::ticket::{Ticket, RUN_LOG_ENV};

/// Serves the example Restate services on one HTTP/2 endpoint (prior knowledge, no HTTP/1.1).
///
/// Services: Greeter (service; greet(name) -> "Hello, {name}!", greetCounted(name) calls
/// Counter/{name}/add and sends Counter/greetings/add), Counter (virtual object;
/// add(delta) -> new value, get() -> value, state key "count") and Ticket (service;
/// issue(name) -> id drawn inside ctx.run, issueAndHold(name) the same then a 3 s durable
/// sleep), Approval (virtual object; request(what) waits on an awakeable whose id
/// pending() returns), Approver (service; decide({awakeable, approve, answer}) completes
/// it) and Signals (service; waitFor(name) awaits a named signal, send({invocation, name,
/// value}) delivers one) and Signup (workflow; run(email) waits on the promise that click(link)
/// completes; link() peeks it, status() reads state). Endpoints: GET /discover, POST
/// /invoke/{service}/{handler}. Prints one line with the address once it listens
/// (useful with --port 0). Stops on SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "example-services", version)]
struct Args {
    /// TCP port to listen on, on all interfaces (0.0.0.0). 0 picks a free port.
    #[arg(long, env = "PORT", default_value_t = 9080)]
    port: u16,

    /// File to which Ticket.issue appends one line per real execution of its ctx.run
    /// closure (replays do not append). Unset: no log.
    #[arg(long, env = RUN_LOG_ENV, value_name = "FILE")]
    run_log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("example-services: cannot listen on {addr}: {err} (choose another with --port or PORT)");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);

    let endpoint = Endpoint::builder()
        .bind(Greeter)
        .bind(Counter)
        .bind(Ticket { run_log: args.run_log.clone() })
        .bind(Signup { run_log: args.run_log })
        .bind(Approval)
        .bind(Approver)
        .bind(Signals)
        .build();

    // Tests parse this line (the port after the last ':'), keep its shape.
    println!("example-services listening on {local} (HTTP/2 prior knowledge; services: Greeter, Counter, Ticket, Approval, Approver, Signals, Signup)");

    serve(listener, endpoint).await;
    ExitCode::SUCCESS
}

/// The SDK's HTTP/2 endpoint on every accepted connection, with TCP_NODELAY: the SDK
/// writes a response as several small HTTP/2 frames, and Nagle's algorithm would hold
/// the later ones until the server's delayed ACK (~40 ms per round). Stops accepting on
/// SIGINT/SIGTERM and lets open connections finish.
async fn serve(listener: TcpListener, endpoint: Endpoint) {
    let endpoint = HyperEndpoint::new(endpoint);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        eprintln!("example-services: accept failed: {err}");
                        continue;
                    }
                };
                if let Err(err) = stream.set_nodelay(true) {
                    eprintln!("example-services: TCP_NODELAY for {remote}: {err}");
                }
                let connection = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), endpoint.clone());
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("connection from {remote} ended: {err}");
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    graceful.shutdown().await;
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            eprintln!("example-services: cannot watch SIGTERM ({err}); stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Args;

    #[test]
    fn cli_is_well_formed() {
        Args::command().debug_assert();
    }
}
