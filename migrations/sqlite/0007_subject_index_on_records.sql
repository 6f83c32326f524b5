-- A subject's deliveries are found through its records: one index entry per
-- record instead of one per delivery. A subject is a hash, so every entry
-- lands on a random page of its index, and each such page is written to the
-- WAL at the commit; with four routes per birth notification,
-- deliveries_by_subject cost four random pages per record (issue #15).
-- A delivery's subject is its record's: both are written from one value.
CREATE INDEX records_by_subject ON records (subject, id);
DROP INDEX deliveries_by_subject;
