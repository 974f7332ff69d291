-- Blobs of this account (their bytes are in the blob store). cid is the CID string: listBlobs and
-- listMissingBlobs page in CID string order. Takedowns are kept by the account store, not here.
--   state:    0 ready, 1 uploading (row written, bytes being promoted), 2 deleting (claimed by the GC)
--   temp:     1 = uploaded and not referenced since (expires after the temporary upload expiry);
--             0 = was referenced by a record (collected after the GC grace period once unreferenced)
--   unref_at: unix ms since when no record references the blob; NULL while a record does
CREATE TABLE blobs (
    cid          TEXT PRIMARY KEY,
    mime         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    state        INTEGER NOT NULL,
    temp         INTEGER NOT NULL,
    unref_at     INTEGER
) WITHOUT ROWID;
CREATE INDEX blobs_unref ON blobs (unref_at) WHERE unref_at IS NOT NULL;

-- Which records reference which blob, maintained in the commit's transaction. A row may name a blob this
-- account does not have (an imported repository): listMissingBlobs.
CREATE TABLE record_blobs (
    blob_cid   TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey       TEXT NOT NULL,
    PRIMARY KEY (blob_cid, collection, rkey)
) WITHOUT ROWID;
CREATE INDEX record_blobs_record ON record_blobs (collection, rkey);
