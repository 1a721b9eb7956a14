//! File requests (SPEC §11): the owner creates, changes and closes them; an outsider uploads
//! files through them. An upload reserves its file and bytes before its body is read (exact
//! `max_files` / `max_total_bytes`), goes through the one upload pipeline under the request's own
//! limits, becomes an asset of the owner in the target collection with its `source`, and tells
//! the owner (live, and by e-mail with `notify_on_upload`).

use std::net::IpAddr;

use serde_json::json;

use crate::app::AppState;
use crate::domain::assets::{
    Asset, AssetCommit, AssetMade, AssetMeta, AssetSource, CompletedUpload, DEFAULT_CONTENT_TYPE,
};
use crate::domain::audit::{AuditAction, Who};
use crate::domain::file_requests::{
    FileRequest, FileRequestIn, FileRequestSettings, FileRequestStatus, UploadBounds, Uploader,
};
use crate::domain::time::rfc3339;
use crate::domain::uploads::Upload;
use crate::domain::users::User;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::shares::{PasswordRefused, check_link_password};
use crate::service::uploads::{PixelLimit, Received, Rules};
use crate::store::shares::Reservation;

/// Token type of an unlocked request's access token.
pub const TOKEN_TYPE: &str = "file_request";

/// The uploader's page of a request.
pub fn upload_url(state: &AppState, uuid: &str) -> String {
    format!("{}/upload/{uuid}/", state.config.base_url())
}

fn bounds(state: &AppState) -> UploadBounds<'_> {
    UploadBounds { max_bytes: state.config.asset_max_bytes, allowed_types: &state.config.asset_allowed_types }
}

/// The 410 of a request that takes no more files, saying why.
pub fn gone(status: FileRequestStatus) -> AppError {
    AppError::Gone {
        code: match status {
            FileRequestStatus::Expired => ErrorCode::RequestExpired,
            FileRequestStatus::Closed => ErrorCode::RequestClosed,
            _ => ErrorCode::RequestFull,
        },
        message: format!("this file request takes no more files: {}", status.explain()),
    }
}

/// Creates a request. Without `collection_id` a new collection named after the title receives
/// the files; a `collection_id` that is not one of the caller's collections is a 400 in `fields`.
pub async fn create(state: &AppState, user: &User, input: FileRequestIn, who: &Who) -> AppResult<FileRequest> {
    state.limits.share_create_per_user.check(user.id).await?;
    let now = state.clock.now_ms();
    let collection_id = input.collection_id;
    let policy = crate::service::policies::current(state).await?;
    let settings =
        FileRequestSettings::parse(input, &FileRequestSettings::defaults(), &bounds(state), now, true, &policy)?;
    let collection = match collection_id {
        Some(id) => match state.store.collection(id).await? {
            Some(c) if c.owner_id == user.id => c,
            _ => return Err(AppError::validation("collection_id", "is not one of your collections")),
        },
        None => state.store.insert_collection(user.id, &settings.title, &settings.instructions, now).await?,
    };
    let hash = match &settings.new_password {
        Some(p) => Some(state.auth.hash_password(p).await?),
        None => None,
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut details = audit_details(&uuid, &settings, hash.is_some());
    details["collection_id"] = json!(collection.id);
    let audit = |id: i64| who.entry(AuditAction::FileRequestCreated, id, details);
    let r =
        state.store.insert_file_request(&uuid, user.id, collection.id, &settings, hash.as_deref(), now, audit).await?;
    tracing::info!(file_request_id = r.id, collection_id = collection.id, "file request created");
    Ok(r)
}

/// What the audit log says about a request's settings (never its password).
fn audit_details(uuid: &str, s: &FileRequestSettings, password: bool) -> serde_json::Value {
    json!({
        "uuid": uuid,
        "title": s.title,
        "expires_at": s.expires_at.map(rfc3339),
        "max_files": s.max_files,
        "max_total_bytes": s.max_total_bytes,
        "password": password,
    })
}

/// A request the caller owns (admins: any); others get 404.
pub async fn owned(state: &AppState, user: &User, uuid: &str) -> AppResult<FileRequest> {
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(AppError::NotFound("file request"));
    }
    match state.store.file_request_by_uuid(uuid).await? {
        Some(r) if r.owner_id == user.id || user.is_admin() => Ok(r),
        _ => Err(AppError::NotFound("file request")),
    }
}

/// Changes a request's settings (the fields and rules of create; `collection_id` cannot change).
pub async fn update(
    state: &AppState,
    user: &User,
    uuid: &str,
    input: FileRequestIn,
    who: &Who,
) -> AppResult<FileRequest> {
    let r = owned(state, user, uuid).await?;
    if r.closed_at.is_some() {
        return Err(gone(FileRequestStatus::Closed));
    }
    if input.collection_id.is_some_and(|c| Some(c) != r.collection_id) {
        return Err(AppError::validation("collection_id", "cannot be changed"));
    }
    let now = state.clock.now_ms();
    let policy = crate::service::policies::current(state).await?;
    let settings =
        FileRequestSettings::parse(input, &FileRequestSettings::of(&r), &bounds(state), now, false, &policy)?;
    let hash = match &settings.new_password {
        Some(p) => Some(state.auth.hash_password(p).await?),
        None => None,
    };
    let has_password = hash.is_some() || (r.is_protected() && !settings.remove_password);
    let mut details = audit_details(&r.uuid, &settings, has_password);
    details["password_changed"] = json!(hash.is_some() || (r.is_protected() && settings.remove_password));
    let entry = who.entry(AuditAction::FileRequestUpdated, r.id, details);
    state.store.update_file_request(r.id, &settings, hash.as_deref(), now, &entry).await?;
    state.store.file_request_by_uuid(uuid).await?.ok_or(AppError::NotFound("file request"))
}

/// Closes a request: it takes no more files; the received ones stay.
pub async fn close(state: &AppState, user: &User, uuid: &str, who: &Who) -> AppResult<()> {
    let r = owned(state, user, uuid).await?;
    let entry = who.entry(AuditAction::FileRequestClosed, r.id, json!({"uuid": r.uuid}));
    state.store.close_file_request(r.id, state.clock.now_ms(), &entry).await?;
    tracing::info!(file_request_id = r.id, "file request closed");
    Ok(())
}

/// The request behind an uploader's URL: 404 when unknown.
pub async fn find(state: &AppState, uuid: &str) -> AppResult<FileRequest> {
    if uuid::Uuid::parse_str(uuid).is_err() {
        return Err(AppError::NotFound("file request"));
    }
    state.store.file_request_by_uuid(uuid).await?.ok_or(AppError::NotFound("file request"))
}

/// Whether `token` (from unlock) opens request `r`; requests without a password need none.
pub fn unlocked(state: &AppState, r: &FileRequest, token: Option<&str>) -> bool {
    !r.is_protected() || token.and_then(|t| state.auth.verify(t, TOKEN_TYPE).ok()).is_some_and(|c| c.sub == r.uuid)
}

/// 401 unless `token` opens the request.
pub fn require_unlocked(state: &AppState, r: &FileRequest, token: Option<&str>) -> AppResult<()> {
    if unlocked(state, r, token) {
        Ok(())
    } else {
        Err(AppError::Unauthenticated("this file request is protected: unlock it with its password first".into()))
    }
}

/// Exchanges a protected request's password for a token scoped to it, with the rate limit and
/// the lockout of protected links.
pub async fn unlock(state: &AppState, ip: IpAddr, uuid: &str, password: &str) -> AppResult<(String, u64)> {
    state.limits.share_access_per_ip.check(ip).await?;
    let r = find(state, uuid).await?;
    let now = state.clock.now_ms();
    match r.status(now) {
        FileRequestStatus::Open => {}
        s => return Err(gone(s)),
    }
    if !r.is_protected() {
        return Err(AppError::bad_request(ErrorCode::NotProtected, "this file request has no password"));
    }
    let key = crate::limits::file_request_password_key(ip, r.id);
    match check_link_password(state, &key, r.password_hash.as_deref(), password).await {
        Ok(()) => {}
        Err(PasswordRefused::LockedOut(retry_after_secs)) => return Err(AppError::RateLimited { retry_after_secs }),
        Err(PasswordRefused::Wrong { locked_out }) => {
            let who = crate::service::audit::who(state, None, Some(ip));
            let details = json!({"uuid": r.uuid});
            let failed = who.entry(AuditAction::FileRequestUnlockFailed, r.id, details.clone());
            crate::service::audit::record_quietly(state, failed).await;
            if locked_out {
                let locked = who.entry(AuditAction::FileRequestLockedOut, r.id, details);
                crate::service::audit::record_quietly(state, locked).await;
            }
            return Err(AppError::Forbidden { code: ErrorCode::WrongPassword, message: "wrong password".into() });
        }
        Err(PasswordRefused::Failed(e)) => return Err(e),
    }
    let twelve_hours = 12 * 3600;
    let ttl = match r.expires_at {
        Some(e) => (((e - now) / 1000).max(1) as u64).min(twelve_hours),
        None => twelve_hours,
    };
    Ok((state.auth.issue(&r.uuid, TOKEN_TYPE, ttl)?, ttl))
}

/// One upload's reservation of a file and `bytes`. Dropped without [`Slot::settle`] (a refusal,
/// an error, a client gone mid-body), it gives the reservation back.
pub struct Slot {
    state: AppState,
    request_id: i64,
    /// The most bytes this upload may bring (the pipeline's limit).
    pub bytes: u64,
    done: bool,
}

impl Slot {
    /// The reservation a resumable upload made at its creation ([`reserve_exact`]), taken up at
    /// its completion. Its refund is the upload's: [`Slot::forget`] it after [`accept`].
    pub fn held(state: &AppState, request_id: i64, bytes: u64) -> Slot {
        Slot { state: state.clone(), request_id, bytes, done: false }
    }

    /// Lets go without refunding (the reservation was settled, or is refunded with its upload).
    pub fn forget(mut self) {
        self.done = true;
    }

    /// Gives the reservation back now (a refusal): the next upload sees the room at once.
    pub async fn release(mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Err(e) = self.state.store.refund_upload(self.request_id, self.bytes as i64).await {
            tracing::error!(error = %e, file_request_id = self.request_id, "could not refund an upload reservation");
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (state, id, bytes) = (self.state.clone(), self.request_id, self.bytes as i64);
        tokio::spawn(async move {
            if let Err(e) = state.store.refund_upload(id, bytes).await {
                tracing::error!(error = %e, file_request_id = id, "could not refund an upload reservation");
            }
        });
    }
}

/// Admits one upload from `ip` to request `r` before its body is read: the per-IP rate limit
/// (429), the status (410), then a reservation of one file and of `declared` bytes (the body's
/// length when known), at most the per-file limit and the bytes left: exact under concurrency.
pub async fn reserve(state: &AppState, r: &FileRequest, ip: IpAddr, declared: Option<u64>) -> AppResult<Slot> {
    state.limits.file_request_upload_per_ip.check(ip).await?;
    let per_file =
        r.max_file_bytes.map_or(state.config.asset_max_bytes, |m| (m.max(0) as u64).min(state.config.asset_max_bytes));
    let want = declared.map_or(per_file, |d| d.max(1).min(per_file));
    let mut current = r.clone();
    for _ in 0..5 {
        let now = state.clock.now_ms();
        match current.status(now) {
            FileRequestStatus::Open => {}
            s => return Err(gone(s)),
        }
        let room = current.max_total_bytes.map(|m| m - current.bytes_received - current.bytes_reserved);
        let bytes = match room {
            Some(room) if room <= 0 => return Err(gone(FileRequestStatus::Full)),
            Some(room) => want.min(room as u64),
            None => want,
        };
        if state.store.reserve_upload(r.id, bytes as i64, now).await? == Reservation::Counted {
            return Ok(Slot { state: state.clone(), request_id: r.id, bytes, done: false });
        }
        // Someone else took the room (or the request changed): look again.
        current = state.store.file_request_by_uuid(&r.uuid).await?.ok_or(AppError::NotFound("file request"))?;
        if current.max_files.is_some_and(|m| current.uploads_count + current.files_reserved >= m) {
            return Err(gone(match current.status(state.clock.now_ms()) {
                FileRequestStatus::Open => FileRequestStatus::Full,
                s => s,
            }));
        }
    }
    Err(gone(FileRequestStatus::Full))
}

/// Admits one resumable upload of exactly `length` bytes (`Upload-Length`) to request `r` at its
/// creation: the per-IP rate limit (429), 413 beyond the per-file limit or the bytes left, 410
/// when the request is full (every file slot taken, counting uploads in flight). The reservation
/// stays with the upload until it becomes a file or is removed (`resumable::discard` refunds it:
/// termination, refusal, expiry).
pub async fn reserve_exact(state: &AppState, r: &FileRequest, ip: IpAddr, length: u64) -> AppResult<()> {
    state.limits.file_request_upload_per_ip.check(ip).await?;
    let per_file =
        r.max_file_bytes.map_or(state.config.asset_max_bytes, |m| (m.max(0) as u64).min(state.config.asset_max_bytes));
    if length > per_file {
        crate::service::uploads::count("too_large");
        return Err(AppError::TooLarge { limit: per_file });
    }
    let mut current = r.clone();
    for _ in 0..5 {
        let now = state.clock.now_ms();
        match current.status(now) {
            FileRequestStatus::Open => {}
            s => return Err(gone(s)),
        }
        if current.max_files.is_some_and(|m| current.uploads_count + current.files_reserved >= m) {
            return Err(gone(FileRequestStatus::Full));
        }
        if let Some(m) = current.max_total_bytes {
            let room = m - current.bytes_received - current.bytes_reserved;
            if room <= 0 {
                return Err(gone(FileRequestStatus::Full));
            }
            if length > room as u64 {
                return Err(AppError::TooLarge { limit: room as u64 });
            }
        }
        if state.store.reserve_upload(r.id, length as i64, now).await? == Reservation::Counted {
            return Ok(());
        }
        current = state.store.file_request_by_uuid(&r.uuid).await?.ok_or(AppError::NotFound("file request"))?;
    }
    Err(gone(FileRequestStatus::Full))
}

/// Completes a file request's resumable upload whose last byte arrived: the assembled file goes
/// through the one pipeline under the request's rules, then [`accept`] (the multipart path's
/// steps: owner's asset with `source`, counted, collection, notification). A refusal removes the
/// upload, which refunds its reservation; a completion already running elsewhere is a 409.
pub async fn receive_resumable(state: &AppState, r: &FileRequest, up: &Upload) -> AppResult<Receipt> {
    let allowed = accepted_types(state, r);
    let mut slot = Slot::held(state, r.id, up.length as u64);
    let made = async {
        let rec = crate::service::resumable::assemble(state, up, &rules(&slot, &allowed)).await?;
        let uploader = Uploader::parse(
            up.metadata.get("uploader_name").map(String::as_str),
            up.metadata.get("uploader_email").map(String::as_str),
            up.metadata.get("message").map(String::as_str),
            r.require_uploader_name,
            r.require_uploader_email,
        );
        let completes = crate::service::resumable::completion(state, up, false);
        accept(state, r, &mut slot, rec, uploader, Some(completes)).await
    }
    .await;
    slot.forget();
    match made {
        Ok(receipt) => {
            crate::service::resumable::finished(state, up).await;
            Ok(receipt)
        }
        Err(e) => {
            if !matches!(&e, AppError::Conflict { .. }) {
                crate::service::resumable::discard(state, up).await?;
            }
            Err(e)
        }
    }
}

/// The types a request accepts: its own list, or every type assets accept.
pub fn accepted_types(state: &AppState, r: &FileRequest) -> Vec<String> {
    if r.allowed_types.is_empty() { state.config.asset_allowed_types.clone() } else { r.allowed_types.clone() }
}

/// The pipeline's rules for an upload holding `slot`.
pub fn rules<'a>(slot: &Slot, allowed: &'a [String]) -> Rules<'a> {
    Rules { max_bytes: slot.bytes, allowed, pixels: PixelLimit::Asset, scan: true }
}

/// What an uploader learns of an accepted file, and nothing else.
pub struct Receipt {
    pub name: String,
    pub size: i64,
    pub mime_type: String,
    pub received_at: i64,
}

/// Checks a received file (every check of SPEC §2 under the request's rules), stores it as an
/// asset of the request's owner with its `source`, counts it against the request, adds it to
/// the target collection and tells the owner. On any refusal the file is removed; the caller
/// gives the reservation back ([`Slot::release`]).
pub async fn accept(
    state: &AppState,
    r: &FileRequest,
    slot: &mut Slot,
    rec: Received,
    uploader: Result<Uploader, AppError>,
    completes: Option<CompletedUpload>,
) -> AppResult<Receipt> {
    let uploader = match uploader {
        Ok(u) => u,
        Err(e) => {
            rec.discard(state).await;
            return Err(e);
        }
    };
    let owner = match state.store.user_by_id(r.owner_id).await? {
        Some(o) if o.is_active => o,
        _ => {
            rec.discard(state).await;
            return Err(gone(FileRequestStatus::Closed));
        }
    };
    let allowed = accepted_types(state, r);
    let source = AssetSource {
        file_request: r.uuid.clone(),
        uploader_name: uploader.name.clone(),
        uploader_email: uploader.email.clone(),
        message: uploader.message.clone(),
    };
    let meta = AssetMeta {
        title: String::new(),
        description: uploader.message.clone().unwrap_or_default(),
        tags: vec![],
        content_type: DEFAULT_CONTENT_TYPE.to_string(),
    };
    // The asset, the settled reservation and the completed upload commit together.
    let event = {
        let (owner_id, (id, uuid, title)) = (r.owner_id, (r.id, r.uuid.clone(), r.title.clone()));
        let upload_url = upload_url(state, &r.uuid);
        let uploader = serde_json::json!({"name": uploader.name, "email": uploader.email, "message": uploader.message});
        move |a: &AssetMade<'_>| crate::domain::webhooks::Event {
            owner_id,
            kind: crate::domain::webhooks::EventType::FileRequestUploaded,
            data: serde_json::json!({
                "file_request": {"id": id, "uuid": uuid, "title": title, "upload_url": upload_url},
                "asset": {"id": a.id, "name": a.name, "size": a.size, "mime_type": a.mime_type},
                "uploader": uploader,
                "received_at": crate::domain::time::rfc3339(a.created_at),
            }),
        }
    };
    let commit = AssetCommit { settles: Some((r.id, slot.bytes as i64)), completes, event: Some(Box::new(event)) };
    let asset =
        crate::service::assets::receive_with(state, &owner, meta, rec, &rules(slot, &allowed), Some(&source), &commit)
            .await?;
    slot.done = true;
    let now = state.clock.now_ms();
    if let Some(c) = r.collection_id {
        // Two instances on one SQLite file may meet a busy database: try again a few times.
        for attempt in 1..=5u64 {
            match state.store.add_collection_items(c, &[asset.id], now).await {
                Ok(_) => break,
                Err(e) if attempt == 5 => {
                    tracing::error!(error = %e, asset_id = asset.id, "could not add a received file to its collection");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await,
            }
        }
    }
    tracing::info!(file_request_id = r.id, asset_id = asset.id, size = asset.size, "file request upload received");
    notify_upload(state, r, &owner, &asset, &uploader);
    Ok(Receipt { name: asset.name, size: asset.size, mime_type: asset.mime_type, received_at: asset.created_at })
}

/// Tells the owner: a `file_request_upload` notification on every open socket and, with
/// `notify_on_upload` and SMTP configured, an e-mail.
fn notify_upload(state: &AppState, r: &FileRequest, owner: &User, asset: &Asset, uploader: &Uploader) {
    let message = serde_json::json!({
        "kind": "file_request_upload",
        "file_request_uuid": r.uuid,
        "file_request_title": r.title,
        "asset_id": asset.id,
        "file_name": asset.name,
        "size": asset.size,
        "uploader_name": uploader.name,
    });
    crate::service::notifications::notify(state, r.owner_id, message);
    if !r.notify_on_upload || !state.mailer.enabled() {
        return;
    }
    let who = match (&uploader.name, &uploader.email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (Some(n), None) => n.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => "someone".into(),
    };
    let message = uploader.message.as_deref().map(|m| format!("\nTheir message:\n{m}\n")).unwrap_or_default();
    let body = format!(
        "Hello {},\n\n{who} sent you a file through your file request \"{}\".\n\nFile: {} ({} bytes)\n{message}\nYou get this mail because the request has \"notify on upload\" turned on.\n",
        owner.name, r.title, asset.name, asset.size
    );
    state.mailer.send(&owner.email, &format!("New file for \"{}\"", r.title), body);
}
