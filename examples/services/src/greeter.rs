//! `Greeter`: a stateless service, the quickstart's first example.

use std::convert::Infallible;

use restate_sdk::prelude::*;

/// Stateless service with one handler.
pub struct Greeter;

#[service]
impl Greeter {
    /// Returns `"Hello, {name}!"`. Input and output are JSON strings, so the journal's
    /// input value for `Sarah` is the bytes `"Sarah"` (with the quotes).
    #[handler]
    async fn greet(&self, _ctx: Context<'_>, name: String) -> Result<String, Infallible> {
        Ok(format!("Hello, {name}!"))
    }
}
