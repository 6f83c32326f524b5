-- The PostgreSQL store: the same tables and meanings as the embedded store's
-- migrations 0001-0005 (see migrations/sqlite/), made for several gateway
-- instances sharing one database. Times stay RFC 3339 text and epoch
-- milliseconds, as in SQLite, so both backends answer alike.

CREATE TABLE records (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    source          TEXT NOT NULL,
    record_type     TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    -- Sealed with the record's data key (payload_keys); emptied by a purge.
    request_sha256  BYTEA NOT NULL,
    canonical       BYTEA NOT NULL,
    subject         TEXT,
    purged_at       TEXT
);

CREATE INDEX records_by_client ON records (client_id, id);
CREATE INDEX records_to_purge ON records (received_at) WHERE purged_at IS NULL;

-- Same (client, key) returns the same record; a different body is a conflict.
-- Two instances racing with one key: the primary key makes the second wait
-- for the first's commit, then find the key taken.
CREATE TABLE idempotency_keys (
    client_id       TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_sha256  BYTEA NOT NULL,
    record_id       TEXT NOT NULL REFERENCES records (id),
    PRIMARY KEY (client_id, key)
);

-- One row per (record, route), leased by a worker of any instance.
CREATE TABLE deliveries (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id        TEXT NOT NULL REFERENCES records (id),
    route            TEXT NOT NULL,
    destination      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'awaiting', 'delivered', 'parked', 'referred', 'dead', 'cancelled')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    claims           BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   BIGINT,
    receipt          TEXT,
    last_error       TEXT,
    subject          TEXT,
    updated_at       TEXT,
    UNIQUE (record_id, route)
);

CREATE INDEX deliveries_by_subject ON deliveries (destination, subject, status, id);
CREATE INDEX deliveries_in_order ON deliveries (destination, status, id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);

CREATE TABLE consents (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    record_id   TEXT,
    recorded_at TEXT NOT NULL,
    consent     BYTEA NOT NULL
);

CREATE INDEX consents_by_subject ON consents (subject, id);

-- The exchange log of the whole deployment: one sequence, whatever instance
-- wrote the event. seq is the position in the log, from 1, without gaps.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    record_id  TEXT,
    event      BYTEA NOT NULL,
    leaf_hash  BYTEA NOT NULL
);

CREATE INDEX audit_log_by_record ON audit_log (record_id, seq);

-- The log's head: the last seq handed out. A transaction that appends
-- events takes this row's lock (UPDATE ... RETURNING) and holds it to its
-- commit, so sequence numbers are handed out in commit order and a rolled
-- back append leaves no gap (a SEQUENCE would).
CREATE TABLE audit_head (
    id        INT PRIMARY KEY CHECK (id = 1),
    last_seq  BIGINT NOT NULL
);
INSERT INTO audit_head (id, last_seq) VALUES (1, 0);

CREATE TABLE checkpoints (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    size       BIGINT NOT NULL,
    root       BYTEA NOT NULL,
    note       TEXT NOT NULL,
    signed_at  TEXT NOT NULL
);

CREATE FUNCTION refuse_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER audit_log_is_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_edit();
CREATE TRIGGER audit_log_is_not_truncated BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_edit();
CREATE TRIGGER checkpoints_are_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_edit();
CREATE TRIGGER checkpoints_are_not_truncated BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_edit();

-- One data key per record, wrapped by the KEK named kek_id (see
-- docs/retention.md); deleting the row is the purge.
CREATE TABLE payload_keys (
    record_id  TEXT PRIMARY KEY,
    kek_id     TEXT NOT NULL,
    wrapped    BYTEA NOT NULL
);

-- Requests sent per destination and registry day (the daily quota), shared
-- by every instance and kept across restarts.
CREATE TABLE quota_days (
    destination  TEXT NOT NULL,
    day          TEXT NOT NULL,
    sent         BIGINT NOT NULL,
    PRIMARY KEY (destination, day)
);

-- Each destination's GCRA state, shared by every instance: the theoretical
-- arrival time in microseconds of the database's clock.
CREATE TABLE pace_cells (
    destination  TEXT PRIMARY KEY,
    tat_us       BIGINT NOT NULL
);
