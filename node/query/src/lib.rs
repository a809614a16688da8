//! The cluster's SQL query engine: Restate's introspection tables (`sys_service`,
//! `sys_deployment`, `sys_invocation`, ...) over Apache DataFusion, answered cluster-wide
//! from any node, and the PostgreSQL wire protocol in front of it.
//!
//! - [`engine`]: one read-only statement at a time, bounded in rows and memory;
//! - [`tables`]: the tables and [`ClusterData`], where their rows come from (the node
//!   implements it over its metadata view and the node fabric);
//! - [`json`]: results as JSON rows (the admin API's `POST /query`);
//! - [`pg`]: the PostgreSQL wire protocol (`[admin.query-engine] pgsql-bind-address`).

pub mod engine;
pub mod json;
pub mod pg;
pub mod tables;

pub use engine::{QueryEngine, QueryError, QueryLimits, QueryResult};
pub use tables::{AttemptRow, ClusterData, InvocationRow};

#[cfg(test)]
mod tests;
