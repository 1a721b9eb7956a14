-- The `session_expiry` job (every minute) looks for live sessions past their expiry:
-- `WHERE ended_at IS NULL AND expires_at <= now ORDER BY expires_at`. Only sessions not yet ended
-- are indexed, so the index stays as small as the set of live sessions.
CREATE INDEX collab_sessions_expiring ON collab_sessions (expires_at, id) WHERE ended_at IS NULL;
