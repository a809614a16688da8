//! The web UI at `/ui/`: one HTML page, a style sheet and plain JavaScript, embedded in the
//! binary (no CDN: clusters often run without internet access). Everything it shows comes
//! from the admin API (`/cluster`, `/deployments`, `/services`, `/invocations`, `/query`);
//! it has no data path of its own. `GET /` from a browser (asking for HTML) redirects here;
//! API clients keep getting JSON.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("ui/index.html");
const APP: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");

pub(super) fn router() -> Router {
    Router::new()
        .route("/", get(root))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Browsers (which ask for HTML) go to the UI; API clients get the admin API's JSON 404.
async fn root(headers: HeaderMap) -> Response {
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        return Redirect::temporary("/ui/").into_response();
    }
    super::error::ApiError::new(
        StatusCode::NOT_FOUND,
        "this is the admin API: see /deployments, /services, /invocations, /query; the web UI is at /ui/",
    )
    .into_response()
}
