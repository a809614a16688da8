//! `Counter`: a virtual object keeping one integer per key.

use restate_sdk::prelude::*;

/// State key holding the counter value (JSON number).
pub const COUNT: &str = "count";

/// Virtual object: one counter per object key, stored under [`COUNT`].
pub struct Counter;

#[object]
impl Counter {
    /// Adds `delta` to the counter (a missing counter counts as 0), stores the sum and
    /// returns it. Exclusive: at most one `add` runs per key at a time.
    #[handler]
    async fn add(&self, ctx: ObjectContext<'_>, delta: i64) -> Result<i64, HandlerError> {
        let current = ctx.get::<i64>(COUNT).await?.unwrap_or(0);
        let new = current.checked_add(delta).ok_or_else(|| {
            TerminalError::new(format!("counter overflow: {current} + {delta} does not fit in an i64"))
        })?;
        ctx.set(COUNT, new);
        Ok(new)
    }

    /// Returns the counter (0 when it was never set). Shared (the SDK infers it from
    /// `SharedObjectContext`): runs beside `add`.
    #[handler]
    async fn get(&self, ctx: SharedObjectContext<'_>) -> Result<i64, HandlerError> {
        Ok(ctx.get::<i64>(COUNT).await?.unwrap_or(0))
    }
}
