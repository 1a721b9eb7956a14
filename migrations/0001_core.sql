-- Core schema: accounts and assets. Portable SQL (SQLite >= 3.35 and PostgreSQL):
-- integers are BIGINT, flags are 0/1, timestamps are unix milliseconds, ids come from id_counters.

CREATE TABLE id_counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    is_active     BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE assets (
    id               BIGINT PRIMARY KEY,
    owner_id         BIGINT NOT NULL REFERENCES users (id),
    title            TEXT NOT NULL,
    description      TEXT NOT NULL,
    tags             TEXT NOT NULL,
    name             TEXT NOT NULL,
    mime_type        TEXT NOT NULL,
    media_type       TEXT NOT NULL,
    size             BIGINT NOT NULL,
    sha256           TEXT NOT NULL,
    blob_key         TEXT NOT NULL,
    thumb_key        TEXT,
    width            BIGINT,
    height           BIGINT,
    duration_seconds DOUBLE PRECISION,
    content_type     TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX assets_owner_created ON assets (owner_id, created_at);
CREATE INDEX assets_blob_key ON assets (blob_key);
CREATE INDEX assets_thumb_key ON assets (thumb_key);
