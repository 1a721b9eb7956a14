-- Collections (SPEC §10): several of an owner's assets behind one link. A share link targets an
-- asset or a collection (`shares.collection_id`); `Store::migrate` then makes `shares.asset_id`
-- nullable, which the two engines spell differently (see `store::collections::relax_share_asset`).

CREATE TABLE collections (
    id          BIGINT PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id),
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX collections_owner_created ON collections (owner_id, created_at);

-- An asset is in a collection at most once; deleting either removes the item.
CREATE TABLE collection_items (
    collection_id BIGINT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    asset_id      BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    added_at      BIGINT NOT NULL,
    PRIMARY KEY (collection_id, asset_id)
);

CREATE INDEX collection_items_asset ON collection_items (asset_id);

ALTER TABLE shares ADD COLUMN collection_id BIGINT REFERENCES collections (id) ON DELETE CASCADE;

CREATE INDEX shares_collection ON shares (collection_id);

-- Per-file downloads of a collection link (`file_breakdown` in its analytics): a single-file
-- download counts its file, a ZIP counts every file in it.
CREATE TABLE share_file_downloads (
    share_id  BIGINT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    asset_id  BIGINT NOT NULL,
    downloads BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (share_id, asset_id)
);
