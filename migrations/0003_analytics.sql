-- Analytics (SPEC §5). Raw events keep no IP address: `visitor` is a keyed hash of IP and user
-- agent under a salt that changes every day. Daily rollups answer the reports; they survive the
-- retention of raw events.

CREATE TABLE analytics_events (
    id              BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    share_id        BIGINT NOT NULL,
    asset_id        BIGINT NOT NULL,
    visitor         TEXT NOT NULL,
    country         TEXT NOT NULL,
    device          TEXT NOT NULL,
    browser         TEXT NOT NULL,
    os              TEXT NOT NULL,
    referrer        TEXT NOT NULL,
    is_bot          BIGINT NOT NULL,
    time_on_page_ms BIGINT,
    load_ms         BIGINT
);

-- Only retention reads raw events (by age); reports read the rollups below.
CREATE INDEX analytics_events_at ON analytics_events (at);

-- One row per (asset, share, day, dimension, value); share_id 0 means "not through a link".
-- dim is 'total' (value ''), 'country', 'device', 'browser', 'os' or 'referrer'.
CREATE TABLE analytics_daily (
    asset_id       BIGINT NOT NULL,
    share_id       BIGINT NOT NULL,
    day            TEXT NOT NULL,
    dim            TEXT NOT NULL,
    value          TEXT NOT NULL,
    views          BIGINT NOT NULL,
    downloads      BIGINT NOT NULL,
    previews       BIGINT NOT NULL,
    comments       BIGINT NOT NULL,
    time_sum_ms    BIGINT NOT NULL,
    time_count     BIGINT NOT NULL,
    load_sum_ms    BIGINT NOT NULL,
    load_count     BIGINT NOT NULL,
    PRIMARY KEY (asset_id, share_id, day, dim, value)
);

CREATE INDEX analytics_daily_share ON analytics_daily (share_id, day);

-- Unique visitors per (asset, share, day) as a HyperLogLog sketch (src/analytics/hll.rs): the
-- visitors themselves are not kept; sketches of several days or links merge.
CREATE TABLE analytics_daily_uniques (
    asset_id BIGINT NOT NULL,
    share_id BIGINT NOT NULL,
    day      TEXT NOT NULL,
    sketch   TEXT NOT NULL,
    PRIMARY KEY (asset_id, share_id, day)
);

CREATE INDEX analytics_daily_uniques_share ON analytics_daily_uniques (share_id, day);

-- The salt of each day, shared by every instance; old ones are deleted, so yesterday's visitor
-- keys cannot be recomputed from an IP address.
CREATE TABLE analytics_salts (
    day  TEXT PRIMARY KEY,
    salt TEXT NOT NULL
);
