//! Collections (SPEC §10): create, list, change, reorder, delete, and the assets in them. Only the
//! owner (or an admin) sees a collection; anyone else gets 404, as for assets. The assets of a
//! collection are always its owner's (an admin adding to someone's collection adds that person's
//! files).

use crate::app::AppState;
use crate::domain::audit::{AuditAction, Who};
use crate::domain::collections::{Collection, CollectionItem, CollectionPatch, MAX_ITEMS, NewCollection, join_ids};
use crate::domain::pagination::PageRequest;
use crate::domain::users::User;
use crate::error::{AppError, AppResult};
use crate::store::collections::Added;

/// Whose collections a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The caller's.
    Own,
    /// One owner's (admins).
    Owner(i64),
    /// Everyone's (admins).
    All,
}

/// Which way an item moves (the pages' up/down buttons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    Up,
    Down,
}

/// The collection if `user` may see it: its owner or an admin. Others get 404 (nothing is revealed).
pub async fn visible_collection(state: &AppState, user: &User, id: i64) -> AppResult<Collection> {
    match state.store.collection(id).await? {
        Some(c) if c.owner_id == user.id || user.is_admin() => Ok(c),
        _ => Err(AppError::NotFound("collection")),
    }
}

/// The collection's assets in their order.
pub async fn items(state: &AppState, c: &Collection) -> AppResult<Vec<CollectionItem>> {
    Ok(state.store.collection_items(c.id).await?)
}

/// A new, empty collection of `user`'s.
pub async fn create(state: &AppState, user: &User, new: NewCollection) -> AppResult<Collection> {
    let c = state.store.insert_collection(user.id, &new.title, &new.description, state.clock.now_ms()).await?;
    tracing::info!(collection_id = c.id, owner_id = user.id, "collection created");
    Ok(c)
}

/// Newest first: the caller's, or (admins only) one owner's or everyone's.
pub async fn list(state: &AppState, user: &User, scope: Scope, page: PageRequest) -> AppResult<(Vec<Collection>, i64)> {
    let owner = match scope {
        Scope::Own => Some(user.id),
        Scope::Owner(o) if o == user.id => Some(o),
        Scope::Owner(_) | Scope::All if !user.is_admin() => {
            return Err(AppError::forbidden("only admins may list other people's collections"));
        }
        Scope::Owner(o) => Some(o),
        Scope::All => None,
    };
    Ok(state.store.list_collections(owner, page).await?)
}

/// Changes the title, the description and the order. Every order id must be in the collection
/// (a 400 names the others in `fields.order`); ids left out keep their relative order after the
/// listed ones.
pub async fn update(state: &AppState, user: &User, id: i64, patch: CollectionPatch) -> AppResult<Collection> {
    let c = visible_collection(state, user, id).await?;
    let now = state.clock.now_ms();
    if let Some(order) = &patch.order {
        let present: Vec<i64> = items(state, &c).await?.iter().map(|i| i.asset.id).collect();
        let strangers: Vec<i64> = order.iter().copied().filter(|a| !present.contains(a)).collect();
        if !strangers.is_empty() {
            return Err(AppError::validation("order", format!("not in this collection: {}", join_ids(&strangers))));
        }
    }
    if patch.title.is_some() || patch.description.is_some() {
        let title = patch.title.as_deref().unwrap_or(&c.title);
        let description = patch.description.as_deref().unwrap_or(&c.description);
        state.store.update_collection(id, title, description, now).await?;
    }
    if let Some(order) = &patch.order {
        state.store.reorder_collection(id, order, now).await?;
    }
    visible_collection(state, user, id).await
}

/// Deletes the collection and its links; never the assets.
pub async fn delete(state: &AppState, user: &User, id: i64, who: &Who) -> AppResult<()> {
    let c = visible_collection(state, user, id).await?;
    let details = serde_json::json!({ "owner_id": c.owner_id, "title": c.title });
    let entry = who.entry(AuditAction::CollectionDeleted, id, details);
    state.store.delete_collection(id, state.clock.now_ms(), &entry).await?;
    tracing::info!(collection_id = id, by = user.id, "collection deleted");
    Ok(())
}

/// Appends the owner's assets `asset_ids` (parsed: positive, no repeats) after the present ones;
/// those already in it stay where they are. Unknown or someone else's ids are a 400 naming them in
/// `fields.asset_ids`, and nothing is added; so is passing `MAX_ITEMS` assets in all.
pub async fn add_items(state: &AppState, user: &User, id: i64, asset_ids: &[i64]) -> AppResult<Collection> {
    let c = visible_collection(state, user, id).await?;
    let foreign = state.store.foreign_assets(c.owner_id, asset_ids).await?;
    if !foreign.is_empty() {
        let whose = if c.owner_id == user.id { "your files" } else { "the owner's files" };
        return Err(AppError::validation(
            "asset_ids",
            format!("not among {whose} (unknown or someone else's): {}", join_ids(&foreign)),
        ));
    }
    match state.store.add_collection_items_capped(id, asset_ids, Some(MAX_ITEMS), state.clock.now_ms()).await? {
        Added::Added(n) => tracing::info!(collection_id = id, added = n, "collection items added"),
        Added::NoCollection => return Err(AppError::NotFound("collection")),
        Added::Full { has, adding } => {
            return Err(AppError::validation(
                "asset_ids",
                format!(
                    "a collection holds at most {MAX_ITEMS} files; this one has {has} and these would add {adding}"
                ),
            ));
        }
    }
    visible_collection(state, user, id).await
}

/// Takes one asset out of the collection (the asset stays); 404 if it is not in it.
pub async fn remove_item(state: &AppState, user: &User, id: i64, asset_id: i64) -> AppResult<Collection> {
    visible_collection(state, user, id).await?;
    if !state.store.remove_collection_item(id, asset_id, state.clock.now_ms()).await? {
        return Err(AppError::NotFound("collection item"));
    }
    visible_collection(state, user, id).await
}

/// Swaps one item with its neighbour (nothing happens at either end); 404 if it is not in it.
pub async fn move_item(state: &AppState, user: &User, id: i64, asset_id: i64, way: Move) -> AppResult<()> {
    let c = visible_collection(state, user, id).await?;
    let mut order: Vec<i64> = items(state, &c).await?.iter().map(|i| i.asset.id).collect();
    let at = order.iter().position(|a| *a == asset_id).ok_or(AppError::NotFound("collection item"))?;
    let other = match way {
        Move::Up if at > 0 => at - 1,
        Move::Down if at + 1 < order.len() => at + 1,
        _ => return Ok(()),
    };
    order.swap(at, other);
    state.store.reorder_collection(id, &order, state.clock.now_ms()).await?;
    Ok(())
}
