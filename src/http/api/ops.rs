//! Operations: liveness, readiness (database, storage and its free space, bus), Prometheus metrics.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::same;
use crate::error::AppError;
use crate::http::extract::bearer_in;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    pub storage: &'static str,
    pub bus: &'static str,
}

/// Database, storage and event bus answer. `storage` is `ok`, `unavailable`, or `full` when the
/// local blob store's filesystem has less than `storage_min_free_bytes` free (uploads would get 507).
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (db, storage, free) = tokio::join!(state.store.ping(), state.blobs.ping(), state.blobs.free_bytes());
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database unavailable");
    }
    if let Err(e) = &storage {
        tracing::warn!(error = %e, "readiness: storage unavailable");
    }
    let full = match free {
        Some(Ok(free)) => {
            metrics::gauge!("vitrine_storage_free_bytes").set(free as f64);
            let full = free < state.config.storage_min_free_bytes;
            if full {
                tracing::warn!(free, min = state.config.storage_min_free_bytes, "readiness: storage is full");
            }
            full
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "readiness: cannot measure the free space of the blob store");
            false
        }
        None => false,
    };
    // A shared bus that is down leaves this instance counting limits alone: not ready (SPEC §9).
    let bus = state.rooms.bus().connected();
    if !bus {
        tracing::warn!("readiness: the bus is unreachable");
    }
    let ready = db.is_ok() && storage.is_ok() && !full && bus;
    let storage_word = if storage.is_err() {
        "unavailable"
    } else if full {
        "full"
    } else {
        "ok"
    };
    let body = Readiness { status: word(ready), database: word(db.is_ok()), storage: storage_word, bus: word(bus) };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text exposition. Anonymous scrapers see the series that name no tenant; with
/// `Authorization: Bearer <metrics_token>` (when configured) the per-tenant series too.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain"),
        (status = 401, description = "wrong metrics token", body = crate::error::ErrorResponse)))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let with_tenants = match (bearer_in(&headers), state.config.metrics_token.as_deref()) {
        (None, _) | (Some(_), None) => false,
        (Some(given), Some(expected)) if same(given, expected.trim()) => true,
        // A scraper that sends a token expects to be checked: a wrong one is not silently anonymous.
        (Some(_), Some(_)) => {
            return AppError::Unauthenticated("the metrics token is not valid".into()).into_response();
        }
    };
    metrics::gauge!("vitrine_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    let mut text = state.metrics.render();
    if with_tenants {
        text.push_str(&crate::app::render_tenant_metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
