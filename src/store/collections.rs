//! Queries on collections and their items. Stored positions order the items (new ones go last);
//! they are read back numbered from 0 without gaps. Deleting an asset or a collection removes its
//! items (foreign keys), and a deleted collection takes its links with it.

use sqlx::Row;
use sqlx::any::AnyRow;

use std::collections::HashSet;

use super::assets::{ASSET_COLUMNS, asset_from_row};
use super::{Dialect, Store, next_id};
use crate::domain::assets::Asset;
use crate::domain::audit::AuditEntry;
use crate::domain::collections::{Collection, CollectionItem};
use crate::domain::pagination::PageRequest;

/// What adding assets to a collection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// This many were added (those already in it are not counted).
    Added(u64),
    /// There is no such collection.
    NoCollection,
    /// Nothing was added: the collection has `has` assets and `adding` new ones would pass the cap.
    Full { has: i64, adding: i64 },
}

const COLUMNS: &str = "c.id, c.owner_id, c.title, c.description, c.created_at, c.updated_at,
    (SELECT COUNT(*) FROM collection_items i WHERE i.collection_id = c.id) AS item_count,
    (SELECT CAST(COALESCE(SUM(a.size), 0) AS BIGINT) FROM collection_items i JOIN assets a ON a.id = i.asset_id
      WHERE i.collection_id = c.id) AS total_size";

fn collection_from_row(r: &AnyRow) -> Result<Collection, sqlx::Error> {
    Ok(Collection {
        id: r.try_get("id")?,
        owner_id: r.try_get("owner_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        item_count: r.try_get("item_count")?,
        total_size: r.try_get("total_size")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn insert_collection(
        &self,
        owner_id: i64,
        title: &str,
        description: &str,
        now: i64,
    ) -> anyhow::Result<Collection> {
        let id = {
            let (_writing, mut tx) = self.begin_write().await?;
            let id = next_id(&mut tx, "collections").await?;
            sqlx::query(
                "INSERT INTO collections (id, owner_id, title, description, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(id)
            .bind(owner_id)
            .bind(title)
            .bind(description)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        };
        self.collection(id).await?.ok_or_else(|| anyhow::anyhow!("collection vanished after insert"))
    }

    pub async fn collection(&self, id: i64) -> anyhow::Result<Option<Collection>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM collections c WHERE c.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(collection_from_row).transpose()?)
    }

    /// Newest first; `owner` None lists every owner's (administrators).
    pub async fn list_collections(
        &self,
        owner: Option<i64>,
        page: PageRequest,
    ) -> anyhow::Result<(Vec<Collection>, i64)> {
        let clause = if owner.is_some() { "c.owner_id = $1" } else { "$1 = $1" };
        let owner = owner.unwrap_or(0);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM collections c WHERE {clause}
             ORDER BY c.created_at DESC, c.id DESC LIMIT $2 OFFSET $3"
        )))
        .bind(owner)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM collections c WHERE {clause}")))
                .bind(owner)
                .fetch_one(&self.pool)
                .await?;
        Ok((rows.iter().map(collection_from_row).collect::<Result<Vec<_>, _>>()?, count))
    }

    /// The collection's assets in their order, numbered from 0 without gaps (a removed or
    /// deleted asset leaves a hole in the stored positions; they only order the items).
    pub async fn collection_items(&self, id: i64) -> anyhow::Result<Vec<CollectionItem>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM collection_items i
             JOIN assets a ON a.id = i.asset_id JOIN users u ON u.id = a.owner_id
             WHERE i.collection_id = $1 ORDER BY i.position, a.id"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .enumerate()
            .map(|(i, r)| Ok(CollectionItem { asset: asset_from_row(r)?, position: i as i64 }))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The owner's assets that are not in the collection, newest first (the pages' picker).
    pub async fn assets_outside_collection(
        &self,
        owner_id: i64,
        id: i64,
        page: PageRequest,
    ) -> anyhow::Result<(Vec<Asset>, i64)> {
        const OUTSIDE: &str = "a.owner_id = $1
            AND NOT EXISTS (SELECT 1 FROM collection_items i WHERE i.collection_id = $2 AND i.asset_id = a.id)";
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSET_COLUMNS} FROM assets a JOIN users u ON u.id = a.owner_id
             WHERE {OUTSIDE} ORDER BY a.created_at DESC, a.id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(owner_id)
        .bind(id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let (count,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM assets a WHERE {OUTSIDE}")))
                .bind(owner_id)
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        Ok((rows.iter().map(asset_from_row).collect::<Result<Vec<_>, _>>()?, count))
    }

    /// The ids among `asset_ids` that are not assets of `owner_id` (unknown or someone else's), in
    /// the order given, each once.
    pub async fn foreign_assets(&self, owner_id: i64, asset_ids: &[i64]) -> anyhow::Result<Vec<i64>> {
        let mut owned = HashSet::new();
        // One query per chunk; both engines take far more parameters than this.
        for chunk in asset_ids.chunks(500) {
            let marks = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT id FROM assets WHERE owner_id = $1 AND id IN ({marks})");
            let mut q = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)).bind(owner_id);
            for id in chunk {
                q = q.bind(*id);
            }
            owned.extend(q.fetch_all(&self.pool).await?.into_iter().map(|(id,)| id));
        }
        let mut foreign = Vec::new();
        for &id in asset_ids {
            if !owned.contains(&id) && !foreign.contains(&id) {
                foreign.push(id);
            }
        }
        Ok(foreign)
    }

    /// Appends the assets not yet in the collection, in the given order; returns how many were
    /// added. Only assets of the collection's owner are added (the caller has named the others to
    /// the client with `foreign_assets`; one deleted meanwhile is skipped). No cap: the API uses
    /// `add_collection_items_capped`.
    pub async fn add_collection_items(&self, id: i64, asset_ids: &[i64], now: i64) -> anyhow::Result<u64> {
        match self.add_collection_items_capped(id, asset_ids, None, now).await? {
            Added::Added(n) => Ok(n),
            Added::NoCollection | Added::Full { .. } => Ok(0),
        }
    }

    /// `add_collection_items`, refused as a whole (`Added::Full`) when the collection would then
    /// hold more than `cap` assets. Checked under the collection's lock, so concurrent additions
    /// cannot pass the cap together.
    pub async fn add_collection_items_capped(
        &self,
        id: i64,
        asset_ids: &[i64],
        cap: Option<usize>,
        now: i64,
    ) -> anyhow::Result<Added> {
        let (_writing, mut tx) = self.begin_write().await?;
        // Serialises concurrent additions to one collection (PostgreSQL row lock; SQLite writes
        // one at a time anyway).
        let lock = match self.dialect {
            Dialect::Postgres => "SELECT id FROM collections WHERE id = $1 FOR UPDATE",
            Dialect::Sqlite => "SELECT id FROM collections WHERE id = $1",
        };
        if sqlx::query(lock).bind(id).fetch_optional(&mut *tx).await?.is_none() {
            return Ok(Added::NoCollection);
        }
        let present: Vec<(i64, i64)> =
            sqlx::query_as("SELECT asset_id, position FROM collection_items WHERE collection_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let present_ids: HashSet<i64> = present.iter().map(|(a, _)| *a).collect();
        let mut fresh: Vec<i64> = Vec::new();
        for &a in asset_ids {
            if !present_ids.contains(&a) && !fresh.contains(&a) {
                fresh.push(a);
            }
        }
        if let Some(cap) = cap
            && present.len() + fresh.len() > cap
        {
            return Ok(Added::Full { has: present.len() as i64, adding: fresh.len() as i64 });
        }
        let mut next = present.iter().map(|(_, p)| p + 1).max().unwrap_or(0);
        let mut added = 0;
        for asset_id in fresh {
            let done = sqlx::query(
                "INSERT INTO collection_items (collection_id, asset_id, position, added_at)
                 SELECT $1, $2, $3, $4 WHERE EXISTS (
                   SELECT 1 FROM assets a JOIN collections c ON c.owner_id = a.owner_id
                   WHERE a.id = $2 AND c.id = $1)
                 ON CONFLICT (collection_id, asset_id) DO NOTHING",
            )
            .bind(id)
            .bind(asset_id)
            .bind(next)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                added += done.rows_affected();
                next += 1;
            }
        }
        if added > 0 {
            sqlx::query("UPDATE collections SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.content_changed().await;
        Ok(Added::Added(added))
    }

    /// Removes one asset from the collection; false if it was not in it.
    pub async fn remove_collection_item(&self, id: i64, asset_id: i64, now: i64) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM collection_items WHERE collection_id = $1 AND asset_id = $2")
            .bind(id)
            .bind(asset_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            sqlx::query("UPDATE collections SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.content_changed().await;
        Ok(done.rows_affected() > 0)
    }

    /// Puts the listed assets first, in that order; the others follow in their current order.
    pub async fn reorder_collection(&self, id: i64, order: &[i64], now: i64) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        let current: Vec<(i64,)> = sqlx::query_as(
            "SELECT asset_id FROM collection_items WHERE collection_id = $1 ORDER BY position, asset_id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids: Vec<i64> = order.iter().copied().filter(|a| current.iter().any(|(c,)| c == a)).collect();
        ids.dedup();
        ids.extend(current.iter().map(|(c,)| *c).filter(|c| !order.contains(c)));
        for (position, asset_id) in ids.iter().enumerate() {
            sqlx::query("UPDATE collection_items SET position = $1 WHERE collection_id = $2 AND asset_id = $3")
                .bind(position as i64)
                .bind(id)
                .bind(asset_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE collections SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.content_changed().await;
        Ok(())
    }

    pub async fn update_collection(&self, id: i64, title: &str, description: &str, now: i64) -> anyhow::Result<()> {
        self.write(
            sqlx::query("UPDATE collections SET title = $1, description = $2, updated_at = $3 WHERE id = $4")
                .bind(title)
                .bind(description)
                .bind(now)
                .bind(id),
        )
        .await?;
        self.content_changed().await;
        Ok(())
    }

    /// Removes the collection and its links (foreign keys); never the assets. The audit entry
    /// commits with it.
    pub async fn delete_collection(&self, id: i64, now: i64, audit: &AuditEntry) -> anyhow::Result<bool> {
        let (_writing, mut tx) = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM collections WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if done.rows_affected() > 0 {
            super::audit::insert(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        self.content_changed().await;
        Ok(done.rows_affected() > 0)
    }

    /// `shares.asset_id` may be NULL (a collection link): PostgreSQL drops the constraint; SQLite,
    /// which cannot, rebuilds the table the way its documentation prescribes (foreign keys off,
    /// new table, copy, drop, rename, indexes, foreign key check), once.
    pub(super) async fn relax_share_asset(&self) -> anyhow::Result<()> {
        match self.dialect {
            Dialect::Postgres => {
                let (nullable,): (String,) = sqlx::query_as(
                    "SELECT is_nullable::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = 'shares' AND column_name = 'asset_id'",
                )
                .fetch_one(&self.pool)
                .await?;
                if nullable != "YES" {
                    sqlx::query("ALTER TABLE shares ALTER COLUMN asset_id DROP NOT NULL").execute(&self.pool).await?;
                }
                Ok(())
            }
            Dialect::Sqlite => {
                let _writing = self.writing().await;
                let mut conn = self.writer.acquire().await?;
                let (not_null,): (i64,) =
                    sqlx::query_as("SELECT \"notnull\" FROM pragma_table_info('shares') WHERE name = 'asset_id'")
                        .fetch_one(&mut *conn)
                        .await?;
                if not_null == 0 {
                    return Ok(());
                }
                let (table,): (String,) =
                    sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'shares'")
                        .fetch_one(&mut *conn)
                        .await?;
                let indexes: Vec<(String,)> = sqlx::query_as(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'shares' AND sql IS NOT NULL",
                )
                .fetch_all(&mut *conn)
                .await?;
                let relaxed = relaxed_shares_table(&table)?;
                sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
                let rebuilt = async {
                    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                    let steps = async {
                        sqlx::query(sqlx::AssertSqlSafe(relaxed)).execute(&mut *conn).await?;
                        sqlx::query("INSERT INTO shares_rebuilt SELECT * FROM shares").execute(&mut *conn).await?;
                        sqlx::query("DROP TABLE shares").execute(&mut *conn).await?;
                        sqlx::query("ALTER TABLE shares_rebuilt RENAME TO shares").execute(&mut *conn).await?;
                        for (index,) in &indexes {
                            sqlx::query(sqlx::AssertSqlSafe(index.clone())).execute(&mut *conn).await?;
                        }
                        let broken = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut *conn).await?;
                        anyhow::ensure!(broken.is_empty(), "rebuilding shares broke {} foreign keys", broken.len());
                        Ok::<_, anyhow::Error>(())
                    };
                    match steps.await {
                        Ok(()) => {
                            sqlx::query("COMMIT").execute(&mut *conn).await?;
                            Ok(())
                        }
                        Err(e) => {
                            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                            Err(e)
                        }
                    }
                };
                let result: anyhow::Result<()> = rebuilt.await;
                sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                result
            }
        }
    }
}

/// The `CREATE TABLE shares` text with `asset_id` nullable, named `shares_rebuilt`.
fn relaxed_shares_table(sql: &str) -> anyhow::Result<String> {
    let start = sql.find('(').ok_or_else(|| anyhow::anyhow!("unexpected shares schema"))?;
    let mut body = sql[start..].to_string();
    let at = body.find("asset_id").ok_or_else(|| anyhow::anyhow!("shares has no asset_id"))?;
    let rest = &body[at..];
    let end = rest.find(',').ok_or_else(|| anyhow::anyhow!("unexpected shares schema"))?;
    let column = &rest[..end];
    anyhow::ensure!(column.contains("NOT NULL"), "shares.asset_id is not NOT NULL: {column}");
    let relaxed = column.replacen(" NOT NULL", "", 1);
    body.replace_range(at..at + end, &relaxed);
    Ok(format!("CREATE TABLE shares_rebuilt {body}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rebuilt_table_only_loses_the_asset_constraint() {
        let sql = "CREATE TABLE shares (\n    id BIGINT PRIMARY KEY,\n    uuid TEXT NOT NULL UNIQUE,\n    asset_id            BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,\n    owner_id BIGINT NOT NULL REFERENCES users (id), collection_id BIGINT REFERENCES collections (id) ON DELETE CASCADE)";
        let out = super::relaxed_shares_table(sql).expect("the shares schema is recognised");
        assert!(out.starts_with("CREATE TABLE shares_rebuilt ("));
        assert!(out.contains("asset_id            BIGINT REFERENCES assets (id) ON DELETE CASCADE,"));
        assert!(out.contains("uuid TEXT NOT NULL UNIQUE"));
        assert!(out.contains("owner_id BIGINT NOT NULL REFERENCES users (id)"));
    }
}
