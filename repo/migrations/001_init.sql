-- Per-account repository. CIDs are stored as binary (cid.Bytes()).

-- Every block the current head references: the commit, MST nodes and records.
-- rev is the commit rev that first stored the block (getRepo?since=).
CREATE TABLE blocks (
    cid  BLOB PRIMARY KEY,
    rev  TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX blocks_rev ON blocks (rev);

-- Index of the records in the current head (listRecords, collections, GC refcheck).
CREATE TABLE records (
    collection TEXT NOT NULL,
    rkey       TEXT NOT NULL,
    cid        BLOB NOT NULL,
    rev        TEXT NOT NULL,
    PRIMARY KEY (collection, rkey)
) WITHOUT ROWID;
CREATE INDEX records_cid ON records (cid);

CREATE TABLE head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    commit_cid BLOB NOT NULL,
    rev        TEXT NOT NULL,
    data_cid   BLOB NOT NULL
);

-- Complete #commit events (without seq) not yet acknowledged by the sequencer.
CREATE TABLE outbox (
    rev   TEXT PRIMARY KEY,
    event BLOB NOT NULL
) WITHOUT ROWID;
