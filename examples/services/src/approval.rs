//! `Approval` and `Approver`: a handler that waits on an awakeable (human-in-the-loop,
//! webhooks), completed from outside (`POST /restate/awakeables/{id}/resolve|reject`) or
//! by another handler.

use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// State key holding the awakeable id a pending `request` waits on.
pub const AWAKEABLE: &str = "awakeable";

/// Virtual object: one approval request at a time per key.
pub struct Approval;

#[object]
impl Approval {
    /// Creates an awakeable, keeps its id under [`AWAKEABLE`] (read it with `pending`),
    /// waits until it is completed and returns `"{what}: {answer}"`. A rejection fails
    /// the handler with the rejection's message (terminal).
    #[handler]
    async fn request(&self, ctx: ObjectContext<'_>, what: String) -> Result<String, HandlerError> {
        let (id, answer) = ctx.awakeable::<String>();
        ctx.set(AWAKEABLE, id);
        let answer = answer.await?;
        ctx.clear(AWAKEABLE);
        Ok(format!("{what}: {answer}"))
    }

    /// The awakeable id the running `request` waits on, `""` when none waits. Shared:
    /// answers while `request` holds the key.
    #[handler]
    async fn pending(&self, ctx: SharedObjectContext<'_>) -> Result<String, HandlerError> {
        Ok(ctx.get::<String>(AWAKEABLE).await?.unwrap_or_default())
    }
}

/// What `Approver.decide` is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Decision {
    /// The awakeable to complete.
    pub awakeable: String,
    /// `true`: resolve with `answer`; `false`: reject with `answer` as the message.
    pub approve: bool,
    pub answer: String,
}

/// Service completing awakeables from a handler (`CompleteAwakeableCommand`).
pub struct Approver;

#[service]
impl Approver {
    /// Resolves or rejects `decision.awakeable`; returns at once (the completion travels
    /// to the waiting invocation's partition durably).
    #[handler]
    async fn decide(&self, ctx: Context<'_>, decision: Json<Decision>) -> Result<(), HandlerError> {
        let decision = decision.into_inner();
        if decision.approve {
            ctx.resolve_awakeable(&decision.awakeable, decision.answer);
        } else {
            ctx.reject_awakeable(&decision.awakeable, TerminalError::new(decision.answer));
        }
        Ok(())
    }
}
