-- Personal access tokens (SPEC §13): `Authorization: Bearer vtr_...` for scripts and tools.
-- Only the SHA-256 of a token is kept (`token_hash`, hex; the token itself is shown once, when it
-- is made); a request finds its token by this hash (unique index). `scopes` is a comma-separated
-- subset of read, write, share, admin. `expires_at` NULL: no expiry. `last_used_at` is written at
-- most once a minute per token. Revoking deletes the row, so the next request with it is a 401 on
-- every instance.
CREATE TABLE access_tokens (
    id           BIGINT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);

CREATE INDEX access_tokens_user ON access_tokens (user_id, id);
