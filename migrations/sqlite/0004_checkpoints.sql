-- Signed checkpoints of the exchange log (C2SP signed notes), and the index
-- that finds one record's events.

-- One row per signed checkpoint, in signing order: the tree size and root it
-- commits to, the signed note exactly as served, and when it was signed. A
-- size may be signed again (a new key after a restart); never edited.
CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    signed_at  TEXT NOT NULL
) STRICT;

CREATE TRIGGER checkpoints_are_append_only_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

CREATE TRIGGER checkpoints_are_append_only_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

-- GET /v1/audit/records/{id}: a record's events in log order.
CREATE INDEX audit_log_by_record ON audit_log (record_id, seq);
