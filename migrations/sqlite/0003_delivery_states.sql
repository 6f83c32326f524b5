-- Three more delivery states: `awaiting` (the registry holds the record but
-- has not decided; checked again later), `parked` (needs a person: the outcome
-- of an attempt at a registry without idempotency is unknown) and `referred`
-- (the registry takes this change only through its own process, e.g. a
-- correction of an event it has not registered yet). SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt with the same columns and indexes.
CREATE TABLE deliveries_next (
    id               INTEGER PRIMARY KEY,
    record_id        TEXT NOT NULL REFERENCES records (id),
    route            TEXT NOT NULL,
    destination      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'awaiting', 'delivered', 'parked', 'referred', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   INTEGER,
    receipt          TEXT,
    last_error       TEXT,
    subject          TEXT,
    updated_at       TEXT,
    UNIQUE (record_id, route)
) STRICT;

INSERT INTO deliveries_next
       (id, record_id, route, destination, status, attempts, next_attempt_ms,
        lease_owner, lease_until_ms, receipt, last_error, subject, updated_at)
SELECT id, record_id, route, destination, status, attempts, next_attempt_ms,
       lease_owner, lease_until_ms, receipt, last_error, subject, updated_at
  FROM deliveries;

DROP TABLE deliveries;
ALTER TABLE deliveries_next RENAME TO deliveries;

CREATE INDEX deliveries_by_subject ON deliveries (destination, subject, status, id);
CREATE INDEX deliveries_in_order ON deliveries (destination, status, id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
