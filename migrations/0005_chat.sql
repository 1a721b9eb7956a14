-- Chat file sharing (SPEC §7, docs/chat.md): companies are tenants; their agents are accounts;
-- visitors' sessions hold files and messages. Every durable change of a session is also an event
-- of the room `chat:{session uuid}` (room_events), which gives clients ordering and recovery.

CREATE TABLE companies (
    id         BIGINT PRIMARY KEY,
    uuid       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    widget_key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE company_agents (
    company_id BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (company_id, user_id)
);

CREATE INDEX company_agents_user ON company_agents (user_id);

CREATE TABLE chat_sessions (
    id               BIGINT PRIMARY KEY,
    uuid             TEXT NOT NULL UNIQUE,
    company_id       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL
);

CREATE INDEX chat_sessions_company ON chat_sessions (company_id, last_activity_at);

-- A file: its blob is `chat/{company uuid}/{session uuid}/{sha256}` (content-addressed inside
-- the session), its preview `.../thumbs/{sha256}.jpg|png`.
CREATE TABLE chat_files (
    id            BIGINT PRIMARY KEY,
    company_id    BIGINT NOT NULL,
    session_id    BIGINT NOT NULL,
    uploader      TEXT NOT NULL,
    user_id       BIGINT,
    original_name TEXT NOT NULL,
    mime_type     TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    blob_key      TEXT NOT NULL,
    thumb_key     TEXT,
    created_at    BIGINT NOT NULL
);

CREATE INDEX chat_files_session ON chat_files (session_id, id);
CREATE INDEX chat_files_company ON chat_files (company_id);
CREATE INDEX chat_files_blob ON chat_files (blob_key);
CREATE INDEX chat_files_thumb ON chat_files (thumb_key);

CREATE TABLE chat_messages (
    id         BIGINT PRIMARY KEY,
    session_id BIGINT NOT NULL,
    sender     TEXT NOT NULL,
    user_id    BIGINT,
    text       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX chat_messages_session ON chat_messages (session_id, id);
