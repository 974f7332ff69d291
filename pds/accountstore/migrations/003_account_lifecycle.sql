-- The deletion job looks for deactivated accounts whose deleteAfter has passed.
CREATE INDEX account_delete_after ON account(delete_after) WHERE delete_after IS NOT NULL;
