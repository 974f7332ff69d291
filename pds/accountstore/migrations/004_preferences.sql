-- Account preferences (app.bsky.actor.getPreferences / putPreferences), in the order they were written.
-- name is the preference's $type; value_json the whole preference object as the client sent it.
CREATE TABLE account_pref (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    did        TEXT NOT NULL REFERENCES account(did) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value_json TEXT NOT NULL
);
CREATE INDEX account_pref_did ON account_pref(did, id);
