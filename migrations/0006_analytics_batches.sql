-- Raw analytics events are stored one row per written batch (SPEC §5): the events of a batch,
-- compressed, with the time span they cover. Writing one row instead of thousands keeps capture
-- cheap; only retention reads raw events (by `last_at`), reports read the daily rollups.
-- Rows of the former per-event table `analytics_events` are moved here at startup
-- (Store::migrate) and that table is then dropped.

CREATE TABLE analytics_event_batches (
    id       BIGINT PRIMARY KEY,
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL,
    events   BIGINT NOT NULL,
    body     BYTEA NOT NULL
);

CREATE INDEX analytics_event_batches_last_at ON analytics_event_batches (last_at);
