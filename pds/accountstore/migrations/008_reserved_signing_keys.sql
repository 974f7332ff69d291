-- Signing keys reserved with com.atproto.server.reserveSigningKey for an account not created yet: bound to the
-- DID named in the request, or unbound (then found by the key's did:key, as the reference finds them). A later
-- createAccount with a plcOp (or for an existing DID) takes the key; unused ones expire.
CREATE TABLE reserved_signing_key (
	key_did     TEXT PRIMARY KEY,    -- the public key as a did:key
	did         TEXT UNIQUE,         -- the account's DID; NULL: unbound
	private_key BLOB NOT NULL,       -- K256 private key bytes
	created_at  INTEGER NOT NULL,    -- unix ms
	expires_at  INTEGER NOT NULL     -- unix ms
);
CREATE INDEX reserved_signing_key_expires ON reserved_signing_key (expires_at);
