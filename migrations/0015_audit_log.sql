-- Audit log (SPEC §13): one append-only row per governance-relevant action, written in the
-- transaction of the action it describes (a failed sign-in or a wrong link password: its own
-- write). `at` is unix ms; `actor_id` is the account that acted (NULL: the operator's CLI, or
-- nobody signed in); `target_id` is text so that any kind of target fits; `client_key` (the API's `ip`) is a keyed hash of
-- the client's address (`domain::visitors::ip_key`), never the address itself; `details` is a
-- JSON object. No foreign key on `actor_id`: entries outlive what they name. Nothing updates a
-- row; only the retention job (`audit_retention_days`) deletes them.

CREATE TABLE audit_log (
    id          BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    BIGINT,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    client_key  TEXT,
    details     TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor_id, at);
CREATE INDEX audit_log_action ON audit_log (action, at);
