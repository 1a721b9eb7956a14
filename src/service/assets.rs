//! Assets: who may see one, and storing an uploaded file as an asset (thumbnail, content-hash key,
//! row) so that it exists only once both bytes and row are durable.

use crate::app::AppState;
use crate::domain::assets::{Asset, AssetMeta, MediaType};
use crate::domain::users::User;
use crate::error::{AppError, AppResult};
use crate::service::uploads::{self, PixelLimit, Received};
use crate::store::assets::StoredFile;

/// The asset if `user` may see it: its owner or an admin. Others get 404 (nothing is revealed).
pub async fn visible_asset(state: &AppState, user: &User, id: i64) -> AppResult<Asset> {
    match state.store.asset(id).await? {
        Some(a) if a.owner_id == user.id || user.is_admin() => Ok(a),
        _ => Err(AppError::NotFound("asset")),
    }
}

/// Validates the received bytes, makes the thumbnail, moves the blob to its content-hash key and
/// commits the row: the asset exists only once both are durable.
async fn store_asset(state: &AppState, user: &User, mut meta: AssetMeta, rec: &Received) -> AppResult<Asset> {
    let mime = uploads::inspect(state, rec, &state.config.asset_allowed_types).await?;
    if meta.title.is_empty() {
        meta.title = rec.name.clone();
    }
    let media_type = MediaType::from_mime(&mime);
    let mut file = StoredFile {
        name: rec.name.clone(),
        mime_type: mime.clone(),
        media_type,
        size: rec.size as i64,
        sha256: rec.sha256.clone(),
        blob_key: format!("assets/{}/{}", user.id, rec.sha256),
        thumb_key: None,
        width: None,
        height: None,
        duration_seconds: None,
    };
    let probed = uploads::probe(state, rec, &mime, PixelLimit::Asset).await?;
    (file.width, file.height, file.duration_seconds) = (probed.width, probed.height, probed.duration_seconds);
    let thumb = probed.thumbnail;
    if let Some((bytes, tmime)) = thumb {
        let ext = if tmime == "image/png" { "png" } else { "jpg" };
        let key = format!("thumbs/{}/{}.{ext}", user.id, rec.sha256);
        state.blobs.put_bytes(&key, bytes, tmime).await?;
        file.thumb_key = Some(key);
    }
    state.blobs.commit(&rec.key, &file.blob_key).await?;
    let id = state.store.insert_asset(user.id, &meta, &file, state.clock.now_ms()).await?;
    tracing::info!(asset_id = id, owner_id = user.id, size = rec.size, mime = %mime, "asset stored");
    state.store.asset(id).await?.ok_or(AppError::NotFound("asset"))
}

/// Stores a received file as `user`'s asset with `meta` (`rec` is discarded on any refusal).
pub async fn receive(state: &AppState, user: &User, meta: AssetMeta, rec: Received) -> AppResult<Asset> {
    match store_asset(state, user, meta, &rec).await {
        Ok(asset) => {
            uploads::accepted(rec.size);
            Ok(asset)
        }
        Err(e) => {
            uploads::discard(state, &rec).await;
            Err(e)
        }
    }
}

/// Deletes an asset (its owner or an admin): its review sessions end first, so that their members
/// are told (`session_ended`, sockets closed) on every instance (their recordings are kept for the
/// replay); then its links, the row, and the blobs no other row uses.
pub async fn delete(state: &AppState, user: &User, id: i64) -> AppResult<()> {
    let a = visible_asset(state, user, id).await?;
    crate::service::collaboration::end_sessions(state, state.store.open_sessions_of_asset(id).await?).await?;
    state.store.delete_shares_of_asset(id).await?;
    state.store.delete_asset(id, state.clock.now_ms()).await?;
    crate::service::blobs::release(state, &a.blob_key).await;
    if let Some(t) = &a.thumb_key {
        crate::service::blobs::release(state, t).await;
    }
    tracing::info!(asset_id = id, by = user.id, "asset deleted");
    Ok(())
}
