-- File requests (SPEC §11): links that receive files into one of the owner's collections.
-- `files_reserved` / `bytes_reserved` hold the uploads in flight: an upload reserves one file
-- and an upper bound of its bytes with one conditional UPDATE before its body is read, then
-- settles to the real size or gives the reservation back, so `max_files` and `max_total_bytes`
-- hold exactly however many uploads arrive at once.

CREATE TABLE file_requests (
    id                     BIGINT PRIMARY KEY,
    uuid                   TEXT NOT NULL UNIQUE,
    owner_id               BIGINT NOT NULL REFERENCES users (id),
    collection_id          BIGINT REFERENCES collections (id) ON DELETE SET NULL,
    title                  TEXT NOT NULL,
    instructions           TEXT NOT NULL,
    expires_at             BIGINT,
    max_files              BIGINT,
    max_file_bytes         BIGINT,
    max_total_bytes        BIGINT,
    allowed_types          TEXT NOT NULL,
    password_hash          TEXT,
    require_uploader_name  BIGINT NOT NULL,
    require_uploader_email BIGINT NOT NULL,
    notify_on_upload       BIGINT NOT NULL,
    uploads_count          BIGINT NOT NULL DEFAULT 0,
    bytes_received         BIGINT NOT NULL DEFAULT 0,
    files_reserved         BIGINT NOT NULL DEFAULT 0,
    bytes_reserved         BIGINT NOT NULL DEFAULT 0,
    closed_at              BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

CREATE INDEX file_requests_owner_created ON file_requests (owner_id, created_at);

-- Where an asset came from: NULL for the owner's own uploads.
ALTER TABLE assets ADD COLUMN source_file_request TEXT;
ALTER TABLE assets ADD COLUMN uploader_name TEXT;
ALTER TABLE assets ADD COLUMN uploader_email TEXT;
ALTER TABLE assets ADD COLUMN uploader_message TEXT;
