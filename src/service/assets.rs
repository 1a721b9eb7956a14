//! Assets: who may see one, and storing an uploaded file as an asset (thumbnail, content-hash key,
//! row) so that it exists only once both bytes and row are durable.

use crate::app::AppState;
use crate::domain::assets::{Asset, AssetCommit, AssetMeta, AssetSource, MediaType};
use crate::domain::audit::{AuditAction, Who};
use crate::domain::uploads::{Upload, asset_meta};
use crate::domain::users::User;
use crate::error::{AppError, AppResult};
use crate::service::resumable;
use crate::service::uploads::{self, Checked, Claims, Received, Rules};
use crate::store::assets::StoredFile;

/// The asset if `user` may see it: its owner or an admin. Others get 404 (nothing is revealed).
pub async fn visible_asset(state: &AppState, user: &User, id: i64) -> AppResult<Asset> {
    match state.store.asset(id).await? {
        Some(a) if a.owner_id == user.id || user.is_admin() => Ok(a),
        _ => Err(AppError::NotFound("asset")),
    }
}

/// Moves the checked bytes and thumbnail to their content-hash keys, then commits the row: the
/// asset exists only once both are durable.
async fn store_asset(
    state: &AppState,
    user: &User,
    mut meta: AssetMeta,
    file: &Checked,
    source: Option<&AssetSource>,
    commit: &AssetCommit,
) -> AppResult<Asset> {
    if meta.title.is_empty() {
        meta.title = file.name.clone();
    }
    let blob_key = format!("assets/{}/{}", user.id, file.sha256);
    let thumb_key = file.store(state, &blob_key, |ext| format!("thumbs/{}/{}.{ext}", user.id, file.sha256)).await?;
    let stored = StoredFile {
        name: file.name.clone(),
        mime_type: file.mime.clone(),
        media_type: MediaType::from_mime(&file.mime),
        size: file.size as i64,
        sha256: file.sha256.clone(),
        blob_key,
        thumb_key,
        width: file.width,
        height: file.height,
        duration_seconds: file.duration_seconds,
    };
    let Some(id) = state.store.insert_asset_from(user.id, &meta, &stored, source, commit, state.clock.now_ms()).await?
    else {
        return Err(resumable::completed_elsewhere());
    };
    tracing::info!(asset_id = id, owner_id = user.id, size = file.size, mime = %file.mime, "asset stored");
    state.store.asset(id).await?.ok_or(AppError::NotFound("asset"))
}

/// Checks a received file and stores it as `user`'s asset with `meta` (`rec` is removed on any
/// refusal).
pub async fn receive(state: &AppState, user: &User, meta: AssetMeta, rec: Received) -> AppResult<Asset> {
    receive_with(state, user, meta, rec, &Rules::asset(&state.config), None, &AssetCommit::default()).await
}

/// [`receive`] under other `rules` (a file request's narrower limits and types), remembering where
/// the file came from, with the writes of `commit` in the asset's transaction.
pub async fn receive_with(
    state: &AppState,
    user: &User,
    meta: AssetMeta,
    rec: Received,
    rules: &Rules<'_>,
    source: Option<&AssetSource>,
    commit: &AssetCommit,
) -> AppResult<Asset> {
    let file = uploads::check(state, rec, rules, &Claims::default()).await?;
    match store_asset(state, user, meta, &file, source, commit).await {
        Ok(asset) => {
            uploads::accepted(file.size);
            Ok(asset)
        }
        Err(e) => {
            file.discard(state).await;
            Err(e)
        }
    }
}

/// Deletes an asset (its owner or an admin): its review sessions end first, so that their members
/// are told (`session_ended`, sockets closed) on every instance (their recordings are kept for the
/// replay); then its links, the row, and the blobs no other row uses.
pub async fn delete(state: &AppState, user: &User, id: i64, who: &Who) -> AppResult<()> {
    let a = visible_asset(state, user, id).await?;
    crate::service::collaboration::end_sessions(state, state.store.open_sessions_of_asset(id).await?).await?;
    state.store.delete_shares_of_asset(id).await?;
    let details = serde_json::json!({ "owner_id": a.owner_id, "name": a.name, "size": a.size });
    let entry = who.entry(AuditAction::AssetDeleted, id, details);
    state.store.delete_asset(id, state.clock.now_ms(), &entry).await?;
    crate::service::blobs::release(state, &a.blob_key).await;
    if let Some(t) = &a.thumb_key {
        crate::service::blobs::release(state, t).await;
    }
    tracing::info!(asset_id = id, by = user.id, "asset deleted");
    Ok(())
}

/// Completes a resumable upload of `user`'s (`/api/v3/uploads/`) into an asset, exactly as
/// `POST /api/v3/assets/` makes one: the metadata checked at creation (`title`, `description`,
/// `tags`, `content_type`), the file through every check of the one pipeline. Returns the asset
/// and marks the upload done; on any refusal the upload is removed and the refusal returned.
pub async fn receive_resumable(state: &AppState, user: &User, up: &Upload) -> AppResult<Asset> {
    let made = async {
        let meta = asset_meta(&up.metadata)?;
        let rules = Rules::asset(&state.config);
        let rec = resumable::assemble(state, up, &rules).await?;
        let commit = AssetCommit { completes: Some(resumable::completion(state, up, true)), ..Default::default() };
        receive_with(state, user, meta, rec, &rules, None, &commit).await
    };
    match made.await {
        Ok(asset) => {
            resumable::finished(state, up).await;
            Ok(asset)
        }
        Err(e) => {
            // A completion another request is running is not a refusal.
            if !matches!(&e, AppError::Conflict { .. }) {
                resumable::discard(state, up).await?;
            }
            Err(e)
        }
    }
}

pub use crate::domain::assets::asset_location;
