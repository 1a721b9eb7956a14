-- Page analytics of the document viewer (issue 22 part 6): what the share page's PDF viewer
-- reports through the beacon, folded into daily rollups by the analytics writer in the same
-- transaction as the other rollups (so several instances add up, never overwrite).
--
-- `analytics_daily_pages`: one row per (asset, link, day, page): how many times the page was shown
-- and the milliseconds spent on it in all.
CREATE TABLE analytics_daily_pages (
    asset_id    BIGINT NOT NULL,
    share_id    BIGINT NOT NULL,
    day         TEXT NOT NULL,
    page        BIGINT NOT NULL,
    views       BIGINT NOT NULL,
    time_sum_ms BIGINT NOT NULL,
    PRIMARY KEY (asset_id, share_id, day, page)
);

CREATE INDEX analytics_daily_pages_share ON analytics_daily_pages (share_id, day);

-- `analytics_daily_readers`: per (asset, link, day), how many readings of the document began
-- (`readers`: one per opening of the viewer) and how many of them reached its last page
-- (`completions`); `completion_rate` is completions / readers.
CREATE TABLE analytics_daily_readers (
    asset_id    BIGINT NOT NULL,
    share_id    BIGINT NOT NULL,
    day         TEXT NOT NULL,
    readers     BIGINT NOT NULL,
    completions BIGINT NOT NULL,
    PRIMARY KEY (asset_id, share_id, day)
);

CREATE INDEX analytics_daily_readers_share ON analytics_daily_readers (share_id, day);
