-- This deployment's identity: one row, made by the first instance that starts on the database and
-- read by every other. It names the deployment's keys and channels on the shared bus, so that
-- several deployments (or test runs) can share one Redis without spending each other's limits.
CREATE TABLE deployment (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL
);
