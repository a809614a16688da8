//! `Signals`: invocations waiting on each other: named signals (`ctx.signal(name)`
//! awaited by one invocation, completed by another through its invocation id) and
//! attaching to another invocation's result.

use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// What `Signals.send` delivers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// The waiting invocation (`inv_...`, as `/send` answered it).
    pub invocation: String,
    /// The signal's name.
    pub name: String,
    pub value: String,
}

pub struct Signals;

#[service]
impl Signals {
    /// Waits for the signal `name` on this invocation and returns its value.
    #[handler(name = "waitFor")]
    async fn wait_for(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        Ok(ctx.signal::<String>(&name).await?)
    }

    /// Waits for invocation `invocation` (`inv_...`) to complete and returns its result.
    #[handler(name = "awaitResult")]
    async fn await_result(&self, ctx: Context<'_>, invocation: String) -> Result<String, HandlerError> {
        Ok(ctx.invocation_handle(invocation).attach::<String>().await?)
    }

    /// Resolves signal `delivery.name` of invocation `delivery.invocation` with its value.
    #[handler]
    async fn send(&self, ctx: Context<'_>, delivery: Json<Delivery>) -> Result<(), HandlerError> {
        let delivery = delivery.into_inner();
        ctx.invocation_handle(delivery.invocation).signal(delivery.name).resolve(delivery.value);
        Ok(())
    }
}
