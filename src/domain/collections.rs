//! Collections (SPEC §10): an owner's assets, in an order, behind one link.

use super::assets::Asset;

/// A stored collection with its totals.
#[derive(Debug, Clone)]
pub struct Collection {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub description: String,
    /// How many assets it holds.
    pub item_count: i64,
    /// Their total size in bytes.
    pub total_size: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One asset of a collection, at its place (0 first).
#[derive(Debug, Clone)]
pub struct CollectionItem {
    pub asset: Asset,
    pub position: i64,
}
