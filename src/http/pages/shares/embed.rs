//! What other sites show of a share link: QR codes (PNG, SVG), the embeddable player and oEmbed.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::files::previewable;
use crate::app::AppState;
use crate::domain::analytics::Kind;
use crate::domain::shares::{ShareStatus, ShareTarget, Shared};
use crate::error::{AppError, ErrorResponse};
use crate::http::extract::ApiQuery;
use crate::http::pages::render;
use crate::http::share_access::{Refusal, ShareRequest, capture, resolve};
use crate::service::shares::{embed_code, share_url};

#[derive(Debug, Deserialize, IntoParams)]
pub struct QrQuery {
    /// Width in pixels, 64..2048 (default 300).
    pub size: Option<String>,
}

pub fn qr_size(q: &QrQuery) -> Result<u32, AppError> {
    match q.size.as_deref() {
        None | Some("") => Ok(crate::qr::DEFAULT_SIZE),
        Some(s) => {
            s.parse::<u32>().ok().filter(|n| (crate::qr::MIN_SIZE..=crate::qr::MAX_SIZE).contains(n)).ok_or_else(|| {
                AppError::validation(
                    "size",
                    format!("must be a whole number from {} to {}", crate::qr::MIN_SIZE, crate::qr::MAX_SIZE),
                )
            })
        }
    }
}

/// The link must exist and not be revoked; a QR code only encodes its URL.
async fn qr_target(state: &AppState, uuid: &str) -> Result<String, AppError> {
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(AppError::NotFound("share"));
    }
    let share = state.store.share_by_uuid(uuid).await?.ok_or(AppError::NotFound("share"))?;
    if share.revoked_at.is_some() {
        return Err(Refusal::Gone(ShareStatus::Revoked).into());
    }
    Ok(share_url(state, uuid))
}

fn qr_response(body: Vec<u8>, mime: &'static str) -> Response {
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}

/// QR code (PNG) of the share URL.
#[utoipa::path(get, path = "/share/{uuid}/qr.png", tag = "share links", params(("uuid" = String, Path, description = "share uuid"), QrQuery),
    responses((status = 200, description = "PNG", content_type = "image/png"), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, description = "the link was revoked", body = ErrorResponse)))]
pub async fn qr_png(
    State(state): State<AppState>,
    axum::extract::Path(uuid): axum::extract::Path<String>,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> Result<Response, AppError> {
    let size = qr_size(&q)?;
    let url = qr_target(&state, &uuid).await?;
    let png = tokio::task::spawn_blocking(move || crate::qr::png(&url, size)).await.map_err(AppError::internal)??;
    Ok(qr_response(png, "image/png"))
}

/// QR code (SVG) of the share URL.
#[utoipa::path(get, path = "/share/{uuid}/qr.svg", tag = "share links", params(("uuid" = String, Path, description = "share uuid"), QrQuery),
    responses((status = 200, description = "SVG", content_type = "image/svg+xml"), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, description = "the link was revoked", body = ErrorResponse)))]
pub async fn qr_svg(
    State(state): State<AppState>,
    axum::extract::Path(uuid): axum::extract::Path<String>,
    ApiQuery(q): ApiQuery<QrQuery>,
) -> Result<Response, AppError> {
    let size = qr_size(&q)?;
    let url = qr_target(&state, &uuid).await?;
    Ok(qr_response(crate::qr::svg(&url, size)?.into_bytes(), "image/svg+xml"))
}

#[derive(Template)]
#[template(path = "shares/embed.html")]
struct EmbedPage {
    title: String,
    media: &'static str,
    preview_url: Option<String>,
    open_url: String,
    message: Option<&'static str>,
}

/// A minimal player meant for the iframe of `embed_code`; the one page that may be framed.
#[utoipa::path(get, path = "/embed/{uuid}", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, description = "HTML player", content_type = "text/html"), (status = 404), (status = 410)))]
pub async fn embed(State(state): State<AppState>, req: ShareRequest) -> Response {
    let open_url = share_url(&state, &req.uuid);
    let (status, page) = match resolve(&state, &req).await {
        Ok(a) if a.status == ShareStatus::Active => {
            if a.counts {
                state.views.add(a.share.id);
            }
            capture(&state, &req, &a, Kind::View);
            match a.shared() {
                Shared::Asset(asset) => {
                    let media = crate::domain::assets::preview_kind(asset);
                    let preview_url =
                        previewable(&a).then(|| format!("{}/share/{}/preview", state.config.base_url(), a.share.uuid));
                    (
                        StatusCode::OK,
                        EmbedPage { title: a.share.title.clone(), media, preview_url, open_url, message: None },
                    )
                }
                // A collection embeds as a card that opens its page (the grid needs the room).
                Shared::Collection { items, .. } => (
                    StatusCode::OK,
                    EmbedPage {
                        title: a.share.title.clone(),
                        media: "file",
                        preview_url: None,
                        open_url,
                        message: Some(if items.len() == 1 { "1 file" } else { "A collection of files" }),
                    },
                ),
            }
        }
        Ok(_) | Err(Refusal::Gone(_)) => (
            StatusCode::GONE,
            EmbedPage {
                title: "Unavailable".into(),
                media: "file",
                preview_url: None,
                open_url,
                message: Some("This link is no longer available."),
            },
        ),
        Err(Refusal::NeedPassword | Refusal::NeedLogin | Refusal::NotAllowed) => (
            StatusCode::OK,
            EmbedPage {
                title: "Shared file".into(),
                media: "file",
                preview_url: None,
                open_url,
                message: Some("Open the link to view this file."),
            },
        ),
        Err(Refusal::NotFound) => (
            StatusCode::NOT_FOUND,
            EmbedPage {
                title: "Not found".into(),
                media: "file",
                preview_url: None,
                open_url,
                message: Some("This link does not exist."),
            },
        ),
        Err(Refusal::Failed(e)) => return e.into_response(),
    };
    let mut r = render(&page);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self' 'unsafe-inline'; frame-src 'self'; frame-ancestors *"),
    );
    r
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct OembedQuery {
    /// A share URL of this server.
    pub url: Option<String>,
    /// Only `json` is implemented.
    pub format: Option<String>,
    pub maxwidth: Option<String>,
    pub maxheight: Option<String>,
}

/// oEmbed 1.0 response (`type: rich`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Oembed {
    pub version: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub provider_name: &'static str,
    pub provider_url: String,
    pub title: String,
    pub html: String,
    pub width: u32,
    pub height: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_height: Option<i64>,
    pub cache_age: u64,
}

/// oEmbed for share URLs (JSON only; `format=xml` is 501 as the spec says).
#[utoipa::path(get, path = "/oembed", tag = "share links", params(OembedQuery),
    responses((status = 200, body = Oembed), (status = 400, body = ErrorResponse), (status = 401, description = "protected or private link", body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 501, description = "format not implemented")))]
pub async fn oembed(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OembedQuery>,
) -> Result<axum::Json<Oembed>, AppError> {
    oembed_inner(&state, q).await.map(axum::Json)
}

async fn oembed_inner(state: &AppState, q: OembedQuery) -> Result<Oembed, AppError> {
    match q.format.as_deref() {
        None | Some("json") => {}
        Some(_) => return Err(AppError::UnsupportedFormat("only format=json is implemented".into())),
    }
    let url = q.url.ok_or_else(|| AppError::validation("url", "is required"))?;
    let prefix = format!("{}/share/", state.config.base_url());
    let uuid = url
        .strip_prefix(&prefix)
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .filter(|u| uuid::Uuid::parse_str(u).is_ok())
        .ok_or(AppError::NotFound("share"))?
        .to_string();
    let dim = |v: Option<String>, name: &str, default: u32| -> Result<u32, AppError> {
        match v {
            None => Ok(default),
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| AppError::validation(name, "must be a positive whole number")),
        }
    };
    let width = 600.min(dim(q.maxwidth, "maxwidth", 600)?);
    let height = 400.min(dim(q.maxheight, "maxheight", 400)?);
    let share = state.store.share_by_uuid(&uuid).await?.ok_or(AppError::NotFound("share"))?;
    if share.status(state.clock.now_ms()) != ShareStatus::Active {
        return Err(AppError::NotFound("share"));
    }
    if !share.share_type.is_open() {
        return Err(AppError::Unauthenticated("this link is not public".into()));
    }
    let base = state.config.base_url();
    // A collection shows its first file that has a thumbnail.
    let (asset, thumb_path) = match share.target {
        ShareTarget::Asset(id) => {
            (Some(state.store.asset(id).await?.ok_or(AppError::NotFound("share"))?), "thumb".to_string())
        }
        ShareTarget::Collection(id) => {
            let items = state.store.collection_items(id).await?;
            let first = items.into_iter().map(|i| i.asset).find(|a| a.thumb_key.is_some());
            let path = first.as_ref().map(|a| format!("files/{}/thumbnail", a.id)).unwrap_or_default();
            (first, path)
        }
    };
    let thumb = asset
        .as_ref()
        .filter(|a| share.allow_preview && a.thumb_key.is_some())
        .map(|_| format!("{base}/share/{uuid}/{thumb_path}"));
    let (width_px, height_px) = asset.as_ref().map_or((None, None), |a| (a.width, a.height));
    let (tw, th) = match (width_px, height_px) {
        (Some(w), Some(h)) if w > 0 && h > 0 => {
            let scale = (crate::media::THUMB_MAX as f64 / w.max(h) as f64).min(1.0);
            (Some((w as f64 * scale).round() as i64), Some((h as f64 * scale).round() as i64))
        }
        _ => (None, None),
    };
    let html = embed_code(state, &uuid)
        .replace("width='600'", &format!("width='{width}'"))
        .replace("height='400'", &format!("height='{height}'"));
    Ok(Oembed {
        version: "1.0",
        kind: "rich",
        provider_name: "Vitrine",
        provider_url: base.to_string(),
        title: share.title.clone(),
        html,
        width,
        height,
        thumbnail_width: thumb.as_ref().and(tw),
        thumbnail_height: thumb.as_ref().and(th),
        thumbnail_url: thumb,
        cache_age: 300,
    })
}
