-- Resumable uploads (tus 1.0.0, SPEC §12): one row per upload, so that an acknowledged offset
-- survives a restart and is served by every instance. `id` is a UUIDv4 (the last segment of the
-- upload's URL). `scope` says who may see and continue it: `user:{id}` for /api/v3/uploads/,
-- `file_request:{uuid}` for a file request's uploads; `owner_id` is the user whose asset it becomes.
-- `metadata` is the decoded Upload-Metadata as a JSON object. The bytes live under `data_key`
-- (`uploads/{id}/data`): on local storage a part file the acknowledged bytes are written to; on
-- S3 an object assembled from the multipart upload `multipart_id`, whose parts (`upload_parts`,
-- at least `part_size` bytes except the last) hold `parts_bytes` bytes, followed by `tail_len`
-- bytes in the small object `tail_key` not yet a part; then `upload_offset` = parts_bytes +
-- tail_len. `writer`/`writer_until`: the PATCH currently appending on S3 (a lease, so that two
-- writers never put the same part number). `state`: `open`, `finishing` (the last byte arrived, the
-- checks run), `done` (`result` is the Vitrine-Asset value). The expiry job removes rows past
-- `expires_at` with their bytes.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    scope         TEXT NOT NULL,
    owner_id      BIGINT NOT NULL,
    upload_length BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL,
    metadata      TEXT NOT NULL,
    data_key      TEXT NOT NULL,
    multipart_id  TEXT,
    part_size     BIGINT NOT NULL,
    parts_bytes   BIGINT NOT NULL,
    tail_key      TEXT,
    tail_len      BIGINT NOT NULL,
    writer        TEXT,
    writer_until  BIGINT NOT NULL,
    state         TEXT NOT NULL,
    result        TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE INDEX uploads_scope ON uploads (scope, state);
CREATE INDEX uploads_expires ON uploads (expires_at);

-- The S3 parts of an upload: `part_idx` is the 0-based position in the object (S3 part number
-- part_idx + 1), `etag` what S3 answered for it.
CREATE TABLE upload_parts (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part_idx  BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    etag      TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_idx)
);
