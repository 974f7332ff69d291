-- Taken-down accounts, found without reading every account's row: the server loads them at its first request
-- that checks takedowns (pds/takedown.go), which would otherwise cost a full scan of this table per start.
CREATE INDEX account_takedown ON account(did) WHERE takedown_ref IS NOT NULL;
