-- Records, their deliveries and the exchange log. An accepted record and its
-- deliveries and audit event are written in one transaction.

CREATE TABLE records (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    record_type     TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    request_sha256  BLOB NOT NULL,
    canonical       BLOB NOT NULL
) STRICT;

CREATE INDEX records_by_client ON records (client_id, id);

-- Same (client, key) returns the same record; a different body is a conflict.
CREATE TABLE idempotency_keys (
    client_id       TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_sha256  BLOB NOT NULL,
    record_id       TEXT NOT NULL REFERENCES records (id),
    PRIMARY KEY (client_id, key)
) STRICT, WITHOUT ROWID;

-- One row per (record, route). A worker claims due rows with a lease
-- (lease_owner, lease_until); a crashed worker's lease simply expires.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    record_id        TEXT NOT NULL REFERENCES records (id),
    route            TEXT NOT NULL,
    destination      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   INTEGER,
    receipt          TEXT,
    last_error       TEXT,
    UNIQUE (record_id, route)
) STRICT;

CREATE INDEX deliveries_due ON deliveries (destination, status, next_attempt_ms);

-- The exchange log: append-only. seq is the position in the log, from 1.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    record_id  TEXT,
    event      BLOB NOT NULL,
    leaf_hash  BLOB NOT NULL
) STRICT;

CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
