-- Sign-in sessions (issue 18 item 7): every account token and page cookie names one row by its
-- `sid` claim, and a token is honoured only while its row exists and is not revoked, so signing out
-- ends it on every instance at once. `id` is 32 random bytes (hex) from a CSPRNG; `kind` is `page`
-- (the HTML login cookie) or `api` (tokens of /api/auth/login and /api/auth/register). Expired
-- and revoked rows are deleted by the retention job.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
