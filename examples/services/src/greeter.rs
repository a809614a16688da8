//! `Greeter`: a stateless service, the quickstart's first example.

use std::convert::Infallible;

use restate_sdk::prelude::*;

use crate::counter::CounterClient;

/// The `Counter` key that counts every `greetCounted` greeting (through one-way sends).
pub const GREETINGS_COUNTER: &str = "greetings";

/// Stateless service: a plain greeting, and one that calls and messages `Counter`.
pub struct Greeter;

#[service]
impl Greeter {
    /// Returns `"Hello, {name}!"`. Input and output are JSON strings, so the journal's
    /// input value for `Sarah` is the bytes `"Sarah"` (with the quotes).
    #[handler]
    async fn greet(&self, _ctx: Context<'_>, name: String) -> Result<String, Infallible> {
        Ok(format!("Hello, {name}!"))
    }

    /// Calls `Counter/{name}/add(1)` and waits for the new count (a request-response call
    /// to another service), sends `Counter/greetings/add(1)` one-way (not waited for),
    /// then returns `"Hello, {name}! Visit {count}."`.
    #[handler(name = "greetCounted")]
    async fn greet_counted(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        let count = ctx.object_client::<CounterClient>(name.clone()).add(1).call().await?;
        ctx.object_client::<CounterClient>(GREETINGS_COUNTER).add(1).send();
        Ok(format!("Hello, {name}! Visit {count}."))
    }

    /// Sends `Counter/{name}/add(1)` to run one second from now (a delayed one-way call,
    /// durable: it waits `scheduled` in the counter's partition) and returns at once.
    #[handler(name = "greetLater")]
    async fn greet_later(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        ctx.object_client::<CounterClient>(name.clone()).add(1).send_after(std::time::Duration::from_secs(1));
        Ok(format!("See you later, {name}!"))
    }
}
