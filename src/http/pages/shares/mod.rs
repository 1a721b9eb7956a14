//! The recipient's side of a share link: the router of every share endpoint, and the page itself
//! (HTML, or JSON on `Accept: application/json`) with its password form. The file responses,
//! embeds and comments live in the submodules.

mod collection;
pub mod comments;
pub mod embed;
pub mod files;
mod zip;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{check_csrf, csrf_token};
use crate::app::AppState;
use crate::domain::analytics::Kind;
use crate::domain::assets::MediaType;
use crate::domain::shares::{ShareStatus, ShareType, Shared};
use crate::domain::time::rfc3339;
use crate::error::{AppError, ErrorResponse};
use crate::http::extract::{ApiForm, CsrfCookie};
use crate::http::share_access::{
    Refusal, SHARE_COOKIE, ShareRequest, UnlockRefused, capture, notify_access, resolve, unlock as unlock_link,
};
use crate::service::shares::share_url;
use collection::CollectionView;
use comments::{CommentSection, CommentsView, comment_section};
use files::previewable;

/// Every share endpoint, in the order they are documented.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(unlock))
        .routes(routes!(files::download))
        .routes(routes!(files::preview))
        .routes(routes!(files::thumbnail))
        .routes(routes!(files::file_download))
        .routes(routes!(files::file_preview))
        .routes(routes!(files::file_thumbnail))
        .routes(routes!(embed::qr_png))
        .routes(routes!(embed::qr_svg))
        .routes(routes!(embed::embed))
        .routes(routes!(embed::oembed))
        .routes(routes!(comments::beacon))
        .routes(routes!(comments::comments, comments::comment))
        .routes(routes!(comments::file_comments, comments::file_comment))
}

fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

#[derive(Template)]
#[template(path = "shares/gone.html")]
struct GonePage {
    shell: super::Shell,
    reason: &'static str,
    title: &'static str,
}

#[derive(Template)]
#[template(path = "shares/password.html")]
struct PasswordPage {
    shell: super::Shell,
    uuid: String,
    csrf: String,
    error: Option<String>,
}

/// Open Graph / Twitter Card data; protected and private links reveal nothing.
struct Meta {
    title: String,
    description: String,
    image: Option<String>,
    url: String,
    oembed: Option<String>,
}

#[derive(Template)]
#[template(path = "shares/page.html")]
struct SharePage {
    shell: super::Shell,
    meta: Meta,
    title: String,
    description: String,
    file_name: String,
    size: String,
    media: &'static str,
    preview_url: Option<String>,
    download_url: Option<String>,
    expires_at: Option<String>,
    downloads_remaining: Option<i64>,
    allow_comments: bool,
    beacon_url: String,
    /// Comments in thread order, replies indented by `depth`, and their navigation.
    comments: CommentSection,
    comment_action: String,
    /// The comment form's CSRF token (double submit with the CSRF cookie).
    csrf: String,
    /// The signed-in viewer comments under this name; guests give one.
    viewer_name: Option<String>,
    collaborate_url: Option<String>,
    /// The text the document viewer tiles over PDF pages (watermarked links).
    watermark: Option<String>,
    /// The owner's (or an admin's) tools; None for everyone else.
    owner: Option<OwnerPanel>,
}

/// What the owner of a link (or an admin) finds on the link's own page, and no recipient ever
/// does: the QR code, the link to copy, the six social buttons, the embed code, and the way to
/// the link's analytics and settings. Deciding costs a recipient one comparison: the viewer is
/// known already (its own visits are never counted).
pub(super) struct OwnerPanel {
    url: String,
    qr_src: String,
    /// (platform id, its name, the share URL on it), in the order of `social_links`.
    social: Vec<(String, &'static str, String)>,
    embed: String,
    analytics: String,
    settings: String,
    /// An admin looking at someone else's link.
    by_admin: bool,
}

/// The owner panel for `viewer` on `share`'s page: only its owner or an admin gets one.
pub(super) fn owner_panel(
    state: &AppState,
    share: &crate::domain::shares::Share,
    viewer: Option<&crate::domain::users::User>,
) -> Option<OwnerPanel> {
    let v = viewer.filter(|v| v.id == share.owner_id || v.is_admin())?;
    let url = share_url(state, &share.uuid);
    let social = crate::domain::shares::social_links(&state.config.social, &url, &share.title, &share.description)
        .into_iter()
        .filter_map(|(id, href)| {
            let name = match id.as_str() {
                "facebook" => "Facebook",
                "twitter" => "X (Twitter)",
                "linkedin" => "LinkedIn",
                "whatsapp" => "WhatsApp",
                "telegram" => "Telegram",
                "reddit" => "Reddit",
                _ => return None,
            };
            Some((id, name, href.as_str()?.to_string()))
        })
        .collect();
    let settings = match (share.asset_id(), share.collection_id()) {
        (_, Some(c)) => format!("/collections/{c}"),
        (Some(a), _) => format!("/assets/{a}"),
        _ => "/shares".to_string(),
    };
    Some(OwnerPanel {
        qr_src: format!("/share/{}/qr.png", share.uuid),
        embed: crate::service::shares::embed_code(state, &share.uuid),
        analytics: format!("/dashboard/analytics/{}/", share.uuid),
        settings,
        by_admin: v.id != share.owner_id,
        social,
        url,
    })
}

/// Renders a refusal as a page (HTML) or an error (JSON).
fn refusal_response(
    state: &AppState,
    shell: super::Shell,
    req: &ShareRequest,
    r: Refusal,
    json: bool,
    csrf: &CsrfCookie,
) -> Response {
    if json {
        return AppError::from(r).into_response();
    }
    match r {
        Refusal::NotFound => super::error_page(
            StatusCode::NOT_FOUND,
            "Link not found",
            "There is no shared file at this address. Check the link you were sent.",
        ),
        Refusal::Gone(s) => gone_page(shell, s),
        Refusal::NeedPassword => password_page(state, shell, &req.uuid, csrf, None, StatusCode::UNAUTHORIZED),
        Refusal::NeedLogin => Redirect::to(&format!("/login?next=/share/{}/", req.uuid)).into_response(),
        Refusal::NotAllowed => super::error_page(
            StatusCode::FORBIDDEN,
            "Not shared with you",
            "This private link was shared with other accounts. Sign in with the account it was sent to.",
        ),
        Refusal::Failed(e) => e.into_response(),
    }
}

fn gone_page(shell: super::Shell, s: ShareStatus) -> Response {
    let (title, reason) = match s {
        ShareStatus::Expired => ("This link has expired", "expired"),
        ShareStatus::Revoked => ("This link was revoked", "revoked"),
        _ => ("This link's download limit was reached", "download limit reached"),
    };
    let mut r = super::render(&GonePage { shell, reason, title });
    *r.status_mut() = StatusCode::GONE;
    r
}

fn password_page(
    state: &AppState,
    shell: super::Shell,
    uuid: &str,
    csrf: &CsrfCookie,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&PasswordPage { shell, uuid: uuid.to_string(), csrf: token, error });
    *r.status_mut() = status;
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The recipient's view as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedView {
    pub uuid: String,
    pub title: String,
    pub description: String,
    pub share_type: ShareType,
    pub status: ShareStatus,
    /// The shared file (asset links; absent on collection links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<SharedFile>,
    /// The shared collection and its files (collection links; absent on asset links).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<SharedCollection>,
    pub allow_preview: bool,
    pub allow_download: bool,
    pub allow_comments: bool,
    pub preview_url: Option<String>,
    pub download_url: Option<String>,
    pub expires_at: Option<String>,
    pub downloads_remaining: Option<i64>,
}

/// A collection as its link shows it (SPEC §10).
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedCollection {
    pub title: String,
    pub item_count: i64,
    pub total_size: i64,
    pub items: Vec<SharedItem>,
}

/// One file of a shared collection; the URLs are the link's own (with its token on a protected
/// link opened with `?token=`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedItem {
    pub asset_id: i64,
    pub name: String,
    pub mime_type: String,
    pub media_type: MediaType,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Null unless the link allows previews and the file has a thumbnail.
    pub thumbnail_url: Option<String>,
    /// Null unless the link allows previews and the file can play inline.
    pub preview_url: Option<String>,
    /// Null unless the link allows downloads.
    pub download_url: Option<String>,
    /// The file's comments (list and post); null unless the link allows comments.
    pub comments_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SharedFile {
    pub name: String,
    pub mime_type: String,
    pub media_type: MediaType,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_seconds: Option<f64>,
}

/// The page a recipient opens (HTML; JSON with `Accept: application/json`).
#[utoipa::path(get, path = "/share/{uuid}", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token from unlock"),
        ("page" = Option<u32>, Query, description = "comments: page of threads (newest first), or of the thread's comments"),
        ("thread" = Option<i64>, Query, description = "comments: show this thread whole")),
    responses((status = 200, body = SharedView, description = "the shared file (HTML or JSON)"), (status = 401, description = "password form / login required", body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 410, description = "expired, revoked or download limit reached", body = ErrorResponse)))]
pub async fn page(
    State(state): State<AppState>,
    req: ShareRequest,
    shell: super::Shell,
    csrf: CsrfCookie,
    method: Method,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let view = CommentsView::parse(query.as_deref());
    let json = wants_json(&req.headers);
    let access = match resolve(&state, &req).await {
        Ok(a) => a,
        Err(r) => return refusal_response(&state, shell, &req, r, json, &csrf),
    };
    if access.status == ShareStatus::Exhausted {
        return refusal_response(&state, shell, &req, Refusal::Gone(ShareStatus::Exhausted), json, &csrf);
    }
    if method != Method::HEAD {
        if access.counts {
            state.views.add(access.share.id);
        }
        capture(&state, &req, &access, Kind::View);
        notify_access(&state, &req, &access);
    }
    let base = state.config.base_url();
    let uuid = &access.share.uuid;
    // A link token given in the URL must follow the preview and download links.
    let token_query = match (&req.link_token, access.share.share_type) {
        (Some(t), ShareType::Protected) if !access.is_owner => format!("?token={t}"),
        _ => String::new(),
    };
    let share = &access.share;
    let asset = match access.shared() {
        Shared::Asset(a) => a,
        Shared::Collection { collection, items } => {
            let c = CollectionView { access: &access, collection, items, base, token_query: &token_query };
            let owner = owner_panel(&state, &access.share, req.viewer.as_ref());
            if json {
                return c.json();
            }
            // `?file=ID`: the comments of that file of the collection, under the grid.
            let mut comments = None;
            if let Some(file) = view.file().and_then(|id| access.shared().item(id)).filter(|_| share.allow_comments) {
                let token = (!token_query.is_empty()).then_some(req.link_token.as_deref()).flatten();
                match comment_section(&state, file.id, uuid, token, Some(file.id), &view).await {
                    Ok(section) => comments = Some(collection::FileComments::new(&c, file, section)),
                    Err(e) => tracing::warn!(error = %e, "could not read the comments of a shared file"),
                }
            }
            let viewer_name = req.viewer.as_ref().map(|u| u.name.clone());
            return c.html(&state, shell, files::watermark_for(&state, &req, &access), owner, comments, viewer_name);
        }
    };
    let preview_url = previewable(&access).then(|| format!("{base}/share/{uuid}/preview{token_query}"));
    let download_url = share.allow_download.then(|| format!("{base}/share/{uuid}/download{token_query}"));
    if json {
        let view = SharedView {
            uuid: uuid.clone(),
            title: share.title.clone(),
            description: share.description.clone(),
            share_type: share.share_type,
            status: access.status,
            file: Some(SharedFile {
                name: asset.name.clone(),
                mime_type: asset.mime_type.clone(),
                media_type: asset.media_type,
                size: asset.size,
                width: asset.width,
                height: asset.height,
                duration_seconds: asset.duration_seconds,
            }),
            collection: None,
            allow_preview: share.allow_preview,
            allow_download: share.allow_download,
            allow_comments: share.allow_comments,
            preview_url,
            download_url,
            expires_at: share.expires_at.map(rfc3339),
            downloads_remaining: share.downloads_remaining(),
        };
        return private_json(&view);
    }
    let open = share.share_type.is_open();
    let meta = if open {
        Meta {
            title: share.title.clone(),
            description: if share.description.is_empty() {
                format!("{} shared with Vitrine", asset.name)
            } else {
                share.description.clone()
            },
            image: (share.allow_preview && asset.thumb_key.is_some()).then(|| format!("{base}/share/{uuid}/thumb")),
            url: share_url(&state, uuid),
            oembed: Some(format!(
                "{base}/oembed?format=json&url={}",
                crate::domain::shares::encode(&share_url(&state, uuid))
            )),
        }
    } else {
        Meta {
            title: if share.share_type == ShareType::Protected {
                "Protected file".into()
            } else {
                "Private file".into()
            },
            description: "A file shared with Vitrine".into(),
            image: None,
            url: share_url(&state, uuid),
            oembed: None,
        }
    };
    let media = crate::domain::assets::preview_kind(asset);
    let mut comments = CommentSection::default();
    if share.allow_comments {
        let token = (!token_query.is_empty()).then_some(req.link_token.as_deref()).flatten();
        match comment_section(&state, asset.id, uuid, token, None, &view).await {
            Ok(section) => comments = section,
            Err(e) => tracing::warn!(error = %e, "could not read the comments of a shared file"),
        }
    }
    let collaborate_url = match (share.allow_collaboration, &req.viewer) {
        (true, Some(_)) => Some(format!("/collaborate/{uuid}/")),
        _ => None,
    };
    let (csrf_value, set_csrf) = csrf_token(&csrf, state.config.secure_cookies());
    let mut r = super::render(&SharePage {
        shell,
        meta,
        title: share.title.clone(),
        description: share.description.clone(),
        file_name: asset.name.clone(),
        size: super::human_size(asset.size),
        media,
        preview_url,
        download_url,
        expires_at: share.expires_at.map(rfc3339),
        downloads_remaining: share.downloads_remaining(),
        allow_comments: share.allow_comments,
        beacon_url: format!("/share/{uuid}/beacon{token_query}"),
        comments,
        comment_action: format!("/share/{uuid}/comments{token_query}"),
        csrf: csrf_value,
        viewer_name: req.viewer.as_ref().map(|u| u.name.clone()),
        collaborate_url,
        watermark: files::watermark_for(&state, &req, &access),
        owner: owner_panel(&state, share, req.viewer.as_ref()),
    });
    if let Some(c) = set_csrf {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie, Authorization"));
    r
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UnlockForm {
    pub password: Option<String>,
    pub csrf_token: Option<String>,
}

/// The password form: a right password sets a cookie scoped to this link; a wrong one shows the
/// same form with an error; after repeated failures the IP is locked out (429).
#[utoipa::path(post, path = "/share/{uuid}/unlock", tag = "share links", request_body(content = UnlockForm, content_type = "application/x-www-form-urlencoded"),
    params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 303, description = "unlocked: back to the link"), (status = 401, description = "wrong password: the form again", content_type = "text/html"),
        (status = 403, description = "CSRF check failed: the form again", content_type = "text/html"), (status = 404, body = ErrorResponse),
        (status = 410, description = "expired or revoked link", content_type = "text/html"), (status = 429, description = "locked out")))]
pub async fn unlock(
    State(state): State<AppState>,
    req: ShareRequest,
    shell: super::Shell,
    csrf: CsrfCookie,
    ApiForm(form): ApiForm<UnlockForm>,
) -> Response {
    if let Err(e) = check_csrf(&csrf, form.csrf_token.as_deref()) {
        return password_page(&state, shell, &req.uuid, &csrf, Some(e.public_message()), StatusCode::FORBIDDEN);
    }
    let password = form.password.unwrap_or_default();
    match unlock_link(&state, &req, &password).await {
        Ok((token, ttl)) => {
            let c = Cookie::build((SHARE_COOKIE, token))
                .path(format!("/share/{}", req.uuid))
                .http_only(true)
                .secure(state.config.secure_cookies())
                .same_site(SameSite::Lax)
                .max_age(cookie::time::Duration::seconds(ttl as i64))
                .build();
            let mut r = Redirect::to(&format!("/share/{}/", req.uuid)).into_response();
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(UnlockRefused::RateLimited(retry_after_secs) | UnlockRefused::LockedOut(retry_after_secs)) => {
            let mins = retry_after_secs.div_ceil(60);
            let mut r = password_page(
                &state,
                shell,
                &req.uuid,
                &csrf,
                Some(format!("Too many attempts. Try again in {mins} minute{}.", if mins == 1 { "" } else { "s" })),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        Err(UnlockRefused::WrongPassword) => password_page(
            &state,
            shell,
            &req.uuid,
            &csrf,
            Some("Wrong password. Try again.".into()),
            StatusCode::UNAUTHORIZED,
        ),
        Err(UnlockRefused::NotFound) => refusal_response(&state, shell, &req, Refusal::NotFound, false, &csrf),
        Err(UnlockRefused::Expired) => gone_page(shell, ShareStatus::Expired),
        Err(UnlockRefused::Revoked) => gone_page(shell, ShareStatus::Revoked),
        Err(r) => AppError::from(r).into_response(),
    }
}

/// A recipient's JSON answer: never cached, varies with who asks.
fn private_json<T: Serialize>(view: &T) -> Response {
    let mut r = axum::Json(view).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie, Authorization"));
    r
}
