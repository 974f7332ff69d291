-- One row per accepted operation, in the order the directory accepted them.
CREATE TABLE operations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    did        TEXT    NOT NULL,
    cid        TEXT    NOT NULL,
    operation  BLOB    NOT NULL, -- wire-format JSON, as served by /log and /log/audit
    nullified  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL  -- unix milliseconds (the reference's precision)
);
CREATE INDEX operations_did ON operations (did, seq);
CREATE INDEX operations_did_cid ON operations (did, cid);
CREATE INDEX operations_created ON operations (created_at, seq);
