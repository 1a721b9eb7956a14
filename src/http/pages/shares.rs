//! The recipient's side of a share link: the page (HTML, or JSON on `Accept: application/json`),
//! password form, preview, counted download, QR codes, the embeddable player and oEmbed.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{check_csrf, csrf_token};
use crate::analytics::Kind;
use crate::app::AppState;
use crate::blob::Disposition;
use crate::domain::assets::MediaType;
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::shares::{ShareStatus, ShareType};
use crate::domain::time::{now_ms, rfc3339};
use crate::error::{AppError, ErrorCode, ErrorResponse};
use crate::http::extract::{ApiForm, ApiQuery, CsrfCookie};
use crate::http::files::{FileInfo, safe_inline, serve};
use crate::http::share_access::{
    Access, Refusal, SHARE_COOKIE, ShareRequest, capture, capture_with, notify_access, resolve, unlock as unlock_link,
};
use crate::service::shares::{embed_code, share_url};
use crate::store::shares::Reservation;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(unlock))
        .routes(routes!(download))
        .routes(routes!(preview))
        .routes(routes!(thumbnail))
        .routes(routes!(qr_png))
        .routes(routes!(qr_svg))
        .routes(routes!(embed))
        .routes(routes!(oembed))
        .routes(routes!(beacon))
        .routes(routes!(comments, comment))
}

/// What the page's `navigator.sendBeacon` reports.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BeaconIn {
    pub time_on_page_ms: Option<f64>,
    pub load_ms: Option<f64>,
}

/// Engagement from the share page: time on page and load time (sent as text by sendBeacon).
#[utoipa::path(post, path = "/share/{uuid}/beacon", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    request_body(content = BeaconIn, content_type = "text/plain"),
    responses((status = 204, description = "recorded"), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 413, body = ErrorResponse)))]
pub async fn beacon(
    State(state): State<AppState>,
    req: ShareRequest,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    if body.len() > 2048 {
        return Err(AppError::TooLarge { limit: 2048 });
    }
    let b: BeaconIn = serde_json::from_slice(&body)
        .map_err(|_| AppError::bad_request(ErrorCode::MalformedJson, "the beacon is not valid JSON"))?;
    // Bounded, whole milliseconds: a day on the page at most, load times up to ten minutes.
    let clamp =
        |v: Option<f64>, max: f64| v.filter(|x| x.is_finite() && *x >= 0.0 && *x <= max).map(|x| x.round() as i64);
    let time = clamp(b.time_on_page_ms, 86_400_000.0);
    let load = clamp(b.load_ms, 600_000.0);
    let access = resolve(&state, &req).await?;
    if time.is_some() || load.is_some() {
        capture_with(&state, &req, &access, Kind::Engagement, time, load);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

#[derive(Template)]
#[template(path = "shares/gone.html")]
struct GonePage {
    reason: &'static str,
    title: &'static str,
}

#[derive(Template)]
#[template(path = "shares/password.html")]
struct PasswordPage {
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
}

/// One line of the share page's comment list: a comment, or the link to the rest of a thread
/// whose replies do not all fit on the list page.
struct CommentRow {
    /// `(hidden replies, thread URL)` on a link line.
    more: Option<(usize, String)>,
    id: i64,
    depth: usize,
    author: String,
    is_guest: bool,
    content: String,
    timestamp: Option<String>,
    created_at: String,
    resolved: bool,
}

fn comment_rows(trees: &[crate::domain::comments::CommentOut], depth: usize, out: &mut Vec<CommentRow>) {
    for c in trees {
        out.push(CommentRow {
            more: None,
            id: c.id,
            depth: depth.min(6),
            author: c.author.name.clone(),
            is_guest: c.author.is_guest,
            content: c.content.clone(),
            timestamp: c.timestamp.clone(),
            created_at: c.created_at.clone(),
            resolved: c.resolved,
        });
        comment_rows(&c.replies, depth + 1, out);
    }
}

/// Threads on one page of the share page's comments (the page stays small whatever the count).
const THREADS_PER_PAGE: u32 = 20;
/// Replies shown under a thread on the list; the rest is behind the thread's own page.
const REPLIES_SHOWN: usize = 5;
/// Comments on one page of a single thread.
const THREAD_ROWS_PER_PAGE: usize = 50;

/// Which comments the share page shows: `?page=N` pages through the threads, newest first;
/// `?thread=ID` shows one thread whole, `page` then paging through its comments. A value that is
/// not a page number shows the first page.
#[derive(Debug, Default)]
pub struct CommentsView {
    page: Option<String>,
    thread: Option<String>,
}

impl CommentsView {
    /// Leniently: the page itself never fails on a bad navigation parameter.
    fn parse(query: Option<&str>) -> CommentsView {
        let mut view = CommentsView::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "page" => view.page = Some(v.into_owned()),
                "thread" => view.thread = Some(v.into_owned()),
                _ => {}
            }
        }
        view
    }
}

/// The comment list of the share page and its navigation.
#[derive(Default)]
struct CommentSection {
    rows: Vec<CommentRow>,
    /// Threads in all (list view).
    threads: i64,
    older_url: Option<String>,
    newer_url: Option<String>,
    /// In the thread view: back to every thread.
    all_url: Option<String>,
    /// The thread view found no such thread.
    missing_thread: bool,
}

/// `/share/{uuid}/` with the link token (when it must follow) and `pairs`, anchored at the comments.
fn comments_url(uuid: &str, token: Option<&str>, pairs: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(t) = token {
        q.append_pair("token", t);
    }
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() { format!("/share/{uuid}/#comments") } else { format!("/share/{uuid}/?{q}#comments") }
}

async fn comment_section(
    state: &AppState,
    asset_id: i64,
    uuid: &str,
    token: Option<&str>,
    view: &CommentsView,
) -> anyhow::Result<CommentSection> {
    use crate::domain::comments::build_trees;
    let page = view
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1);
    let mut out = CommentSection::default();
    if let Some(thread) = &view.thread {
        out.all_url = Some(comments_url(uuid, token, &[]));
        let list = match thread.trim().parse::<i64>() {
            Ok(id) => state.store.comment_thread(asset_id, id).await?,
            Err(_) => Vec::new(),
        };
        if list.is_empty() {
            out.missing_thread = true;
            return Ok(out);
        }
        let mut rows = Vec::new();
        comment_rows(&build_trees(&list), 0, &mut rows);
        let start = (page as usize - 1).saturating_mul(THREAD_ROWS_PER_PAGE);
        let thread_page =
            |p: u32| comments_url(uuid, token, &[("thread", thread.trim().to_string()), ("page", p.to_string())]);
        if start + THREAD_ROWS_PER_PAGE < rows.len() {
            out.older_url = Some(thread_page(page + 1));
        }
        if page > 1 {
            out.newer_url = Some(thread_page(page - 1));
        }
        out.rows = rows.into_iter().skip(start).take(THREAD_ROWS_PER_PAGE).collect();
        return Ok(out);
    }
    let req = PageRequest { page, page_size: THREADS_PER_PAGE };
    let (list, count) = state.store.comment_threads(asset_id, req).await?;
    out.threads = count;
    for tree in build_trees(&list).iter().rev() {
        let mut rows = Vec::new();
        comment_rows(std::slice::from_ref(tree), 0, &mut rows);
        let hidden = rows.len().saturating_sub(1 + REPLIES_SHOWN);
        out.rows.extend(rows.into_iter().take(1 + REPLIES_SHOWN));
        if hidden > 0 {
            let url = comments_url(uuid, token, &[("thread", tree.id.to_string())]);
            out.rows.push(CommentRow {
                more: Some((hidden, url)),
                id: tree.id,
                depth: 1,
                author: String::new(),
                is_guest: false,
                content: String::new(),
                timestamp: None,
                created_at: String::new(),
                resolved: false,
            });
        }
    }
    if (req.offset() + req.limit()) < count {
        out.older_url = Some(comments_url(uuid, token, &[("page", (page + 1).to_string())]));
    }
    if page > 1 {
        out.newer_url = Some(comments_url(uuid, token, &[("page", (page - 1).to_string())]));
    }
    Ok(out)
}

/// Renders a refusal as a page (HTML) or an error (JSON).
fn refusal_response(state: &AppState, req: &ShareRequest, r: Refusal, json: bool, csrf: &CsrfCookie) -> Response {
    if json {
        return AppError::from(r).into_response();
    }
    match r {
        Refusal::NotFound => super::error_page(
            StatusCode::NOT_FOUND,
            "Link not found",
            "There is no shared file at this address. Check the link you were sent.",
        ),
        Refusal::Gone(s) => gone_page(s),
        Refusal::NeedPassword => password_page(state, &req.uuid, csrf, None, StatusCode::UNAUTHORIZED),
        Refusal::NeedLogin => Redirect::to(&format!("/login?next=/share/{}/", req.uuid)).into_response(),
        Refusal::NotAllowed => super::error_page(
            StatusCode::FORBIDDEN,
            "Not shared with you",
            "This private link was shared with other accounts. Sign in with the account it was sent to.",
        ),
        Refusal::Failed(e) => e.into_response(),
    }
}

fn gone_page(s: ShareStatus) -> Response {
    let (title, reason) = match s {
        ShareStatus::Expired => ("This link has expired", "expired"),
        ShareStatus::Revoked => ("This link was revoked", "revoked"),
        _ => ("This link's download limit was reached", "download limit reached"),
    };
    let mut r = super::render(&GonePage { reason, title });
    *r.status_mut() = StatusCode::GONE;
    r
}

fn password_page(
    state: &AppState,
    uuid: &str,
    csrf: &CsrfCookie,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let (token, set) = csrf_token(csrf, state.config.secure_cookies());
    let mut r = super::render(&PasswordPage { uuid: uuid.to_string(), csrf: token, error });
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
    pub file: SharedFile,
    pub allow_preview: bool,
    pub allow_download: bool,
    pub allow_comments: bool,
    pub preview_url: Option<String>,
    pub download_url: Option<String>,
    pub expires_at: Option<String>,
    pub downloads_remaining: Option<i64>,
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

fn previewable(a: &Access) -> bool {
    a.share.allow_preview && safe_inline(&a.asset.mime_type)
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
    csrf: CsrfCookie,
    method: Method,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let view = CommentsView::parse(query.as_deref());
    let json = wants_json(&req.headers);
    let access = match resolve(&state, &req).await {
        Ok(a) => a,
        Err(r) => return refusal_response(&state, &req, r, json, &csrf),
    };
    if access.status == ShareStatus::Exhausted {
        return refusal_response(&state, &req, Refusal::Gone(ShareStatus::Exhausted), json, &csrf);
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
    let preview_url = previewable(&access).then(|| format!("{base}/share/{uuid}/preview{token_query}"));
    let download_url = access.share.allow_download.then(|| format!("{base}/share/{uuid}/download{token_query}"));
    let share = &access.share;
    let asset = &access.asset;
    if json {
        let view = SharedView {
            uuid: uuid.clone(),
            title: share.title.clone(),
            description: share.description.clone(),
            share_type: share.share_type,
            status: access.status,
            file: SharedFile {
                name: asset.name.clone(),
                mime_type: asset.mime_type.clone(),
                media_type: asset.media_type,
                size: asset.size,
                width: asset.width,
                height: asset.height,
                duration_seconds: asset.duration_seconds,
            },
            allow_preview: share.allow_preview,
            allow_download: share.allow_download,
            allow_comments: share.allow_comments,
            preview_url,
            download_url,
            expires_at: share.expires_at.map(rfc3339),
            downloads_remaining: share.downloads_remaining(),
        };
        let mut r = axum::Json(view).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept, Cookie, Authorization"));
        return r;
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
        match comment_section(&state, asset.id, uuid, token, &view).await {
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
    csrf: CsrfCookie,
    ApiForm(form): ApiForm<UnlockForm>,
) -> Response {
    if let Err(e) = check_csrf(&csrf, form.csrf_token.as_deref()) {
        return password_page(&state, &req.uuid, &csrf, Some(e.public_message()), StatusCode::FORBIDDEN);
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
        Err(AppError::RateLimited { retry_after_secs }) => {
            let mins = retry_after_secs.div_ceil(60);
            let mut r = password_page(
                &state,
                &req.uuid,
                &csrf,
                Some(format!("Too many attempts. Try again in {mins} minute{}.", if mins == 1 { "" } else { "s" })),
                StatusCode::TOO_MANY_REQUESTS,
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        Err(AppError::Forbidden { code: ErrorCode::WrongPassword, .. }) => {
            password_page(&state, &req.uuid, &csrf, Some("Wrong password. Try again.".into()), StatusCode::UNAUTHORIZED)
        }
        Err(AppError::NotFound(_)) => refusal_response(&state, &req, Refusal::NotFound, false, &csrf),
        Err(AppError::Gone { code, .. }) => {
            gone_page(if code == ErrorCode::ShareExpired { ShareStatus::Expired } else { ShareStatus::Revoked })
        }
        Err(e) => e.into_response(),
    }
}

fn file_info(a: &Access, disposition: Disposition) -> FileInfo {
    FileInfo {
        key: a.asset.blob_key.clone(),
        mime: a.asset.mime_type.clone(),
        name: a.asset.name.clone(),
        etag: a.asset.sha256.clone(),
        last_modified_ms: a.asset.created_at,
        disposition,
    }
}

/// Downloads the file, counting one download (exactly `max_downloads` ever succeed). HEAD,
/// link-preview bots and prefetches never count; a Range request by a visitor whose download was
/// counted within the resume window continues without counting, even once the link is exhausted.
#[utoipa::path(get, path = "/share/{uuid}/download", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, description = "downloads not allowed, or a bot/prefetch", body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn download(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    match download_inner(&state, &req, &method).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn download_inner(state: &AppState, req: &ShareRequest, method: &Method) -> Result<Response, AppError> {
    state.limits.share_access_per_ip.check(req.ip).await?;
    let access = resolve(state, req).await?;
    if !access.share.allow_download {
        return Err(AppError::Forbidden {
            code: ErrorCode::DownloadNotAllowed,
            message: "this link does not allow downloads".into(),
        });
    }
    let info = file_info(&access, Disposition::Attachment);
    if method == Method::HEAD || access.is_owner {
        return serve(state, &info, method, &req.headers).await;
    }
    if !access.counts {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotADownload,
            message: "prefetches and link previews do not download files".into(),
        });
    }
    let now = now_ms();
    let is_range = req.headers.contains_key(header::RANGE);
    if is_range && state.store.has_download_grant(access.share.id, &access.visitor, now).await? {
        return serve(state, &info, method, &req.headers).await;
    }
    if state.store.reserve_download(access.share.id, now).await? == Reservation::Refused {
        let fresh = state.store.share_by_uuid(&access.share.uuid).await?.ok_or(AppError::NotFound("share"))?;
        return Err(Refusal::Gone(match fresh.status(now) {
            ShareStatus::Active => ShareStatus::Exhausted,
            s => s,
        })
        .into());
    }
    match serve(state, &info, method, &req.headers).await {
        Ok(resp) if resp.status().is_success() => {
            let until = now + state.config.share_resume_window_secs as i64 * 1000;
            state.store.grant_download(access.share.id, &access.visitor, until).await?;
            capture(state, req, &access, Kind::Download);
            metrics::counter!("vitrine_share_downloads_total").increment(1);
            Ok(resp)
        }
        // Nothing was sent: give the download back.
        other => {
            if let Err(e) = state.store.refund_download(access.share.id).await {
                tracing::error!(error = %e, share_id = access.share.id, "could not refund a download");
            }
            other
        }
    }
}

/// Streams the file inline for the preview player (images, video, audio, PDF); never counts.
#[utoipa::path(get, path = "/share/{uuid}/preview", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("token" = Option<String>, Query, description = "link token")),
    responses((status = 200, description = "the file, inline"), (status = 206, description = "a range"), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn preview(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    let result = async {
        let access = resolve(&state, &req).await?;
        if access.status == ShareStatus::Exhausted {
            return Err(Refusal::Gone(ShareStatus::Exhausted).into());
        }
        if !previewable(&access) {
            return Err(AppError::Forbidden {
                code: ErrorCode::PreviewNotAllowed,
                message: "this link has no preview for this file".into(),
            });
        }
        serve(&state, &file_info(&access, Disposition::Inline), &method, &req.headers).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The thumbnail of an image on an open link (for link previews); never counts.
#[utoipa::path(get, path = "/share/{uuid}/thumb", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    responses((status = 200, description = "thumbnail image"), (status = 404, body = ErrorResponse)))]
pub async fn thumbnail(State(state): State<AppState>, req: ShareRequest, method: Method) -> Response {
    let result = async {
        let access = resolve(&state, &req).await?;
        let key = access
            .asset
            .thumb_key
            .clone()
            .filter(|_| access.share.allow_preview)
            .ok_or(AppError::NotFound("thumbnail"))?;
        let mime = if key.ends_with(".png") { "image/png" } else { "image/jpeg" };
        let info = FileInfo {
            key,
            mime: mime.into(),
            name: "thumbnail".into(),
            etag: format!("{}-thumb", access.asset.sha256),
            last_modified_ms: access.asset.created_at,
            disposition: Disposition::Inline,
        };
        serve(&state, &info, &method, &req.headers).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QrQuery {
    /// Width in pixels, 64..2048 (default 300).
    pub size: Option<String>,
}

fn qr_size(q: &QrQuery) -> Result<u32, AppError> {
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
    responses((status = 200, description = "PNG", content_type = "image/png"), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
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
    responses((status = 200, description = "SVG", content_type = "image/svg+xml"), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
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
            let media = crate::domain::assets::preview_kind(&a.asset);
            let preview_url =
                previewable(&a).then(|| format!("{}/share/{}/preview", state.config.base_url(), a.share.uuid));
            (StatusCode::OK, EmbedPage { title: a.share.title.clone(), media, preview_url, open_url, message: None })
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
    let mut r = super::render(&page);
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
    if share.status(now_ms()) != ShareStatus::Active {
        return Err(AppError::NotFound("share"));
    }
    if !share.share_type.is_open() {
        return Err(AppError::Unauthenticated("this link is not public".into()));
    }
    let asset = state.store.asset(share.asset_id).await?.ok_or(AppError::NotFound("share"))?;
    let base = state.config.base_url();
    let thumb = (share.allow_preview && asset.thumb_key.is_some()).then(|| format!("{base}/share/{uuid}/thumb"));
    let (tw, th) = match (asset.width, asset.height) {
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

/// The comment form of the share page (every field is text in a form).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CommentForm {
    pub content: Option<String>,
    pub guest_name: Option<String>,
    pub parent_comment_id: Option<String>,
    pub timestamp: Option<String>,
    /// The page's CSRF token (required when a cookie signs the request in).
    pub csrf_token: Option<String>,
}

impl CommentForm {
    fn into_input(self) -> crate::domain::comments::CommentIn {
        let blank = |s: &Option<String>| s.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        crate::domain::comments::CommentIn {
            content: self.content.clone(),
            guest_name: blank(&self.guest_name),
            parent_comment_id: blank(&self.parent_comment_id).and_then(|v| v.parse().ok()),
            timestamp: blank(&self.timestamp).map(serde_json::Value::String),
            ..Default::default()
        }
    }
}

/// A link the caller may comment through: open, not exhausted, with `allow_comments`.
async fn commentable(state: &AppState, req: &ShareRequest) -> Result<Access, AppError> {
    let access = resolve(state, req).await.map_err(AppError::from)?;
    if !access.share.allow_comments {
        return Err(AppError::forbidden("comments are not enabled on this link"));
    }
    Ok(access)
}

/// Query of the share link's comment list: SPEC §0 paging, and the link token when it came in the URL
/// (kept in the `next`/`previous` links).
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct CommentsQuery {
    /// 1-based page number (default 1).
    pub page: Option<String>,
    /// Threads per page (default 20, max 100).
    pub page_size: Option<String>,
    /// Link token from unlock.
    pub token: Option<String>,
}

/// The comments of a link's file (when the link allows comments): threads newest first, paginated.
#[utoipa::path(get, path = "/share/{uuid}/comments", tag = "share links", params(("uuid" = String, Path, description = "share uuid"), CommentsQuery),
    responses((status = 200, body = Page<crate::domain::comments::CommentOut>), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn comments(
    State(state): State<AppState>,
    req: ShareRequest,
    ApiQuery(q): ApiQuery<CommentsQuery>,
) -> Result<Response, AppError> {
    let page = PageRequest::try_from(&PageQuery { page: q.page.clone(), page_size: q.page_size.clone() })?;
    let access = commentable(&state, &req).await?;
    let base = format!("{}/share/{}/comments/", state.config.base_url(), access.share.uuid);
    let extra: Vec<(&str, String)> = q.token.iter().map(|t| ("token", t.clone())).collect();
    let out = crate::service::comments::threads_page(&state, access.asset.id, page, &base, &extra).await?;
    let mut r = axum::Json(out).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(r)
}

/// Comments through a link (`allow_comments`): as the signed-in account, or as a guest with a
/// display name. JSON (201 with the comment) or the page's form (303 back to the page).
/// Rate-limited per client IP.
#[utoipa::path(post, path = "/share/{uuid}/comments", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    request_body(content = crate::domain::comments::CommentIn, description = "JSON, or the page's form fields"),
    responses((status = 201, body = crate::domain::comments::CommentOut), (status = 303, description = "form: back to the page"),
        (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn comment(
    State(state): State<AppState>,
    req: ShareRequest,
    request: axum::extract::Request,
) -> Result<Response, AppError> {
    use axum::extract::FromRequest;
    let access = commentable(&state, &req).await?;
    if access.status == ShareStatus::Exhausted {
        return Err(AppError::from(Refusal::Gone(ShareStatus::Exhausted)));
    }
    let is_form = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (input, form_token) = if is_form {
        let form = crate::http::extract::ApiForm::<CommentForm>::from_request(request, &state).await?.0;
        let token = form.csrf_token.clone();
        (form.into_input(), token)
    } else {
        (
            crate::http::extract::ApiJson::<crate::domain::comments::CommentIn>::from_request(request, &state).await?.0,
            None,
        )
    };
    // A cookie (the login session, the link's unlock cookie) stands for the caller: the request
    // must come from this site with the page's CSRF token (form field or X-CSRF-Token), like every
    // cookie-authenticated form. Without cookies it is a guest's comment and nothing is forged.
    if req.cookie_auth {
        let token = form_token.as_deref().or_else(|| crate::http::extract::csrf_header(&req.headers));
        crate::http::extract::check_cookie_request(&state, &Method::POST, &req.headers, token)?;
    }
    state.limits.guest_comment_per_ip.check(req.ip).await?;
    // A signed-in viewer comments as themselves (the cookie is only believed from this site).
    let author = match &req.viewer {
        Some(u) => crate::store::comments::Author::User(u.id),
        _ => crate::store::comments::Author::Guest {
            name: crate::domain::comments::parse_guest_name(input.guest_name.as_deref())?,
            share_id: access.share.id,
        },
    };
    let origin =
        crate::service::comments::Origin { share_id: access.share.id, ip: req.ip, user_agent: req.user_agent.clone() };
    let c = crate::service::comments::create(
        &state,
        crate::service::comments::Target::of(&access.asset),
        author,
        &input,
        Some(origin),
    )
    .await?;
    if is_form {
        let mut r = Redirect::to(&format!("/share/{}/#comment-{}", access.share.uuid, c.id)).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return Ok(r);
    }
    Ok((StatusCode::CREATED, axum::Json(crate::domain::comments::CommentOut::of(&c))).into_response())
}
