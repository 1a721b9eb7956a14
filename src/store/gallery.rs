//! Gallery posts (SPEC §6) and the full-text search over assets behind the dashboard's search.
//! Search uses SQLite FTS5 or PostgreSQL full-text search: the two dialects sit side by side in
//! `ensure_search_index` (the index and the triggers that keep it in step with `assets` and
//! `users`) and in `search_assets` (the query).

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{Dialect, Store, next_id};
use crate::domain::gallery::{NewPost, Post, SearchQuery};
use crate::domain::pagination::PageRequest;

/// Why a post was not created.
#[derive(Debug, PartialEq, Eq)]
pub enum PostRefused {
    /// No asset with that id and content type.
    NoSuchContent,
    /// The caller already has an active post of it.
    AlreadyShared,
}

/// Which posts a list shows (active ones only, newest first).
#[derive(Debug, Default, Clone)]
pub struct PostFilter {
    pub category: Option<String>,
    pub shared_by: Option<i64>,
}

/// `stats` as the store counts it.
#[derive(Debug, Default)]
pub struct GalleryStats {
    pub total: i64,
    pub by_category: BTreeMap<String, i64>,
    pub by_content_type: BTreeMap<String, i64>,
    /// (name, email, count), most posts first.
    pub top_sharers: Vec<(String, String, i64)>,
}

/// One owner's group of search hits.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchGroup {
    pub owner_id: i64,
    pub owner_name: String,
    /// Matching assets of this owner, best first (at most `SEARCH_ITEMS_PER_OWNER`).
    pub items: Vec<SearchItem>,
    /// All matching assets of this owner.
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchItem {
    pub id: i64,
    pub title: String,
    pub media_type: String,
    pub content_type: String,
    pub thumb_key: Option<String>,
    pub blob_key: String,
    pub mime_type: String,
    pub name: String,
    pub sha256: String,
    /// Whether the caller has an active gallery post of this asset.
    pub shared_by_caller: bool,
}

pub const SEARCH_ITEMS_PER_OWNER: i64 = 20;

const POST_SELECT: &str = "SELECT p.id, p.content_type, p.object_id, p.caption, p.category, p.shared_at, p.is_active,
        s.id AS sharer_id, s.name AS sharer_name, s.email AS sharer_email,
        a.title, a.media_type, CAST(CASE WHEN a.thumb_key IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_thumb,
        o.id AS owner_id, o.name AS owner_name, o.email AS owner_email
    FROM gallery_posts p
    JOIN assets a ON a.id = p.object_id
    JOIN users s ON s.id = p.shared_by
    JOIN users o ON o.id = a.owner_id";

fn post_from(r: &sqlx::any::AnyRow) -> Result<Post, sqlx::Error> {
    Ok(Post {
        id: r.try_get("id")?,
        content_type: r.try_get("content_type")?,
        object_id: r.try_get("object_id")?,
        caption: r.try_get("caption")?,
        category: r.try_get("category")?,
        shared_at: r.try_get("shared_at")?,
        is_active: r.try_get::<i64, _>("is_active")? != 0,
        shared_by_id: r.try_get("sharer_id")?,
        shared_by_name: r.try_get("sharer_name")?,
        shared_by_email: r.try_get("sharer_email")?,
        asset_title: r.try_get("title")?,
        asset_media_type: r.try_get("media_type")?,
        asset_has_thumbnail: r.try_get::<i64, _>("has_thumb")? != 0,
        owner_id: r.try_get("owner_id")?,
        owner_name: r.try_get("owner_name")?,
        owner_email: r.try_get("owner_email")?,
    })
}

impl Store {
    /// Serialized public answers of the gallery list, cleared by every write (`content_changed`).
    pub fn gallery_cache(&self) -> &super::cache::TtlCache<bytes::Bytes> {
        &self.gallery_cache
    }

    /// Creates a post of an asset of `new.content_type`. The partial unique index on active
    /// posts settles two concurrent shares of the same content by the same user.
    pub async fn create_gallery_post(
        &self,
        user_id: i64,
        new: &NewPost,
        now_ms: i64,
    ) -> anyhow::Result<Result<i64, PostRefused>> {
        let mut tx = self.pool.begin().await?;
        let asset: Option<(i64,)> = sqlx::query_as("SELECT id FROM assets WHERE id = $1 AND content_type = $2")
            .bind(new.object_id)
            .bind(&new.content_type)
            .fetch_optional(&mut *tx)
            .await?;
        if asset.is_none() {
            return Ok(Err(PostRefused::NoSuchContent));
        }
        let existing: Option<(i64,)> = sqlx::query_as(
            "SELECT id FROM gallery_posts WHERE shared_by = $1 AND content_type = $2 AND object_id = $3 AND is_active = 1",
        )
        .bind(user_id)
        .bind(&new.content_type)
        .bind(new.object_id)
        .fetch_optional(&mut *tx)
        .await?;
        if existing.is_some() {
            return Ok(Err(PostRefused::AlreadyShared));
        }
        let id = next_id(&mut tx, "gallery_posts").await?;
        let res = sqlx::query(
            "INSERT INTO gallery_posts (id, content_type, object_id, caption, category, shared_by, shared_at, is_active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1)",
        )
        .bind(id)
        .bind(&new.content_type)
        .bind(new.object_id)
        .bind(&new.caption)
        .bind(&new.category)
        .bind(user_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(Err(PostRefused::AlreadyShared)),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        self.content_changed();
        Ok(Ok(id))
    }

    /// An active post whose asset still exists.
    pub async fn gallery_post(&self, id: i64) -> anyhow::Result<Option<Post>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{POST_SELECT} WHERE p.id = $1 AND p.is_active = 1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| post_from(&r)).transpose()?)
    }

    /// A page of active posts, newest first, and how many there are in all.
    pub async fn gallery_posts(&self, filter: &PostFilter, page: PageRequest) -> anyhow::Result<(Vec<Post>, i64)> {
        // Absent filters bind NULL and match everything: one statement (and one prepared plan).
        const WHERE: &str =
            "WHERE p.is_active = 1 AND ($1 IS NULL OR p.category = $1) AND ($2 IS NULL OR p.shared_by = $2)";
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{POST_SELECT} {WHERE} ORDER BY p.shared_at DESC, p.id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(filter.category.as_deref())
        .bind(filter.shared_by)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let posts = rows.iter().map(post_from).collect::<Result<Vec<_>, _>>()?;
        // A short page is the last one: its count needs no second query.
        let short = (posts.len() as i64) < page.limit();
        let count = if short && (!posts.is_empty() || page.page == 1) {
            page.offset() + posts.len() as i64
        } else {
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM gallery_posts p JOIN assets a ON a.id = p.object_id {WHERE}"
            )))
            .bind(filter.category.as_deref())
            .bind(filter.shared_by)
            .fetch_one(&self.pool)
            .await?;
            n
        };
        Ok((posts, count))
    }

    /// Soft delete: the post stays, inactive. False when there was no active post.
    pub async fn deactivate_gallery_post(&self, id: i64) -> anyhow::Result<bool> {
        let res = sqlx::query("UPDATE gallery_posts SET is_active = 0 WHERE id = $1 AND is_active = 1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.content_changed();
        Ok(res.rows_affected() > 0)
    }

    /// The sharer of a post, active or not (to tell 403 from 404).
    pub async fn gallery_post_owner(&self, id: i64) -> anyhow::Result<Option<(i64, bool)>> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT p.shared_by, p.is_active FROM gallery_posts p JOIN assets a ON a.id = p.object_id WHERE p.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(by, active)| (by, active != 0)))
    }

    /// Counts over active posts whose asset still exists.
    pub async fn gallery_stats(&self, top: i64) -> anyhow::Result<GalleryStats> {
        const ACTIVE: &str = "FROM gallery_posts p JOIN assets a ON a.id = p.object_id WHERE p.is_active = 1";
        let mut stats = GalleryStats::default();
        for (col, map) in [("category", &mut stats.by_category), ("content_type", &mut stats.by_content_type)] {
            let rows: Vec<(String, i64)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT p.{col}, COUNT(*) {ACTIVE} GROUP BY p.{col}")))
                    .fetch_all(&self.pool)
                    .await?;
            map.extend(rows);
        }
        stats.total = stats.by_category.values().sum();
        stats.top_sharers = sqlx::query_as(
            "SELECT u.name, u.email, COUNT(*) AS n
             FROM gallery_posts p JOIN assets a ON a.id = p.object_id JOIN users u ON u.id = p.shared_by
             WHERE p.is_active = 1 GROUP BY u.id, u.name, u.email ORDER BY n DESC, u.id LIMIT $1",
        )
        .bind(top)
        .fetch_all(&self.pool)
        .await?;
        Ok(stats)
    }

    /// Full-text search over asset titles, descriptions, tags and owner names, grouped by owner:
    /// owners ordered by their best hit, each with up to `SEARCH_ITEMS_PER_OWNER` hits, best first.
    /// Returns the page of groups and the number of matching owners.
    pub async fn search_assets(
        &self,
        q: &SearchQuery,
        caller_id: i64,
        page: PageRequest,
    ) -> anyhow::Result<(Vec<SearchGroup>, i64)> {
        // `hits`: (asset id, owner id, rank), lower rank is better in both dialects.
        let (hits, arg) = match self.dialect {
            Dialect::Sqlite => (
                // bm25() is refused inside a CTE with a join; the `rank` column, configured with
                // the same weights (title, description, tags, owner), is not.
                "SELECT a.id, a.owner_id, s.rank
                 FROM (SELECT rowid AS asset_id, rank FROM asset_search
                       WHERE asset_search MATCH $1 AND rank MATCH 'bm25(10.0, 2.0, 5.0, 3.0)') s
                 JOIN assets a ON a.id = s.asset_id
                 WHERE ($2 IS NULL OR a.content_type = $2)",
                // Every word must appear, each as a prefix: "portr john" finds "Portrait by John".
                q.terms.iter().map(|t| format!("\"{t}\"*")).collect::<Vec<_>>().join(" "),
            ),
            Dialect::Postgres => (
                "SELECT a.id, a.owner_id, -ts_rank(s.document, query) AS rank
                 FROM asset_search s JOIN assets a ON a.id = s.asset_id, to_tsquery('english', $1) query
                 WHERE s.document @@ query AND ($2 IS NULL OR a.content_type = $2)",
                q.terms.iter().map(|t| format!("{t}:*")).collect::<Vec<_>>().join(" & "),
            ),
        };
        let groups: Vec<(i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH hits AS ({hits}),
                  owners AS (SELECT owner_id, MIN(rank) AS best, COUNT(*) AS n FROM hits GROUP BY owner_id)
             SELECT owner_id, n, CAST(COUNT(*) OVER () AS BIGINT) FROM owners ORDER BY best, owner_id LIMIT $3 OFFSET $4"
        )))
        .bind(&arg)
        .bind(q.content_type.as_deref())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let count = match groups.first() {
            Some(g) => g.2,
            None if page.page == 1 => 0,
            // Past the last page: count the owners for the envelope.
            None => {
                let (n,): (i64,) =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(DISTINCT owner_id) FROM ({hits}) h")))
                        .bind(&arg)
                        .bind(q.content_type.as_deref())
                        .fetch_one(&self.pool)
                        .await?;
                n
            }
        };
        if groups.is_empty() {
            return Ok((vec![], count));
        }
        let owners: Vec<String> = groups.iter().map(|g| g.0.to_string()).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH hits AS ({hits}),
                  ranked AS (SELECT h.id, h.owner_id, h.rank,
                                    ROW_NUMBER() OVER (PARTITION BY h.owner_id ORDER BY h.rank, h.id) AS nth
                             FROM hits h WHERE h.owner_id IN ({}))
             SELECT a.id, a.owner_id, u.name AS owner_name, a.title, a.media_type, a.content_type, a.thumb_key,
                    a.blob_key, a.mime_type, a.name, a.sha256,
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM gallery_posts p WHERE p.shared_by = $3
                        AND p.content_type = a.content_type AND p.object_id = a.id AND p.is_active = 1) THEN 1 ELSE 0 END AS BIGINT) AS mine
             FROM ranked r JOIN assets a ON a.id = r.id JOIN users u ON u.id = a.owner_id
             WHERE r.nth <= {SEARCH_ITEMS_PER_OWNER}
             ORDER BY r.rank, a.id",
            owners.join(",")
        )))
        .bind(&arg)
        .bind(q.content_type.as_deref())
        .bind(caller_id)
        .fetch_all(&self.pool)
        .await?;
        let mut by_owner: HashMap<i64, SearchGroup> = HashMap::new();
        for r in &rows {
            let owner_id: i64 = r.try_get("owner_id")?;
            let g = by_owner.entry(owner_id).or_insert_with(|| SearchGroup {
                owner_id,
                owner_name: r.try_get("owner_name").unwrap_or_default(),
                items: vec![],
                total: 0,
            });
            g.items.push(SearchItem {
                id: r.try_get("id")?,
                title: r.try_get("title")?,
                media_type: r.try_get("media_type")?,
                content_type: r.try_get("content_type")?,
                thumb_key: r.try_get("thumb_key")?,
                blob_key: r.try_get("blob_key")?,
                mime_type: r.try_get("mime_type")?,
                name: r.try_get("name")?,
                sha256: r.try_get("sha256")?,
                shared_by_caller: r.try_get::<i64, _>("mine")? != 0,
            });
        }
        let out = groups
            .into_iter()
            .filter_map(|(owner, n, _)| by_owner.remove(&owner).map(|g| SearchGroup { total: n, ..g }))
            .collect();
        Ok((out, count))
    }

    /// Creates the search index and the triggers that keep it in step (dialect-specific DDL,
    /// idempotent), and fills it when it lags behind `assets` (a database from before it existed).
    pub(super) async fn ensure_search_index(&self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let statements: &[&str] = match self.dialect {
            Dialect::Sqlite => &[
                "CREATE VIRTUAL TABLE IF NOT EXISTS asset_search USING fts5(
                    title, description, tags, owner, tokenize = 'porter unicode61 remove_diacritics 2')",
                "CREATE TRIGGER IF NOT EXISTS asset_search_insert AFTER INSERT ON assets BEGIN
                    INSERT INTO asset_search (rowid, title, description, tags, owner)
                    VALUES (new.id, new.title, new.description, new.tags, (SELECT name FROM users WHERE id = new.owner_id));
                 END",
                "CREATE TRIGGER IF NOT EXISTS asset_search_update AFTER UPDATE OF title, description, tags, owner_id ON assets BEGIN
                    DELETE FROM asset_search WHERE rowid = old.id;
                    INSERT INTO asset_search (rowid, title, description, tags, owner)
                    VALUES (new.id, new.title, new.description, new.tags, (SELECT name FROM users WHERE id = new.owner_id));
                 END",
                "CREATE TRIGGER IF NOT EXISTS asset_search_delete AFTER DELETE ON assets BEGIN
                    DELETE FROM asset_search WHERE rowid = old.id;
                 END",
                "CREATE TRIGGER IF NOT EXISTS asset_search_owner AFTER UPDATE OF name ON users BEGIN
                    DELETE FROM asset_search WHERE rowid IN (SELECT id FROM assets WHERE owner_id = new.id);
                    INSERT INTO asset_search (rowid, title, description, tags, owner)
                    SELECT id, title, description, tags, new.name FROM assets WHERE owner_id = new.id;
                 END",
            ],
            Dialect::Postgres => &[
                // Instances starting together take turns here.
                "SELECT pg_advisory_xact_lock(7306874392718911)",
                "CREATE TABLE IF NOT EXISTS asset_search (asset_id BIGINT PRIMARY KEY, document tsvector NOT NULL)",
                "CREATE INDEX IF NOT EXISTS asset_search_document ON asset_search USING gin (document)",
                "CREATE OR REPLACE FUNCTION vitrine_search_document(title TEXT, description TEXT, tags TEXT, owner TEXT)
                 RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$
                    SELECT setweight(to_tsvector('english', coalesce(title, '')), 'A')
                        || setweight(to_tsvector('english', replace(coalesce(tags, ''), ',', ' ')), 'B')
                        || setweight(to_tsvector('english', coalesce(owner, '')), 'B')
                        || setweight(to_tsvector('english', coalesce(description, '')), 'C')
                 $$",
                "CREATE OR REPLACE FUNCTION vitrine_asset_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                    IF TG_OP = 'DELETE' THEN
                        DELETE FROM asset_search WHERE asset_id = OLD.id;
                        RETURN OLD;
                    END IF;
                    INSERT INTO asset_search (asset_id, document)
                    VALUES (NEW.id, vitrine_search_document(NEW.title, NEW.description, NEW.tags,
                        (SELECT name FROM users WHERE id = NEW.owner_id)))
                    ON CONFLICT (asset_id) DO UPDATE SET document = excluded.document;
                    RETURN NEW;
                 END $$",
                "CREATE OR REPLACE FUNCTION vitrine_asset_search_owner() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                    UPDATE asset_search s SET document = vitrine_search_document(a.title, a.description, a.tags, NEW.name)
                    FROM assets a WHERE a.owner_id = NEW.id AND s.asset_id = a.id;
                    RETURN NEW;
                 END $$",
                "CREATE OR REPLACE TRIGGER asset_search_sync
                    AFTER INSERT OR DELETE OR UPDATE OF title, description, tags, owner_id ON assets
                    FOR EACH ROW EXECUTE FUNCTION vitrine_asset_search_sync()",
                "CREATE OR REPLACE TRIGGER asset_search_owner AFTER UPDATE OF name ON users
                    FOR EACH ROW EXECUTE FUNCTION vitrine_asset_search_owner()",
            ],
        };
        for sql in statements {
            sqlx::query(*sql).execute(&mut *tx).await?;
        }
        let (indexed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM asset_search").fetch_one(&mut *tx).await?;
        let (assets,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM assets").fetch_one(&mut *tx).await?;
        if indexed != assets {
            let rebuild: &[&str] = match self.dialect {
                Dialect::Sqlite => &[
                    "DELETE FROM asset_search",
                    "INSERT INTO asset_search (rowid, title, description, tags, owner)
                     SELECT a.id, a.title, a.description, a.tags, u.name FROM assets a JOIN users u ON u.id = a.owner_id",
                ],
                Dialect::Postgres => &[
                    "DELETE FROM asset_search",
                    "INSERT INTO asset_search (asset_id, document)
                     SELECT a.id, vitrine_search_document(a.title, a.description, a.tags, u.name)
                     FROM assets a JOIN users u ON u.id = a.owner_id",
                ],
            };
            for sql in rebuild {
                sqlx::query(*sql).execute(&mut *tx).await?;
            }
            tracing::info!(assets, "search index rebuilt");
        }
        tx.commit().await?;
        Ok(())
    }
}
