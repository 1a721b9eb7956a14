-- Comments and real-time collaboration (SPEC §4) and the rooms every live feature uses.

-- A comment on an asset: by an account (author_id) or by a share visitor (guest_name, share_id).
-- Replies point at a comment of the same asset (parent_id); deleting a comment deletes its replies.
CREATE TABLE comments (
    id           BIGINT PRIMARY KEY,
    asset_id     BIGINT NOT NULL,
    author_id    BIGINT,
    guest_name   TEXT,
    share_id     BIGINT,
    content      TEXT NOT NULL,
    position_x   DOUBLE PRECISION,
    position_y   DOUBLE PRECISION,
    timestamp_ms BIGINT,
    parent_id    BIGINT,
    resolved     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX comments_asset ON comments (asset_id, id);
CREATE INDEX comments_parent ON comments (parent_id);

CREATE TABLE collab_sessions (
    id                 BIGINT PRIMARY KEY,
    uuid               TEXT NOT NULL UNIQUE,
    asset_id           BIGINT NOT NULL,
    share_id           BIGINT NOT NULL,
    owner_id           BIGINT NOT NULL,
    allow_download     BIGINT NOT NULL,
    cursor_tracking    BIGINT NOT NULL,
    voice_chat         BIGINT NOT NULL,
    screen_sharing     BIGINT NOT NULL,
    invitation_message TEXT NOT NULL,
    expires_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    created_at         BIGINT NOT NULL
);

CREATE INDEX collab_sessions_asset ON collab_sessions (asset_id);
CREATE INDEX collab_sessions_owner ON collab_sessions (owner_id);

-- People invited by e-mail; user_id is set when the e-mail belongs to an account, or when the
-- invitation is accepted (its token is an HMAC of the row, so nothing secret is stored).
CREATE TABLE collab_participants (
    id          BIGINT PRIMARY KEY,
    session_id  BIGINT NOT NULL,
    email       TEXT NOT NULL,
    user_id     BIGINT,
    removed_at  BIGINT,
    created_at  BIGINT NOT NULL,
    UNIQUE (session_id, email)
);

CREATE INDEX collab_participants_user ON collab_participants (user_id);

-- Rooms: the last sequence number of each room, and its durable events. A room's seq is taken in
-- the transaction that commits the change, so events commit in seq order.
CREATE TABLE room_seqs (
    room TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);

CREATE TABLE room_events (
    room TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    type TEXT NOT NULL,
    at   BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (room, seq)
);

-- Sampled cursor tracks for session recordings (never part of recovery).
CREATE TABLE room_cursor_samples (
    room    TEXT NOT NULL,
    at      BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    x       DOUBLE PRECISION NOT NULL,
    y       DOUBLE PRECISION NOT NULL
);

CREATE INDEX room_cursor_samples_room ON room_cursor_samples (room, at);
