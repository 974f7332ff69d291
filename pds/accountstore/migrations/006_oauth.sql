-- OAuth authorization server state (package pds/oauth). Every secret a client or browser holds (codes, refresh
-- tokens, device cookies) is stored as its sha256, so a copy of this file grants nothing.
-- Times are Unix milliseconds (compared in SQL for expiry).

-- Pushed authorization requests (PAR), from the push to the code exchange. params is the validated request as
-- JSON; device_hash binds it to the first browser that opens it; did and code_hash are set on approval.
CREATE TABLE oauth_request (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    client_auth TEXT NOT NULL,
    dpop_jkt    TEXT NOT NULL,
    params      TEXT NOT NULL,
    device_hash BLOB,
    did         TEXT REFERENCES account(did) ON DELETE CASCADE,
    code_hash   BLOB UNIQUE,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX oauth_request_expires ON oauth_request(expires_at);

-- One row per grant (a code exchange starts one; refreshes rotate it). token_id is the jti of the only live access
-- token; code_hash remembers the code so a replayed code revokes the session it started.
CREATE TABLE oauth_session (
    id                 TEXT PRIMARY KEY,
    did                TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    client_id          TEXT NOT NULL,
    client_auth        TEXT NOT NULL,
    scope              TEXT NOT NULL,
    dpop_jkt           TEXT NOT NULL,
    token_id           TEXT NOT NULL UNIQUE,
    refresh_hash       BLOB NOT NULL UNIQUE,
    code_hash          BLOB UNIQUE,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    refresh_expires_at INTEGER NOT NULL
);
CREATE INDEX oauth_session_did ON oauth_session(did);
CREATE INDEX oauth_session_expires ON oauth_session(expires_at);

-- Refresh tokens already rotated away: presenting one again is a replay and ends its session.
CREATE TABLE oauth_used_refresh (
    refresh_hash BLOB PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES oauth_session(id) ON DELETE CASCADE
);
CREATE INDEX oauth_used_refresh_session ON oauth_used_refresh(session_id);

-- Browsers (device cookie) and the accounts signed in on them (the account chooser).
CREATE TABLE oauth_device (
    hash         BLOB PRIMARY KEY,
    user_agent   TEXT NOT NULL,
    ip           TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE TABLE oauth_device_account (
    device_hash      BLOB NOT NULL REFERENCES oauth_device(hash) ON DELETE CASCADE,
    did              TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    authenticated_at INTEGER NOT NULL,
    PRIMARY KEY (device_hash, did)
);
CREATE INDEX oauth_device_account_did ON oauth_device_account(did);

-- Single-use values with an expiry: client assertion jtis and PKCE code challenges.
CREATE TABLE oauth_replay (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX oauth_replay_expires ON oauth_replay(expires_at);
