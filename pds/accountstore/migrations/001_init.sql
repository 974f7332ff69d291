CREATE TABLE account (
    did                TEXT PRIMARY KEY,
    handle             TEXT NOT NULL UNIQUE,
    email              TEXT UNIQUE COLLATE NOCASE,
    password_hash      TEXT NOT NULL,
    signing_key        BLOB NOT NULL,
    created_at         TEXT NOT NULL,
    email_confirmed_at TEXT,
    deactivated_at     TEXT,
    delete_after       TEXT,
    takedown_ref       TEXT,
    invites_disabled   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE refresh_token (
    id                TEXT PRIMARY KEY,
    did               TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    expires_at        INTEGER NOT NULL,
    app_password_name TEXT,
    next_id           TEXT
);
CREATE INDEX refresh_token_did ON refresh_token(did);

CREATE TABLE invite_code (
    code        TEXT PRIMARY KEY,
    available   INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    for_account TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX invite_code_for_account ON invite_code(for_account);

CREATE TABLE invite_code_use (
    code    TEXT NOT NULL REFERENCES invite_code(code) ON DELETE CASCADE,
    used_by TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (code, used_by)
);
