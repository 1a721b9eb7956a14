//! Comments through a share link: the JSON list, the post (JSON or the page's form), the comment
//! section of the share page, and the page's engagement beacon.

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::domain::analytics::{Kind, Reading, ReadingIn};
use crate::domain::assets::Asset;
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::shares::{ShareStatus, Shared};
use crate::error::{AppError, ErrorCode, ErrorResponse};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::share_access::{Access, Refusal, ShareRequest, capture_reading, capture_with, resolve};

/// What the page's `navigator.sendBeacon` reports.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BeaconIn {
    pub time_on_page_ms: Option<f64>,
    pub load_ms: Option<f64>,
    /// The document viewer's page reports (PDFs shown with the viewer), at most 10 documents.
    #[serde(default)]
    pub documents: Vec<ReadingIn>,
}

/// The largest beacon body (bytes).
const BEACON_MAX: usize = 4096;
/// Documents reported in one beacon.
const BEACON_DOCUMENTS_MAX: usize = 10;

/// Engagement from the share page: time on page and load time, and the document viewer's time
/// per page (sent as text by sendBeacon). Malformed or out-of-range page reports refuse the
/// whole beacon (400) and record nothing.
#[utoipa::path(post, path = "/share/{uuid}/beacon", tag = "share links", params(("uuid" = String, Path, description = "share uuid")),
    request_body(content = BeaconIn, content_type = "text/plain"),
    responses((status = 204, description = "recorded"), (status = 400, body = ErrorResponse),
        (status = 401, description = "the link needs its password or a sign-in", body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
        (status = 410, description = "revoked, expired or used up", body = ErrorResponse), (status = 413, body = ErrorResponse)))]
pub async fn beacon(
    State(state): State<AppState>,
    req: ShareRequest,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    if body.len() > BEACON_MAX {
        return Err(AppError::TooLarge { limit: BEACON_MAX as u64 });
    }
    let b: BeaconIn = serde_json::from_slice(&body)
        .map_err(|_| AppError::bad_request(ErrorCode::MalformedJson, "the beacon is not valid JSON"))?;
    // Bounded, whole milliseconds: a day on the page at most, load times up to ten minutes.
    let clamp =
        |v: Option<f64>, max: f64| v.filter(|x| x.is_finite() && *x >= 0.0 && *x <= max).map(|x| x.round() as i64);
    let time = clamp(b.time_on_page_ms, 86_400_000.0);
    let load = clamp(b.load_ms, 600_000.0);
    if b.documents.len() > BEACON_DOCUMENTS_MAX {
        return Err(AppError::validation("documents", format!("at most {BEACON_DOCUMENTS_MAX} documents per beacon")));
    }
    let readings = b
        .documents
        .iter()
        .map(|d| Reading::parse(d).map(|r| (d.asset_id, r)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| AppError::validation("documents", &e))?;
    let access = resolve(&state, &req).await?;
    // Each document must be a PDF this link shows: the link's file, or one of its collection's.
    let mut checked = Vec::with_capacity(readings.len());
    for (asset_id, reading) in readings {
        let asset = match (access.shared(), asset_id) {
            (Shared::Asset(a), None) => Some(a.as_ref()),
            (Shared::Asset(a), Some(id)) => (a.id == id).then_some(a.as_ref()),
            (Shared::Collection { .. }, Some(id)) => access.shared().item(id),
            (Shared::Collection { .. }, None) => None,
        };
        let Some(asset) = asset.filter(|a| a.mime_type == "application/pdf") else {
            return Err(AppError::validation("documents", "asset_id must be a PDF of this link"));
        };
        checked.push((asset.id, reading));
    }
    if time.is_some() || load.is_some() {
        capture_with(&state, &req, &access, Kind::Engagement, time, load);
    }
    for (asset_id, reading) in checked {
        capture_reading(&state, &req, &access, asset_id, reading);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One line of the share page's comment list: a comment, or the link to the rest of a thread
/// whose replies do not all fit on the list page.
pub(super) struct CommentRow {
    /// `(hidden replies, thread URL)` on a link line.
    pub(super) more: Option<(usize, String)>,
    pub(super) id: i64,
    pub(super) depth: usize,
    pub(super) author: String,
    pub(super) is_guest: bool,
    pub(super) content: String,
    pub(super) timestamp: Option<String>,
    pub(super) created_at: String,
    pub(super) resolved: bool,
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
    /// A collection link's page: the file whose comments it shows.
    file: Option<String>,
}

impl CommentsView {
    /// Leniently: the page itself never fails on a bad navigation parameter.
    pub(super) fn parse(query: Option<&str>) -> CommentsView {
        let mut view = CommentsView::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "page" => view.page = Some(v.into_owned()),
                "thread" => view.thread = Some(v.into_owned()),
                "file" => view.file = Some(v.into_owned()),
                _ => {}
            }
        }
        view
    }

    /// The file of a collection link's page whose comments are shown (`?file=ID`).
    pub(super) fn file(&self) -> Option<i64> {
        self.file.as_deref().and_then(|f| f.trim().parse().ok())
    }
}

/// The comment list of the share page and its navigation.
#[derive(Default)]
pub(super) struct CommentSection {
    pub(super) rows: Vec<CommentRow>,
    /// Threads in all (list view).
    pub(super) threads: i64,
    pub(super) older_url: Option<String>,
    pub(super) newer_url: Option<String>,
    /// In the thread view: back to every thread.
    pub(super) all_url: Option<String>,
    /// The thread view found no such thread.
    pub(super) missing_thread: bool,
}

/// `/share/{uuid}/` with the link token (when it must follow), the file of a collection link
/// whose comments are shown, and `pairs`, anchored at the comments.
pub(super) fn comments_url(uuid: &str, token: Option<&str>, file: Option<i64>, pairs: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(t) = token {
        q.append_pair("token", t);
    }
    if let Some(f) = file {
        q.append_pair("file", &f.to_string());
    }
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() { format!("/share/{uuid}/#comments") } else { format!("/share/{uuid}/?{q}#comments") }
}

/// The comments of `asset_id` as the page shows them; `file` is set on a collection link's page
/// (every navigation link keeps it).
pub(super) async fn comment_section(
    state: &AppState,
    asset_id: i64,
    uuid: &str,
    token: Option<&str>,
    file: Option<i64>,
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
        out.all_url = Some(comments_url(uuid, token, file, &[]));
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
            |p: u32| comments_url(uuid, token, file, &[("thread", thread.trim().to_string()), ("page", p.to_string())]);
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
            let url = comments_url(uuid, token, file, &[("thread", tree.id.to_string())]);
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
        out.older_url = Some(comments_url(uuid, token, file, &[("page", (page + 1).to_string())]));
    }
    if page > 1 {
        out.newer_url = Some(comments_url(uuid, token, file, &[("page", (page - 1).to_string())]));
    }
    Ok(out)
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

/// A link the caller may comment through (open, with `allow_comments`) and the file the comments
/// are about: the link's file, or `file` of its collection (404 when it is not in the collection;
/// a collection link's comments are per file, at `/share/{uuid}/files/{asset_id}/comments`).
async fn commentable(state: &AppState, req: &ShareRequest, file: Option<&str>) -> Result<(Access, Asset), AppError> {
    let access = resolve(state, req).await.map_err(AppError::from)?;
    let asset = match (access.shared(), file) {
        (Shared::Asset(a), None) => a.as_ref().clone(),
        (Shared::Collection { .. }, Some(id)) => {
            let id = id.parse::<i64>().map_err(|_| AppError::NotFound("file"))?;
            access.item(id)?.clone()
        }
        (Shared::Asset(_), Some(_)) => return Err(AppError::NotFound("file")),
        (Shared::Collection { .. }, None) => {
            if !access.share.allow_comments {
                return Err(AppError::forbidden("comments are not enabled on this link"));
            }
            return Err(AppError::forbidden(
                "this link shares a collection: comment on one of its files at /share/{uuid}/files/{asset_id}/comments",
            ));
        }
    };
    if !access.share.allow_comments {
        return Err(AppError::forbidden("comments are not enabled on this link"));
    }
    Ok((access, asset))
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
    list(&state, &req, None, q).await
}

/// The comments of one file of a collection link (when the link allows comments): threads newest
/// first, paginated. The file's comments are its own wherever they were made (as on a link to
/// the file alone): its owner sees them too.
#[utoipa::path(get, path = "/share/{uuid}/files/{asset_id}/comments", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("asset_id" = i64, Path, description = "a file of the collection"), CommentsQuery),
    responses((status = 200, body = Page<crate::domain::comments::CommentOut>), (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, description = "unknown link, or a file not in its collection", body = ErrorResponse), (status = 410, body = ErrorResponse)))]
pub async fn file_comments(
    State(state): State<AppState>,
    req: ShareRequest,
    ApiPath(path): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<CommentsQuery>,
) -> Result<Response, AppError> {
    list(&state, &req, Some(&path.1), q).await
}

async fn list(
    state: &AppState,
    req: &ShareRequest,
    file: Option<&str>,
    q: CommentsQuery,
) -> Result<Response, AppError> {
    let page = PageRequest::try_from(&PageQuery { page: q.page.clone(), page_size: q.page_size.clone() })?;
    let (access, asset) = commentable(state, req, file).await?;
    let base = match file {
        None => format!("{}/share/{}/comments/", state.config.base_url(), access.share.uuid),
        Some(_) => format!("{}/share/{}/files/{}/comments/", state.config.base_url(), access.share.uuid, asset.id),
    };
    let extra: Vec<(&str, String)> = q.token.iter().map(|t| ("token", t.clone())).collect();
    let out = crate::service::comments::threads_page(state, asset.id, page, &base, &extra).await?;
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
    post(&state, &req, None, request).await
}

/// Comments on one file of a collection link (`allow_comments`), as on a link to that file alone:
/// as the signed-in account, or as a guest with a display name; JSON (201) or the page's form
/// (303 back to the file on the page). Rate-limited per client IP.
#[utoipa::path(post, path = "/share/{uuid}/files/{asset_id}/comments", tag = "share links",
    params(("uuid" = String, Path, description = "share uuid"), ("asset_id" = i64, Path, description = "a file of the collection")),
    request_body(content = crate::domain::comments::CommentIn, description = "JSON, or the page's form fields"),
    responses((status = 201, body = crate::domain::comments::CommentOut), (status = 303, description = "form: back to the page"),
        (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, description = "unknown link, or a file not in its collection", body = ErrorResponse),
        (status = 410, body = ErrorResponse), (status = 429, body = ErrorResponse)))]
pub async fn file_comment(
    State(state): State<AppState>,
    req: ShareRequest,
    ApiPath(path): ApiPath<(String, String)>,
    request: axum::extract::Request,
) -> Result<Response, AppError> {
    post(&state, &req, Some(&path.1), request).await
}

async fn post(
    state: &AppState,
    req: &ShareRequest,
    file: Option<&str>,
    request: axum::extract::Request,
) -> Result<Response, AppError> {
    use axum::extract::FromRequest;
    let (access, asset) = commentable(state, req, file).await?;
    if access.status == ShareStatus::Exhausted {
        return Err(AppError::from(Refusal::Gone(ShareStatus::Exhausted)));
    }
    let is_form = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (input, form_token) = if is_form {
        let form = crate::http::extract::ApiForm::<CommentForm>::from_request(request, state).await?.0;
        let token = form.csrf_token.clone();
        (form.into_input(), token)
    } else {
        (
            crate::http::extract::ApiJson::<crate::domain::comments::CommentIn>::from_request(request, state).await?.0,
            None,
        )
    };
    // A cookie (the login session, the link's unlock cookie) stands for the caller: the request
    // must come from this site with the page's CSRF token (form field or X-CSRF-Token), like every
    // cookie-authenticated form. Without cookies it is a guest's comment and nothing is forged.
    if req.cookie_auth {
        let token = form_token.as_deref().or_else(|| crate::http::extract::csrf_header(&req.headers));
        crate::http::extract::check_cookie_request(state, &Method::POST, &req.headers, token)?;
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
        state,
        crate::service::comments::Target::of(&asset),
        author,
        &input,
        Some(origin),
    )
    .await?;
    if is_form {
        let back = match file {
            None => format!("/share/{}/#comment-{}", access.share.uuid, c.id),
            Some(_) => format!("/share/{}/?file={}#comment-{}", access.share.uuid, asset.id, c.id),
        };
        let mut r = Redirect::to(&back).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return Ok(r);
    }
    Ok((StatusCode::CREATED, axum::Json(crate::domain::comments::CommentOut::of(&c))).into_response())
}
