//! `Ticket`: a service whose handler has a side effect inside `ctx.run`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use restate_sdk::prelude::*;

/// Environment variable naming a file to which every real execution of the side effect
/// appends one line (the issued ticket id). Tests count the lines to see how many times
/// the closure actually ran, as opposed to being replayed from the journal.
pub const RUN_LOG_ENV: &str = "EXAMPLE_RUN_LOG";

/// Stateless service issuing tickets with random ids.
pub struct Ticket {
    /// Where to log real side-effect executions (from [`RUN_LOG_ENV`]), if anywhere.
    pub run_log: Option<PathBuf>,
}

#[service]
impl Ticket {
    /// Issues a ticket for `name` and returns its id, `"{name}-{16 hex digits}"`.
    ///
    /// The id is drawn inside `ctx.run` (named `issue-ticket`), so it is journaled: a retry
    /// or a replay of the same invocation returns the same id and does not log again.
    /// Failing to append to the run log is a retryable error of the closure.
    #[handler]
    async fn issue(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        self.draw(&ctx, name).await
    }

    /// As `issue`, then sleeps [`HOLD`] (a durable timer) before returning the ticket:
    /// a window in which tests kill the partition's leader, to see that the new leader
    /// replays the journaled ticket instead of drawing (and logging) another.
    #[handler(name = "issueAndHold")]
    async fn issue_and_hold(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        let ticket = self.draw(&ctx, name).await?;
        ctx.sleep(HOLD).await?;
        Ok(ticket)
    }
}

/// How long `issueAndHold` sleeps after drawing its ticket.
pub const HOLD: Duration = Duration::from_secs(3);

impl Ticket {
    /// Draws the ticket inside `ctx.run` named `issue-ticket`, logging the real execution.
    async fn draw(&self, ctx: &Context<'_>, name: String) -> Result<String, HandlerError> {
        let run_log = self.run_log.clone();
        let ticket = ctx
            .run(|| async move {
                let ticket = format!("{name}-{:016x}", rand::rng().random::<u64>());
                if let Some(path) = run_log {
                    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
                    writeln!(file, "{ticket}")?;
                }
                Ok(ticket)
            })
            .name("issue-ticket")
            .await?;
        Ok(ticket)
    }
}
