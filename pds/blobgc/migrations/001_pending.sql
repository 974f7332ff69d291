-- Accounts that may hold blobs to delete (unreferenced or expired), with the earliest time one becomes due. A row
-- is written before the repo change that creates the work, so work is never lost in a crash; gen counts the marks,
-- so the collector only removes a row that no one marked again while it worked.
CREATE TABLE pending (
    did    TEXT PRIMARY KEY,
    due_at INTEGER NOT NULL,
    gen    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pending_due ON pending (due_at);
