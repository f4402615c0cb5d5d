//! The page's stylesheet and script, compiled into the binary from the
//! crate's `assets/ops/` folder (no CDN, no build step).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

const CSS: &str = include_str!("../../../assets/ops/ops.css");
const JS: &str = include_str!("../../../assets/ops/ops.js");

/// `ops.css`.
pub async fn css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
}

/// `ops.js`.
pub async fn js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
}
