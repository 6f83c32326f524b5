-- Requests sent per destination and registry day (the daily quota), so a
-- restart keeps the day's count.
CREATE TABLE quota_days (
    destination  TEXT NOT NULL,
    day          TEXT NOT NULL,
    sent         INTEGER NOT NULL,
    PRIMARY KEY (destination, day)
) STRICT, WITHOUT ROWID;
