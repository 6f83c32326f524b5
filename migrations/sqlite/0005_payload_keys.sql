-- Payloads encrypted at rest, one data key per record (crypto-shredding).
-- The canonical record, its consent rows and its idempotency material are
-- sealed with the record's own data key (XChaCha20-Poly1305, the record id
-- as associated data); the data key is kept here, wrapped by a
-- key-encryption key named by kek_id, so KEKs can rotate. Deleting a row
-- (with secure_delete on) makes the record's payload unrecoverable: the
-- purge. Rows written by older builds are sealed when the store opens.
CREATE TABLE payload_keys (
    record_id  TEXT PRIMARY KEY,
    kek_id     TEXT NOT NULL,
    wrapped    BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- When the payload was purged; the record's ids, statuses and receipts stay.
ALTER TABLE records ADD COLUMN purged_at TEXT;

-- The purge walks records not yet purged, oldest first.
CREATE INDEX records_to_purge ON records (received_at) WHERE purged_at IS NULL;
