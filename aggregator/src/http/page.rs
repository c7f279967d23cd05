//! The heatmap page: four static files compiled into the binary.
//!
//! Why `include_str!`: no npm, no build step, nothing to mount. The page polls `/api/v1/matrix`
//! and draws on a canvas, so 500 nodes (250 000 cells) stay smooth where 250 000 DOM cells would
//! not; above that it shows the zone × zone grid and one page of the node summary (`zones.js`)
//! and opens one zone's matrix at a time.

use axum::Router;
use axum::http::header;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const ZONES_JS: &str = include_str!("../../ui/zones.js");
const STYLE_CSS: &str = include_str!("../../ui/style.css");

/// The routes `/`, `/ui/app.js`, `/ui/zones.js` and `/ui/style.css`.
pub fn router() -> Router {
    let page = |body: &'static str, ctype: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, ctype),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
        })
    };
    Router::new()
        .route("/", page(INDEX_HTML, "text/html; charset=utf-8"))
        .route("/ui/app.js", page(APP_JS, "text/javascript; charset=utf-8"))
        .route(
            "/ui/zones.js",
            page(ZONES_JS, "text/javascript; charset=utf-8"),
        )
        .route("/ui/style.css", page(STYLE_CSS, "text/css; charset=utf-8"))
}
