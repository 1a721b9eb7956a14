-- Webhooks (SPEC §13): a user's endpoints, and the durable outbox of their deliveries.
-- `events` is a JSON array of event types; `scope` is `own` (events about the owner's content) or
-- `all` (every event; admins only). `secret` is the `whsec_…` signing secret (shown once).
CREATE TABLE webhooks (
    id          BIGINT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    description TEXT NOT NULL,
    secret      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    active      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX webhooks_user ON webhooks (user_id, created_at);

-- One row per (event, webhook), written in the transaction of the change the event describes.
-- `event_id` is the Standard Webhooks `webhook-id` (a UUID, the same on every retry); `payload`
-- the exact body sent (`{type, timestamp, data}`). `status`: `pending`, `delivered`, `failed`.
-- A worker claims due pending rows for a lease (`claimed_by`, `claimed_until`), so a crashed
-- instance's claims expire and each event reaches each webhook once. `response_body` keeps at most
-- 1 KiB of the receiver's answer.
CREATE TABLE webhook_deliveries (
    id              BIGINT PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    response_status BIGINT,
    response_body   TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
