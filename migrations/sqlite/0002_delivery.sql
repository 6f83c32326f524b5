-- Delivery outcomes, the order of a child's records, and consent decisions.

-- subject: a hash naming the person a record is about, per owning agency
-- (client, record type, the source's stable id); no personal data. Deliveries
-- of one subject to one destination leave in the order they were accepted.
ALTER TABLE records ADD COLUMN subject TEXT;
ALTER TABLE deliveries ADD COLUMN subject TEXT;
ALTER TABLE deliveries ADD COLUMN updated_at TEXT;
-- Claims walk a destination's pending deliveries in id order (no sort), and
-- look up an earlier pending delivery of the same subject in one probe.
CREATE INDEX deliveries_by_subject ON deliveries (destination, subject, status, id);
CREATE INDEX deliveries_in_order ON deliveries (destination, status, id);
DROP INDEX deliveries_due;
-- Dead letters of any destination, oldest first.
CREATE INDEX deliveries_by_status ON deliveries (status, id);

-- Consent decisions from consent records and the consent API, in the order
-- they were recorded; the latest per subject applies.
CREATE TABLE consents (
    id          INTEGER PRIMARY KEY,
    subject     TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    record_id   TEXT,
    recorded_at TEXT NOT NULL,
    consent     BLOB NOT NULL
) STRICT;

CREATE INDEX consents_by_subject ON consents (subject, id);
