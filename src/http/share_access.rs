//! Who may open a share link, decided in one place for the recipient's page, its JSON twin, the
//! preview, the download and the embed page: unknown -> 404; revoked/expired -> 410; protected ->
//! a link token (cookie, Bearer or `?token=`); private -> a signed-in, allowed account. Next to it:
//! the download count kept around a served file, and unlocking a link with its password.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use serde::Deserialize;

use crate::app::AppState;
use crate::domain::assets::Asset;
use crate::domain::audit::AuditAction;
use crate::domain::shares::{Share, ShareStatus, ShareType, Shared};
use crate::domain::users::User;
use crate::domain::visitors::{is_bot, is_prefetch, visitor_key};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::{ClientIp, SESSION_COOKIE, cookie, cross_origin};
use crate::service::audit;
use crate::service::auth::{page_session, user_from_token};
use crate::service::shares::PasswordRefused;
use crate::store::cache::ShareView;
use crate::store::shares::Reservation;

/// Cookie carrying a link's access token; its Path is the link, so it never leaves it.
pub const SHARE_COOKIE: &str = "vitrine_share";

/// Everything a share endpoint knows about the request, before deciding anything.
pub struct ShareRequest {
    pub uuid: String,
    pub ip: IpAddr,
    pub user_agent: String,
    pub headers: HeaderMap,
    /// A link token from `?token=`, `Authorization: Bearer` or the link cookie.
    pub link_token: Option<String>,
    /// The signed-in account (session cookie or Bearer access token), if any.
    pub viewer: Option<User>,
    /// Whether a cookie (login session or the link's) stands for the caller: its state-changing
    /// requests must then pass the CSRF rule (`extract::check_cookie_request`).
    pub cookie_auth: bool,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<AppState> for ShareRequest {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound("share"))?;
        let uuid =
            params.iter().find(|(k, _)| k == "uuid").map(|(_, v)| v.clone()).ok_or(AppError::NotFound("share"))?;
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let query_token = Query::<TokenQuery>::try_from_uri(&parts.uri).ok().and_then(|q| q.0.token);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_string());
        // A Bearer token is either an account's access token or a link token.
        let mut viewer = None;
        let share_cookie = cookie(parts, SHARE_COOKIE);
        let mut cookie_auth = query_token.is_none() && share_cookie.is_some();
        let mut link_token = query_token.or(share_cookie);
        if let Some(b) = bearer {
            // An account's JWT or personal access token names the viewer; anything else is a link token.
            if crate::service::tokens::is_access_token(&b) || state.auth.verify(&b, crate::auth::ACCESS).is_ok() {
                viewer = Some(user_from_token(state, &b).await?);
            } else {
                link_token = Some(b);
                cookie_auth = false;
            }
        }
        // The login cookie names the viewer on this site's own requests only (SPEC §0).
        if viewer.is_none()
            && let Some(session) = cookie(parts, SESSION_COOKIE)
        {
            cookie_auth = true;
            if !cross_origin(&parts.headers, state.config.base_url()) {
                viewer = page_session(state, &session).await.ok().map(|s| s.user);
            }
        }
        let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Ok(ShareRequest { uuid, ip, user_agent, headers: parts.headers.clone(), link_token, viewer, cookie_auth })
    }
}

/// Why a link cannot be opened (each page or API renders it its own way).
#[derive(Debug)]
pub enum Refusal {
    NotFound,
    Gone(ShareStatus),
    NeedPassword,
    NeedLogin,
    NotAllowed,
    Failed(AppError),
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Self {
        Refusal::Failed(AppError::Internal(e))
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => AppError::NotFound("share"),
            Refusal::Gone(s) => AppError::Gone {
                code: match s {
                    ShareStatus::Expired => ErrorCode::ShareExpired,
                    ShareStatus::Revoked => ErrorCode::ShareRevoked,
                    _ => ErrorCode::ShareExhausted,
                },
                message: format!("this link is no longer available: {}", s.explain()),
            },
            Refusal::NeedPassword => {
                AppError::Unauthenticated("this link is protected: unlock it with its password first".into())
            }
            Refusal::NeedLogin => AppError::Unauthenticated("this link is private: sign in first".into()),
            Refusal::NotAllowed => AppError::forbidden("this private link was not shared with your account"),
            Refusal::Failed(e) => e,
        }
    }
}

/// A link the request may open.
pub struct Access {
    pub share: Share,
    /// The link with what it shares (an asset, or a collection and its files).
    pub view: ShareView,
    pub status: ShareStatus,
    /// The owner or an admin is looking.
    pub is_owner: bool,
    /// Pseudonymous key of the visitor (keyed hash of IP and user agent).
    pub visitor: String,
    /// Link-preview bots, crawlers and prefetches never count.
    pub counts: bool,
}

/// Loads the link and checks it. Exhausted links pass (the caller decides: a resumed download may
/// finish); revoked and expired ones do not.
pub async fn resolve(state: &AppState, req: &ShareRequest) -> Result<Access, Refusal> {
    if uuid::Uuid::parse_str(&req.uuid).is_err() {
        return Err(Refusal::NotFound);
    }
    let view = state.store.share_view(&req.uuid).await?.ok_or(Refusal::NotFound)?;
    let share = view.0.clone();
    let status = share.status(state.clock.now_ms());
    if matches!(status, ShareStatus::Revoked | ShareStatus::Expired) {
        return Err(Refusal::Gone(status));
    }
    let is_owner = req.viewer.as_ref().is_some_and(|u| u.id == share.owner_id || u.is_admin());
    if !is_owner {
        match share.share_type {
            ShareType::Protected => {
                let ok = req
                    .link_token
                    .as_deref()
                    .and_then(|t| state.auth.verify(t, "share").ok())
                    .is_some_and(|c| c.sub == share.uuid);
                if !ok {
                    return Err(Refusal::NeedPassword);
                }
            }
            ShareType::Private => {
                let Some(viewer) = &req.viewer else { return Err(Refusal::NeedLogin) };
                if !share.allowed_emails.is_empty() && !share.allowed_emails.iter().any(|e| e == &viewer.email) {
                    return Err(Refusal::NotAllowed);
                }
            }
            _ => {}
        }
    }
    let counts = !is_owner && !is_bot(&req.user_agent) && !is_prefetch(&req.headers);
    let visitor = visitor_key(&state.secrets.hmac, req.ip, &req.user_agent);
    Ok(Access { share, view, status, is_owner, visitor, counts })
}

impl Access {
    pub fn shared(&self) -> &Shared {
        &self.view.1
    }

    /// The asset of an asset link. Endpoints that only make sense on one file (comments, review
    /// sessions) answer 404 on a collection link.
    pub fn asset(&self) -> Result<&Asset, AppError> {
        self.shared().asset().ok_or(AppError::NotFound("share"))
    }

    /// The file `asset_id` of a collection link; 404 when it is not in the collection (or the link
    /// shares one asset: its file has no `/files/` route).
    pub fn item(&self, asset_id: i64) -> Result<&Asset, AppError> {
        self.shared().item(asset_id).ok_or(AppError::NotFound("file"))
    }
}

/// Lifetime of a link token issued at `now`: 12 hours, never past the link's expiry.
pub fn link_token_ttl(share: &Share, now: i64) -> u64 {
    let twelve_hours = 12 * 3600;
    match share.expires_at {
        Some(e) => (((e - now) / 1000).max(1) as u64).min(twelve_hours),
        None => twelve_hours,
    }
}

/// Why a password did not unlock a link; `AppError::from` gives each its status and code.
#[derive(Debug)]
pub enum UnlockRefused {
    /// No such link (404).
    NotFound,
    /// The link has expired (410 `share_expired`).
    Expired,
    /// The link was revoked (410 `share_revoked`).
    Revoked,
    /// The link has no password (400 `not_protected`).
    NotProtected,
    /// The password is wrong (403 `wrong_password`).
    WrongPassword,
    /// Too many requests to share links from this address: retry after this many seconds (429).
    RateLimited(u64),
    /// Too many wrong passwords for this link from this address: retry after this many seconds (429).
    LockedOut(u64),
    /// Anything else (the store, hashing, the token).
    Failed(AppError),
}

impl From<anyhow::Error> for UnlockRefused {
    fn from(e: anyhow::Error) -> Self {
        UnlockRefused::Failed(AppError::from(e))
    }
}

impl From<UnlockRefused> for AppError {
    fn from(r: UnlockRefused) -> Self {
        match r {
            UnlockRefused::NotFound => AppError::NotFound("share"),
            UnlockRefused::Expired => Refusal::Gone(ShareStatus::Expired).into(),
            UnlockRefused::Revoked => Refusal::Gone(ShareStatus::Revoked).into(),
            UnlockRefused::NotProtected => AppError::bad_request(ErrorCode::NotProtected, "this link has no password"),
            UnlockRefused::WrongPassword => {
                AppError::Forbidden { code: ErrorCode::WrongPassword, message: "wrong password".into() }
            }
            UnlockRefused::RateLimited(retry_after_secs) | UnlockRefused::LockedOut(retry_after_secs) => {
                AppError::RateLimited { retry_after_secs }
            }
            UnlockRefused::Failed(e) => e,
        }
    }
}

/// A limiter's refusal as `refused(retry after)`; any other error as `Failed`.
fn over_limit(e: AppError, refused: fn(u64) -> UnlockRefused) -> UnlockRefused {
    match e {
        AppError::RateLimited { retry_after_secs } => refused(retry_after_secs),
        other => UnlockRefused::Failed(other),
    }
}

/// Checks a link's password with lockout and rate limits; on success returns a link token and
/// its lifetime in seconds.
pub async fn unlock(state: &AppState, req: &ShareRequest, password: &str) -> Result<(String, u64), UnlockRefused> {
    state.limits.share_access_per_ip.check(req.ip).await.map_err(|e| over_limit(e, UnlockRefused::RateLimited))?;
    if uuid::Uuid::parse_str(&req.uuid).is_err() {
        return Err(UnlockRefused::NotFound);
    }
    let share = state.store.share_by_uuid(&req.uuid).await?.ok_or(UnlockRefused::NotFound)?;
    match share.status(state.clock.now_ms()) {
        ShareStatus::Expired => return Err(UnlockRefused::Expired),
        ShareStatus::Revoked => return Err(UnlockRefused::Revoked),
        _ => {}
    }
    if share.share_type != ShareType::Protected {
        return Err(UnlockRefused::NotProtected);
    }
    let key = crate::limits::share_password_key(req.ip, share.id);
    match crate::service::shares::check_link_password(state, &key, share.password_hash.as_deref(), password).await {
        Ok(()) => {}
        Err(PasswordRefused::LockedOut(secs)) => return Err(UnlockRefused::LockedOut(secs)),
        Err(PasswordRefused::Wrong { locked_out }) => {
            let who = audit::who(state, req.viewer.as_ref().map(|u| u.id), Some(req.ip));
            let details = serde_json::json!({"uuid": share.uuid});
            audit::record_quietly(state, who.entry(AuditAction::ShareUnlockFailed, share.id, details.clone())).await;
            if locked_out {
                audit::record_quietly(state, who.entry(AuditAction::ShareLockedOut, share.id, details)).await;
            }
            return Err(UnlockRefused::WrongPassword);
        }
        Err(PasswordRefused::Failed(e)) => return Err(UnlockRefused::Failed(e)),
    }
    let ttl = link_token_ttl(&share, state.clock.now_ms());
    Ok((state.auth.issue(&share.uuid, "share", ttl).map_err(UnlockRefused::Failed)?, ttl))
}

/// What a counted download sends.
#[derive(Debug, Clone, Copy)]
pub enum Counted<'a> {
    /// The one file of an asset link.
    Link,
    /// One file of a collection link.
    File(i64),
    /// Every file of a collection link as one ZIP.
    Zip(&'a [i64]),
}

impl Counted<'_> {
    /// Whose resume window a request uses: the link's, or per file, or the ZIP's.
    fn grant_key(&self, visitor: &str) -> String {
        match self {
            Counted::Link => visitor.to_string(),
            Counted::File(id) => format!("{visitor}:file:{id}"),
            Counted::Zip(_) => format!("{visitor}:zip"),
        }
    }

    /// The asset its analytics event names: the link's file, or the collection's file; a ZIP
    /// has no single file (0, as the collection's page views; its files are counted in
    /// `share_file_downloads` for `file_breakdown`).
    fn asset_id(&self, access: &Access) -> i64 {
        match self {
            Counted::File(id) => *id,
            Counted::Link | Counted::Zip(_) => access.shared().analytics_asset_id(),
        }
    }

    /// The files `share_file_downloads` counts once bytes were sent.
    fn files(&self) -> Vec<i64> {
        match self {
            Counted::Link => vec![],
            Counted::File(id) => vec![*id],
            Counted::Zip(ids) => ids.to_vec(),
        }
    }
}

/// Serves a download of `access`'s file (or of one of its files, or its ZIP: `what`) with `serve`
/// and keeps the link's download count (exactly `max_downloads` ever succeed). HEAD and the owner
/// never count; link-preview bots and prefetches are refused; a Range request by a visitor whose
/// download of the same thing was counted within the resume window continues without counting,
/// even once the link is exhausted. Any other request reserves one download first (410 when none
/// is left); a successful response grants the visitor the resume window, any other gives the
/// download back, and so does a response whose body is dropped before its first byte was sent (the
/// client went away). Files of a collection are counted in `share_file_downloads` once bytes flow.
pub async fn count_download(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    method: &Method,
    what: Counted<'_>,
    serve: impl Future<Output = Result<Response, AppError>>,
) -> Result<Response, AppError> {
    if method == Method::HEAD || access.is_owner {
        return serve.await;
    }
    if !access.counts {
        return Err(AppError::Forbidden {
            code: ErrorCode::NotADownload,
            message: "prefetches and link previews do not download files".into(),
        });
    }
    let now = state.clock.now_ms();
    let is_range = req.headers.contains_key(header::RANGE);
    let grant_key = what.grant_key(&access.visitor);
    if is_range && state.store.has_download_grant(access.share.id, &grant_key, now).await? {
        return serve.await;
    }
    if state.store.reserve_download(access.share.id, now).await? == Reservation::Refused {
        let fresh = state.store.share_by_uuid(&access.share.uuid).await?.ok_or(AppError::NotFound("share"))?;
        return Err(Refusal::Gone(match fresh.status(now) {
            ShareStatus::Active => ShareStatus::Exhausted,
            s => s,
        })
        .into());
    }
    match serve.await {
        Ok(resp) if resp.status().is_success() => {
            let until = now + state.config.share_resume_window_secs as i64 * 1000;
            state.store.grant_download(access.share.id, &grant_key, until).await?;
            capture_of(state, req, access, crate::domain::analytics::Kind::Download, what.asset_id(access));
            metrics::counter!("vitrine_share_downloads_total").increment(1);
            let guard = SendGuard { state: Some(state.clone()), share_id: access.share.id, files: what.files() };
            Ok(guard.watch(resp))
        }
        // Nothing was sent: give the download back.
        other => {
            refund(state, access.share.id).await;
            other
        }
    }
}

async fn refund(state: &AppState, share_id: i64) {
    if let Err(e) = state.store.refund_download(share_id).await {
        tracing::error!(error = %e, share_id, "could not refund a download");
    }
}

/// Watches a counted download's body: the first byte out (or the end of an empty body) records the
/// collection's per-file counts; dropped before that (the client went away before anything was
/// sent), it gives the download back.
struct SendGuard {
    /// Taken once the outcome is settled.
    state: Option<AppState>,
    share_id: i64,
    files: Vec<i64>,
}

impl SendGuard {
    fn watch(mut self, resp: Response) -> Response {
        let (parts, body) = resp.into_parts();
        let mut inner = body.into_data_stream();
        let stream = futures::stream::poll_fn(move |cx| {
            let polled = futures::Stream::poll_next(std::pin::Pin::new(&mut inner), cx);
            if matches!(polled, std::task::Poll::Ready(Some(Ok(_))) | std::task::Poll::Ready(None)) {
                self.sent();
            }
            polled
        });
        Response::from_parts(parts, axum::body::Body::from_stream(stream))
    }

    fn sent(&mut self) {
        let Some(state) = self.state.take() else { return };
        if self.files.is_empty() {
            return;
        }
        let (share_id, files) = (self.share_id, std::mem::take(&mut self.files));
        tokio::spawn(async move {
            if let Err(e) = state.store.count_file_downloads(share_id, &files).await {
                tracing::error!(error = %e, share_id, "could not count the files of a download");
            }
        });
    }
}

impl Drop for SendGuard {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else { return };
        let share_id = self.share_id;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { refund(&state, share_id).await });
        }
    }
}

/// Records what a recipient did (never the owner's own visits, never prefetches); bots are
/// recorded with their flag and left out of the counts by the rollups.
pub fn capture(state: &AppState, req: &ShareRequest, access: &Access, kind: crate::domain::analytics::Kind) {
    capture_with(state, req, access, kind, None, None);
}

/// `capture` of what a recipient did with one file of the link (`asset_id`: the link's file, or
/// one of its collection's).
pub fn capture_of(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    kind: crate::domain::analytics::Kind,
    asset_id: i64,
) {
    record(state, req, access, kind, asset_id, None, None);
}

pub fn capture_with(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    kind: crate::domain::analytics::Kind,
    time_on_page_ms: Option<i64>,
    load_ms: Option<i64>,
) {
    record(state, req, access, kind, access.shared().analytics_asset_id(), time_on_page_ms, load_ms);
}

fn record(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    kind: crate::domain::analytics::Kind,
    asset_id: i64,
    time_on_page_ms: Option<i64>,
    load_ms: Option<i64>,
) {
    if access.is_owner || is_prefetch(&req.headers) {
        return;
    }
    state.analytics.capture(crate::analytics::Hit {
        kind,
        at_ms: state.clock.now_ms(),
        share_id: access.share.id,
        asset_id,
        ip: req.ip,
        user_agent: req.user_agent.clone(),
        referrer: req.headers.get(header::REFERER).and_then(|v| v.to_str().ok()).map(str::to_string),
        time_on_page_ms,
        load_ms,
        reading: None,
    });
}

/// Records what the document viewer reported about `asset_id` (a file of this link): one
/// engagement event carrying the reading, folded into the page rollups by the writer.
pub fn capture_reading(
    state: &AppState,
    req: &ShareRequest,
    access: &Access,
    asset_id: i64,
    reading: crate::domain::analytics::Reading,
) {
    if access.is_owner || is_prefetch(&req.headers) {
        return;
    }
    state.analytics.capture(crate::analytics::Hit {
        kind: crate::domain::analytics::Kind::Engagement,
        at_ms: state.clock.now_ms(),
        share_id: access.share.id,
        asset_id,
        ip: req.ip,
        user_agent: req.user_agent.clone(),
        referrer: None,
        time_on_page_ms: None,
        load_ms: None,
        reading: Some(Box::new(reading)),
    });
}

/// `notify_on_access`: tells the owner live (every open socket) and by e-mail (when SMTP is
/// configured, at most once per `notify_email_interval_secs` per link). Bots, prefetches and the
/// owner's own visits never notify.
pub fn notify_access(state: &AppState, req: &ShareRequest, access: &Access) {
    if !access.share.notify_on_access || !access.counts {
        return;
    }
    let now = state.clock.now_ms();
    let agent = crate::analytics::agent::parse(&req.user_agent);
    let country = state.analytics.country(req.ip);
    let message = serde_json::json!({
        "kind": "share_accessed",
        "share_uuid": access.share.uuid,
        "share_title": access.share.title,
        "asset_id": access.share.asset_id(),
        "collection_id": access.share.collection_id(),
        "country": country,
        "device": agent.device,
        "browser": agent.browser,
    });
    crate::service::notifications::notify(state, access.share.owner_id, message);
    if !state.mailer.enabled() {
        return;
    }
    {
        let mut mailed = state.mailed.lock().unwrap_or_else(|e| e.into_inner());
        let interval = state.config.notify_email_interval_secs as i64 * 1000;
        if mailed.get(&access.share.id).is_some_and(|last| now - last < interval) {
            return;
        }
        mailed.insert(access.share.id, now);
    }
    let state = state.clone();
    let owner_id = access.share.owner_id;
    let title = access.share.title.clone();
    let url = crate::service::shares::share_url(&state, &access.share.uuid);
    let when = crate::domain::time::rfc3339(now);
    let device = agent.device;
    tokio::spawn(async move {
        match state.store.user_by_id(owner_id).await {
            Ok(Some(owner)) if owner.is_active => {
                let body = format!(
                    "Hello {},\n\nYour shared link \"{title}\" was just opened.\n\nWhen: {when}\nFrom: {country} ({device})\nLink: {url}\n\nYou get this mail because the link has \"notify on access\" turned on.\n",
                    owner.name
                );
                state.mailer.send(&owner.email, &format!("Your link \"{title}\" was opened"), body);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not load the owner for an access e-mail"),
        }
    });
}
