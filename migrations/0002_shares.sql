-- Share links (SPEC §3) and the download grants that let a counted transfer resume.

CREATE TABLE shares (
    id                  BIGINT PRIMARY KEY,
    uuid                TEXT NOT NULL UNIQUE,
    asset_id            BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    owner_id            BIGINT NOT NULL REFERENCES users (id),
    share_type          TEXT NOT NULL,
    password_hash       TEXT,
    allow_preview       BIGINT NOT NULL,
    allow_download      BIGINT NOT NULL,
    allow_comments      BIGINT NOT NULL,
    allow_collaboration BIGINT NOT NULL,
    notify_on_access    BIGINT NOT NULL,
    expires_at          BIGINT,
    max_downloads       BIGINT,
    download_count      BIGINT NOT NULL DEFAULT 0,
    view_count          BIGINT NOT NULL DEFAULT 0,
    title               TEXT NOT NULL,
    description         TEXT NOT NULL,
    allowed_emails      TEXT NOT NULL,
    revoked_at          BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE INDEX shares_owner_created ON shares (owner_id, created_at);
CREATE INDEX shares_asset ON shares (asset_id);

-- A counted download lets the same visitor resume (Range requests) for a while without counting
-- again, even after the link is exhausted.
CREATE TABLE share_download_grants (
    share_id    BIGINT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    visitor_key TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (share_id, visitor_key)
);
