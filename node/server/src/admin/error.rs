//! The admin API's error answer: `{"message": ...}` with a status code, and how the
//! metadata store's and the service registry's errors map to one.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use restate_metadata::objects::{SchemaError, SchemaErrorKind};
use restate_metadata::MetadataStoreError;
use serde_json::json;

/// An error answer: `{"message": ...}` with a status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

impl From<MetadataStoreError> for ApiError {
    fn from(err: MetadataStoreError) -> ApiError {
        let status = match err {
            MetadataStoreError::Unavailable(_)
            | MetadataStoreError::NotApplied(_)
            | MetadataStoreError::NotLeader { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("cannot access the service registry: {err}"))
    }
}

impl From<SchemaError> for ApiError {
    fn from(err: SchemaError) -> ApiError {
        let status = match err.kind() {
            SchemaErrorKind::Invalid => StatusCode::BAD_REQUEST,
            SchemaErrorKind::Conflict => StatusCode::CONFLICT,
            SchemaErrorKind::NotFound => StatusCode::NOT_FOUND,
        };
        ApiError::new(status, err.to_string())
    }
}
