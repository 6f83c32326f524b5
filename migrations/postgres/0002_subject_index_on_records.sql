-- A subject's deliveries are found through its records, as in the embedded
-- store (migrations/sqlite/0007): one index entry per record instead of one
-- per delivery. A subject is a hash, so every entry lands on a random leaf of
-- its index, a page PostgreSQL writes whole to the WAL the first time it
-- changes after a checkpoint; with four routes per birth notification,
-- deliveries_by_subject cost four such pages per record (issue #15).
-- A delivery's subject is its record's: both are written from one value.
CREATE INDEX records_by_subject ON records (subject, id);
DROP INDEX deliveries_by_subject;
