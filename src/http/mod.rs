//! The URL space: `router()` merges every feature router; shared layers live here.

pub mod api;
pub mod conn;
pub mod errors;
pub mod extract;
pub mod files;
pub mod openapi;
pub mod pages;
pub mod scopes;
pub mod share_access;
pub mod upload;
pub mod ws;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::Layer;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::AppError;

/// Largest JSON or form body accepted (defined next to the error that names it).
pub use crate::error::JSON_BODY_LIMIT;

/// Every feature's routes with their documentation, one router each.
pub fn feature_routers() -> Vec<OpenApiRouter<AppState>> {
    vec![
        api::auth::router(),
        api::tokens::router(),
        api::admin::router(),
        api::policies::router(),
        api::audit::router(),
        api::assets::router(),
        api::collections::router(),
        api::uploads::router(),
        api::shares::router(),
        api::analytics::router(),
        api::notifications::router(),
        api::comments::router(),
        api::collaboration::router(),
        api::chat::router(),
        api::gallery::router(),
        api::file_requests::router(),
        api::file_request_tus::router(),
        api::webhooks::router(),
        pages::shares::router(),
        pages::collaboration::router(),
        pages::library::router(),
        pages::collections::router(),
        pages::analytics::router(),
        pages::audit::router(),
        pages::chat::router(),
        pages::gallery::router(),
        pages::file_requests::router(),
        pages::tokens::router(),
        pages::policies::router(),
        pages::webhooks::router(),
        api::ops::router(),
        files::router(),
        pages::auth::router(),
        pages::oidc::router(),
        pages::home::router(),
    ]
}

/// The documented routes, and the document built from the same declarations.
fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let merged = feature_routers()
        .into_iter()
        .fold(OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()), |all, r| all.merge(r));
    let (routes, mut doc) = merged.split_for_parts();
    openapi::complete(&mut doc);
    (routes, doc)
}

/// The OpenAPI document served at `/api/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented_routes().1
}

/// Every route of the app, and the OpenAPI document built from the same declarations.
pub fn router(state: AppState) -> Router {
    let (routes, openapi) = documented_routes();
    let docs = utoipa_swagger_ui::SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi);
    let inner = routes
        .merge(pages::static_files::router())
        .merge(docs)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), scopes::enforce))
        .layer(middleware::from_fn(errors::refuse_undecodable_paths))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            AppError::internal(anyhow::anyhow!("a handler panicked")).into_response()
        }))
        .layer(middleware::from_fn_with_state(state.clone(), pages::shell::frame))
        .with_state(state);
    // tower-http's CORS layer answers every OPTIONS itself; a plain OPTIONS (no
    // Access-Control-Request-Method: not a browser's preflight) goes to the routes, where tus
    // clients ask for the server's capabilities (`api::uploads::options`).
    let with_cors = inner.clone().layer(cors());
    let steer = tower::service_fn(move |req: Request| {
        let preflight =
            req.method() != Method::OPTIONS || req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let svc = if preflight { with_cors.clone() } else { inner.clone() };
        tower::ServiceExt::oneshot(svc, req)
    });
    Router::new().fallback_service(steer).layer(TraceLayer::new_for_http())
}

/// The API authenticates with Bearer tokens only (never ambient cookies), so any origin may call
/// it: the share widget works from any page. Credentialed (cookie) requests are not allowed.
fn cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::HEAD])
        .allow_headers(
            [header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE, header::ACCEPT]
                .into_iter()
                .chain(api::uploads::REQUEST_HEADERS)
                .collect::<Vec<_>>(),
        )
        .expose_headers(
            [header::CONTENT_RANGE, header::CONTENT_DISPOSITION, header::RETRY_AFTER]
                .into_iter()
                .chain(api::uploads::RESPONSE_HEADERS)
                .collect::<Vec<_>>(),
        )
        .max_age(std::time::Duration::from_secs(3600))
}

/// The router behind the path normaliser: every path answers with and without its trailing slash.
pub fn service(state: AppState) -> tower::util::MapRequest<Router, fn(Request) -> Request> {
    MapRequestLayer::new(normalize_path as fn(Request) -> Request).layer(router(state))
}

/// Drops one trailing slash so that routes are declared once (SPEC §0). The interactive docs keep
/// theirs: they redirect `/api/docs` to `/api/docs/`.
fn normalize_path(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') && !path.starts_with("/api/docs") {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let new = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = new.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

async fn not_found(req: Request) -> Response {
    if errors::wants_html(req.uri().path(), req.headers().get(header::ACCEPT)) {
        return pages::error_page(StatusCode::NOT_FOUND, "Not found", "There is nothing at this address.");
    }
    AppError::NotFound("page").into_response()
}

async fn method_not_allowed() -> Response {
    AppError::MethodNotAllowed.into_response()
}

/// Counts and times every request by route, method and status.
async fn observe(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let labels = [("method", method_label(&method)), ("route", route), ("status", resp.status().as_u16().to_string())];
    metrics::counter!("vitrine_http_requests_total", &labels).increment(1);
    metrics::histogram!("vitrine_http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    resp
}

/// The standard methods by name, anything else as `other`: a label never takes a value the
/// client chose, so `/metrics` stays bounded (issue 18, item 8).
fn method_label(m: &Method) -> String {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(m) { m.as_str() } else { "other" }.to_string()
}

/// Headers every response carries; pages may never be framed (the embed page will opt out).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    // A response that sets its own policy (files, the embed page) also decides about framing.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    }
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ));
    resp
}

/// Helper for handlers that answer with an empty body and a status.
pub fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}
