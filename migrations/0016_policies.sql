-- The administrators' policy for links and file requests (SPEC §13): one row (`id` = 1), made by
-- the first change; without it the defaults apply (every share type, no password required, no
-- default or longest expiry, no download limit, file requests on). `allowed_share_types` is a
-- comma-separated list; hours may be fractions. Read at every link or file request create and
-- change (no cache), so a change binds every instance at its next request.
CREATE TABLE policies (
    id                       BIGINT PRIMARY KEY,
    allowed_share_types      TEXT NOT NULL,
    require_password         BIGINT NOT NULL,
    default_expires_in_hours DOUBLE PRECISION,
    max_expires_in_hours     DOUBLE PRECISION,
    max_downloads_limit      BIGINT,
    file_requests_enabled    BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    updated_by               BIGINT
);
