-- The accounts marked for recovery, found without reading every account's row: Open and Dirty run at every
-- start, and after a clean stop none is marked, so start-up costs the same with 100 accounts or 100,000.
CREATE INDEX repo_state_dirty ON repo_state(did) WHERE dirty = 1;
