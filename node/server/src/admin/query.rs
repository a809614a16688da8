//! `POST /query` `{"query": "SELECT ..."}`: one SQL statement over the cluster's tables,
//! answered `{"rows": [{column: value, ...}, ...]}` as Restate's admin API does (plus
//! `"columns"`: the names in the query's order). Errors are
//! `{"message": ...}`: 400 for a statement that does not parse, names an unknown table or
//! column, is not a query, or exceeds a limit; 503 when a partition did not answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use restate_query::{QueryEngine, QueryError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    query: String,
}

pub(super) fn router(engine: QueryEngine) -> Router {
    Router::new().route("/query", post(query)).with_state(engine)
}

async fn query(State(engine): State<QueryEngine>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let request: QueryRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON {{\"query\": \"SELECT ...\"}}: {e}")))?;
    let result = engine.execute(&request.query).await.map_err(api_error)?;
    let rows = restate_query::json::rows(&result).map_err(api_error)?;
    // `columns` (beyond Restate's answer) keeps the query's column order for clients.
    let columns: Vec<&str> = result.schema.fields().iter().map(|f| f.name().as_str()).collect();
    Ok(Json(json!({ "rows": rows, "columns": columns })))
}

fn api_error(error: QueryError) -> ApiError {
    let status = match error {
        QueryError::Invalid(_) | QueryError::Limit(_) => StatusCode::BAD_REQUEST,
        QueryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        QueryError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, error.to_string())
}
