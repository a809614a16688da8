//! `Signup`: a workflow whose run handler waits on a durable promise that a shared
//! handler completes (the SDK's "email link" pattern).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use restate_sdk::prelude::*;

/// The promise `run` waits on and `click` completes.
pub const EMAIL_LINK: &str = "email-link";

pub struct Signup {
    /// Where `run` logs each real execution of its first step (`signup-{key}`), as
    /// [`crate::ticket::RUN_LOG_ENV`] says; replays do not log.
    pub run_log: Option<PathBuf>,
}

#[restate_sdk::workflow]
impl Signup {
    /// Runs once per key: "sends the email" (a logged `ctx.run`), then waits for the
    /// promise [`EMAIL_LINK`] and returns `"{email} confirmed by {link}"`.
    #[handler]
    async fn run(&self, ctx: WorkflowContext<'_>, email: String) -> Result<String, HandlerError> {
        let run_log = self.run_log.clone();
        let line = format!("signup-{}", ctx.key());
        ctx.run(|| async move {
            if let Some(path) = run_log {
                let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
                writeln!(file, "{line}")?;
            }
            Ok(())
        })
        .name("send-email")
        .await?;
        ctx.set("status", "waiting for the link".to_owned());
        let link = ctx.promise::<String>(EMAIL_LINK).await?;
        ctx.set("status", "confirmed".to_owned());
        Ok(format!("{email} confirmed by {link}"))
    }

    /// Completes [`EMAIL_LINK`] with `link` (the first completion wins).
    #[handler]
    async fn click(&self, ctx: SharedWorkflowContext<'_>, link: String) -> Result<(), HandlerError> {
        ctx.resolve_promise::<String>(EMAIL_LINK, link);
        Ok(())
    }

    /// The link [`EMAIL_LINK`] was completed with, `""` while it is pending.
    #[handler]
    async fn link(&self, ctx: SharedWorkflowContext<'_>) -> Result<String, HandlerError> {
        Ok(ctx.peek_promise::<String>(EMAIL_LINK).await?.unwrap_or_default())
    }

    /// What `run` is doing (`""` before it started).
    #[handler]
    async fn status(&self, ctx: SharedWorkflowContext<'_>) -> Result<String, HandlerError> {
        Ok(ctx.get::<String>("status").await?.unwrap_or_default())
    }
}
