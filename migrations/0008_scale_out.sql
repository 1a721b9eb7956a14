-- This deployment's identity: one row, made by the first instance that starts on the database and
-- read by every other. It names the deployment's keys and channels on the shared bus, so that
-- several deployments (or test runs) can share one Redis without spending each other's limits.
CREATE TABLE deployment (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL
);

-- Deployment-wide periodic jobs (retention, the blob sweeper): the instance whose lease is current
-- runs the job; another takes over once the lease has run out (one instance does it once).
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
