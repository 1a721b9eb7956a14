//! CSS and JavaScript embedded in the binary, served under `/static/`.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::error::AppError;

/// (path under /static/, MIME type, contents)
const FILES: &[(&str, &str, &str)] = &[
    ("css/vitrine.css", "text/css; charset=utf-8", include_str!("../../../static/css/vitrine.css")),
    ("sdk/share-widget.js", "text/javascript; charset=utf-8", include_str!("../../../static/sdk/share-widget.js")),
    (
        "sdk/analytics-dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/analytics-dashboard.js"),
    ),
    ("sdk/collaboration.js", "text/javascript; charset=utf-8", include_str!("../../../static/sdk/collaboration.js")),
    (
        "sdk/chat-file-upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/chat-file-upload.js"),
    ),
    // The SDK's ES modules (static/sdk/ is also the npm-style package @vitrine/sdk): thin wrappers
    // over the script-tag files above, and the React FileUpload component.
    ("sdk/esm/index.js", "text/javascript; charset=utf-8", include_str!("../../../static/sdk/esm/index.js")),
    (
        "sdk/esm/share-widget.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/esm/share-widget.js"),
    ),
    (
        "sdk/esm/collaboration.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/esm/collaboration.js"),
    ),
    (
        "sdk/esm/analytics-dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/esm/analytics-dashboard.js"),
    ),
    (
        "sdk/esm/chat-file-upload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/esm/chat-file-upload.js"),
    ),
    (
        "sdk/react/FileUpload.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/sdk/react/FileUpload.js"),
    ),
    ("sdk/package.json", "application/json", include_str!("../../../static/sdk/package.json")),
    ("js/pages.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/pages.js")),
    ("js/shell.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/shell.js")),
    ("js/chat-styles.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/chat-styles.js")),
    ("js/chat-widget.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/chat-widget.js")),
    ("js/chat-agent.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/chat-agent.js")),
    ("js/collab-page.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/collab-page.js")),
    ("js/collab-replay.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/collab-replay.js")),
    ("js/share-beacon.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/share-beacon.js")),
    ("js/file-request.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/file-request.js")),
    ("js/analytics-page.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/analytics-page.js")),
    ("js/resumable.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/resumable.js")),
    ("js/pdf-viewer.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/pdf-viewer.js")),
    // pdfjs-dist 4.10.38 from npm (modern build: build/pdf.min.mjs, build/pdf.worker.min.mjs),
    // unchanged (Apache-2.0: static/js/vendor/pdfjs/LICENSE, also served). Loaded only by the
    // document viewer, on pages that show a PDF.
    (
        "js/vendor/pdfjs/pdf.min.mjs",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/js/vendor/pdfjs/pdf.min.mjs"),
    ),
    (
        "js/vendor/pdfjs/pdf.worker.min.mjs",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/js/vendor/pdfjs/pdf.worker.min.mjs"),
    ),
    ("js/vendor/pdfjs/LICENSE", "text/plain; charset=utf-8", include_str!("../../../static/js/vendor/pdfjs/LICENSE")),
    // tus-js-client 4.3.1 from npm, unchanged (MIT: static/js/vendor/tus-js-client.LICENSE, also served).
    ("js/vendor/tus.min.js", "text/javascript; charset=utf-8", include_str!("../../../static/js/vendor/tus.min.js")),
    (
        "js/vendor/tus-js-client.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../../../static/js/vendor/tus-js-client.LICENSE"),
    ),
];

/// The icons (made once by a script, committed): (path under /static/, MIME type, bytes).
const IMAGES: &[(&str, &str, &[u8])] = &[
    ("img/favicon.ico", "image/x-icon", include_bytes!("../../../static/img/favicon.ico")),
    ("img/favicon.svg", "image/svg+xml", include_bytes!("../../../static/img/favicon.svg")),
    ("img/favicon-32.png", "image/png", include_bytes!("../../../static/img/favicon-32.png")),
    ("img/apple-touch-icon.png", "image/png", include_bytes!("../../../static/img/apple-touch-icon.png")),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/{*path}", get(serve))
        // Where browsers look for icons without being told.
        .route("/favicon.ico", get(|| image("img/favicon.ico")))
        .route("/favicon.svg", get(|| image("img/favicon.svg")))
        .route("/apple-touch-icon.png", get(|| image("img/apple-touch-icon.png")))
}

async fn serve(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, mime, body)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=3600")], *body).into_response()
        }
        None => image(&path).await,
    }
}

async fn image(path: &str) -> Response {
    match IMAGES.iter().find(|(p, _, _)| *p == path) {
        Some((_, mime, body)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=86400")], *body).into_response()
        }
        None => AppError::NotFound("file").into_response(),
    }
}
