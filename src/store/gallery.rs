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

/// A search hit before its details are read: (rank, asset id); lower rank is better.
type Ranked = (f64, i64);
/// Matches ranked per query: the newest ones when a query matches more.
pub const SEARCH_CANDIDATES: i64 = 1_000;

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
    /// Creates a post of an asset of `new.content_type`. The partial unique index on active
    /// posts settles two concurrent shares of the same content by the same user.
    pub async fn create_gallery_post(
        &self,
        user_id: i64,
        new: &NewPost,
        now_ms: i64,
    ) -> anyhow::Result<Result<i64, PostRefused>> {
        let (_writing, mut tx) = self.begin_write().await?;
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
        self.content_changed().await;
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
        let res = self
            .write(sqlx::query("UPDATE gallery_posts SET is_active = 0 WHERE id = $1 AND is_active = 1").bind(id))
            .await?;
        self.content_changed().await;
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
    ///
    /// Ranking reads every candidate's positions, so a query is ranked over its
    /// `SEARCH_CANDIDATES` newest matches: all of them for any selective query; a query matching
    /// more (a word in most assets) is answered from the newest ones, in bounded time.
    pub async fn search_assets(
        &self,
        q: &SearchQuery,
        caller_id: i64,
        page: PageRequest,
    ) -> anyhow::Result<(Vec<SearchGroup>, i64)> {
        // (asset id, owner id, rank), lower rank is better in both dialects.
        let (sql, arg) = match self.dialect {
            Dialect::Sqlite => {
                // Every word must appear in the text columns, each as a prefix ("portr john" finds
                // "Portrait by John"); the content type is a column of the index too, so the
                // engine intersects it with the words. The `rank` column is configured as bm25
                // with weights (title, description, tags, owner, kind); bm25() itself is refused
                // in a subquery joined to another table.
                let words = q.terms.iter().map(|t| format!("\"{t}\"*")).collect::<Vec<_>>().join(" AND ");
                let mut expr = format!("{{title description tags owner}} : ({words})");
                if let Some(ct) = &q.content_type {
                    expr.push_str(&format!(" AND kind : \"{ct}\""));
                }
                (
                    "SELECT a.id, a.owner_id, s.rank
                     FROM (SELECT rowid AS asset_id, rank FROM asset_search
                           WHERE asset_search MATCH $1 AND rank MATCH 'bm25(10.0, 2.0, 5.0, 3.0, 0.0)'
                           ORDER BY rowid DESC LIMIT $2) s
                     JOIN assets a ON a.id = s.asset_id
                     WHERE $3 IS NULL OR a.content_type = $3",
                    expr,
                )
            }
            Dialect::Postgres => {
                // The content type is a token of the document (`kind…`), so it narrows the match
                // before the window is taken, as on SQLite.
                let mut expr = q.terms.iter().map(|t| format!("{t}:*")).collect::<Vec<_>>().join(" & ");
                if let Some(ct) = &q.content_type {
                    expr.push_str(&format!(" & kind{}", ct.replace('_', "")));
                }
                (
                    // One table (owner and type are copied into the index row): a join here
                    // lets the planner hash the whole assets table for a thousand candidates.
                    "SELECT c.asset_id, c.owner_id,
                            CAST(-ts_rank(c.document, to_tsquery('english', $1)) AS DOUBLE PRECISION)
                     FROM (SELECT asset_id, owner_id, content_type, document FROM asset_search
                           WHERE document @@ to_tsquery('english', $1)
                           ORDER BY asset_id DESC LIMIT $2) c
                     WHERE CAST($3 AS TEXT) IS NULL OR c.content_type = $3",
                    expr,
                )
            }
        };
        // Planned for each query's own words (an unnamed statement): how many assets a word
        // matches decides between the full-text index and a walk down the ids, and a plan
        // cached for unknown words would walk the ids for rare words too (PostgreSQL).
        let hits: Vec<(i64, i64, f64)> = sqlx::query_as(sql)
            .persistent(false)
            .bind(&arg)
            .bind(SEARCH_CANDIDATES)
            .bind(q.content_type.as_deref())
            .fetch_all(&self.pool)
            .await?;
        // Owners by their best hit; each owner's hits best first.
        let mut by_owner: HashMap<i64, Vec<Ranked>> = HashMap::new();
        for (id, owner, rank) in hits {
            by_owner.entry(owner).or_default().push((rank, id));
        }
        // (best rank, owner, hits)
        let mut owners: Vec<(f64, i64, Vec<Ranked>)> = by_owner
            .into_iter()
            .map(|(owner, mut hits)| {
                hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                (hits[0].0, owner, hits)
            })
            .collect();
        owners.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let count = owners.len() as i64;
        let page_owners: Vec<(i64, Vec<Ranked>)> = owners
            .into_iter()
            .skip(page.offset() as usize)
            .take(page.limit() as usize)
            .map(|(_, owner, hits)| (owner, hits))
            .collect();
        let ids: Vec<String> = page_owners
            .iter()
            .flat_map(|(_, hits)| hits.iter().take(SEARCH_ITEMS_PER_OWNER as usize).map(|h| h.1.to_string()))
            .collect();
        if ids.is_empty() {
            return Ok((vec![], count));
        }
        // Ids are integers from the database, never text from the caller.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT a.id, u.name AS owner_name, a.title, a.media_type, a.content_type, a.thumb_key,
                    a.blob_key, a.mime_type, a.name, a.sha256,
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM gallery_posts p WHERE p.shared_by = $1
                        AND p.content_type = a.content_type AND p.object_id = a.id AND p.is_active = 1) THEN 1 ELSE 0 END AS BIGINT) AS mine
             FROM assets a JOIN users u ON u.id = a.owner_id WHERE a.id IN ({})",
            ids.join(",")
        )))
        .bind(caller_id)
        .fetch_all(&self.pool)
        .await?;
        let mut details: HashMap<i64, (String, SearchItem)> = HashMap::new();
        for r in &rows {
            let item = SearchItem {
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
            };
            details.insert(item.id, (r.try_get("owner_name")?, item));
        }
        let groups = page_owners
            .into_iter()
            .map(|(owner_id, hits)| {
                let total = hits.len() as i64;
                let mut owner_name = String::new();
                let items = hits
                    .iter()
                    .take(SEARCH_ITEMS_PER_OWNER as usize)
                    .filter_map(|(_, id)| details.remove(id))
                    .map(|(name, item)| {
                        owner_name = name;
                        item
                    })
                    .collect();
                SearchGroup { owner_id, owner_name, items, total }
            })
            .collect();
        Ok((groups, count))
    }

    /// Creates the search index and the triggers that keep it in step (dialect-specific DDL,
    /// idempotent), and fills it when it lags behind `assets` (a database from before it existed).
    pub(super) async fn ensure_search_index(&self) -> anyhow::Result<()> {
        let (_writing, mut tx) = self.begin_write().await?;
        let statements: &[&str] = match self.dialect {
            Dialect::Sqlite => &[
                // Prefix indexes make "ba"* as cheap as a whole word; `kind` is the content type.
                "CREATE VIRTUAL TABLE IF NOT EXISTS asset_search USING fts5(
                    title, description, tags, owner, kind,
                    tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3 4 5 6')",
                "CREATE TRIGGER IF NOT EXISTS asset_search_insert AFTER INSERT ON assets BEGIN
                    INSERT INTO asset_search (rowid, title, description, tags, owner, kind)
                    VALUES (new.id, new.title, new.description, new.tags, (SELECT name FROM users WHERE id = new.owner_id),
                            new.content_type);
                 END",
                "CREATE TRIGGER IF NOT EXISTS asset_search_update
                 AFTER UPDATE OF title, description, tags, owner_id, content_type ON assets BEGIN
                    DELETE FROM asset_search WHERE rowid = old.id;
                    INSERT INTO asset_search (rowid, title, description, tags, owner, kind)
                    VALUES (new.id, new.title, new.description, new.tags, (SELECT name FROM users WHERE id = new.owner_id),
                            new.content_type);
                 END",
                "CREATE TRIGGER IF NOT EXISTS asset_search_delete AFTER DELETE ON assets BEGIN
                    DELETE FROM asset_search WHERE rowid = old.id;
                 END",
                "CREATE TRIGGER IF NOT EXISTS asset_search_owner AFTER UPDATE OF name ON users BEGIN
                    DELETE FROM asset_search WHERE rowid IN (SELECT id FROM assets WHERE owner_id = new.id);
                    INSERT INTO asset_search (rowid, title, description, tags, owner, kind)
                    SELECT id, title, description, tags, new.name, content_type FROM assets WHERE owner_id = new.id;
                 END",
            ],
            Dialect::Postgres => &[
                // Instances starting together take turns here.
                "SELECT pg_advisory_xact_lock(7306874392718911)",
                "CREATE TABLE IF NOT EXISTS asset_search (asset_id BIGINT PRIMARY KEY, owner_id BIGINT NOT NULL,
                    content_type TEXT NOT NULL, document tsvector NOT NULL)",
                "CREATE INDEX IF NOT EXISTS asset_search_document ON asset_search USING gin (document)",
                // The content type becomes one token, `kindtalentmedia`, that queries can require.
                "CREATE OR REPLACE FUNCTION vitrine_search_document(title TEXT, description TEXT, tags TEXT, owner TEXT,
                    kind TEXT)
                 RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$
                    SELECT setweight(to_tsvector('english', coalesce(title, '')), 'A')
                        || setweight(to_tsvector('english', replace(coalesce(tags, ''), ',', ' ')), 'B')
                        || setweight(to_tsvector('english', coalesce(owner, '')), 'B')
                        || setweight(to_tsvector('english', coalesce(description, '')), 'C')
                        || setweight(to_tsvector('english', 'kind' || replace(coalesce(kind, ''), '_', '')), 'D')
                 $$",
                "CREATE OR REPLACE FUNCTION vitrine_asset_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                    IF TG_OP = 'DELETE' THEN
                        DELETE FROM asset_search WHERE asset_id = OLD.id;
                        RETURN OLD;
                    END IF;
                    INSERT INTO asset_search (asset_id, owner_id, content_type, document)
                    VALUES (NEW.id, NEW.owner_id, NEW.content_type, vitrine_search_document(NEW.title, NEW.description,
                        NEW.tags, (SELECT name FROM users WHERE id = NEW.owner_id), NEW.content_type))
                    ON CONFLICT (asset_id) DO UPDATE SET owner_id = excluded.owner_id,
                        content_type = excluded.content_type, document = excluded.document;
                    RETURN NEW;
                 END $$",
                "CREATE OR REPLACE FUNCTION vitrine_asset_search_owner() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                    UPDATE asset_search s
                    SET document = vitrine_search_document(a.title, a.description, a.tags, NEW.name, a.content_type)
                    FROM assets a WHERE a.owner_id = NEW.id AND s.asset_id = a.id;
                    RETURN NEW;
                 END $$",
                "CREATE OR REPLACE TRIGGER asset_search_sync
                    AFTER INSERT OR DELETE OR UPDATE OF title, description, tags, owner_id, content_type ON assets
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
                    "INSERT INTO asset_search (rowid, title, description, tags, owner, kind)
                     SELECT a.id, a.title, a.description, a.tags, u.name, a.content_type
                     FROM assets a JOIN users u ON u.id = a.owner_id",
                ],
                Dialect::Postgres => &[
                    "DELETE FROM asset_search",
                    "INSERT INTO asset_search (asset_id, owner_id, content_type, document)
                     SELECT a.id, a.owner_id, a.content_type,
                            vitrine_search_document(a.title, a.description, a.tags, u.name, a.content_type)
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
