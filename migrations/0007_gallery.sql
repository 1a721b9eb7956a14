-- Gallery posts (SPEC §6): a dashboard user or admin shares an asset to the public gallery. The
-- post references the asset (the file is never copied); deleting a post only marks it inactive.
-- The full-text search index over assets is dialect-specific (SQLite FTS5, PostgreSQL tsvector)
-- and is created by Store::migrate (src/store/gallery.rs).

CREATE TABLE gallery_posts (
    id           BIGINT PRIMARY KEY,
    content_type TEXT NOT NULL,
    object_id    BIGINT NOT NULL,
    caption      TEXT NOT NULL,
    category     TEXT NOT NULL,
    shared_by    BIGINT NOT NULL REFERENCES users (id),
    shared_at    BIGINT NOT NULL,
    is_active    BIGINT NOT NULL DEFAULT 1
);

-- One active post per (user, content); a user may share again after deleting.
CREATE UNIQUE INDEX gallery_posts_one_active ON gallery_posts (shared_by, content_type, object_id) WHERE is_active = 1;
-- The public list: active posts, newest first, optionally by category or sharer.
CREATE INDEX gallery_posts_feed ON gallery_posts (is_active, shared_at, id);
CREATE INDEX gallery_posts_category ON gallery_posts (category, is_active, shared_at);
CREATE INDEX gallery_posts_object ON gallery_posts (object_id);
