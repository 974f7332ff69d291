-- Email tokens: one live token per account and purpose (a new request replaces the old one).
CREATE TABLE email_token (
    purpose      TEXT NOT NULL,
    did          TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    token        TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    PRIMARY KEY (purpose, did)
);
CREATE UNIQUE INDEX email_token_purpose_token ON email_token(purpose, token);

CREATE TABLE app_password (
    did           TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    privileged    INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (did, name)
);

-- Moderation takedowns of single records and blobs (a repo takedown is account.takedown_ref).
CREATE TABLE record_takedown (
    uri          TEXT PRIMARY KEY,
    did          TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    cid          TEXT NOT NULL,
    takedown_ref TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX record_takedown_did ON record_takedown(did);

CREATE TABLE blob_takedown (
    did          TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    cid          TEXT NOT NULL,
    takedown_ref TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (did, cid)
);

CREATE INDEX invite_code_use_used_by ON invite_code_use(used_by);
