-- The firehose log. seq is assigned by the sequencer (never reused, never restarted), frame is the complete
-- websocket frame (CBOR header + CBOR body) so replay sends stored bytes as they are.
CREATE TABLE event (
    seq   INTEGER PRIMARY KEY,
    did   TEXT NOT NULL,
    type  TEXT NOT NULL,
    time  INTEGER NOT NULL, -- unix milliseconds
    frame BLOB NOT NULL
);
CREATE INDEX event_time ON event(time);

-- Per-account sequencing state for crash recovery: the rev of the last commit that got a seq, and whether the
-- account may have commits in its repo outbox that are not sequenced yet.
CREATE TABLE repo_state (
    did      TEXT PRIMARY KEY,
    last_rev TEXT NOT NULL DEFAULT '',
    dirty    INTEGER NOT NULL DEFAULT 0
);

-- key/value: 'head' = the highest seq ever assigned (survives pruning of every event).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
