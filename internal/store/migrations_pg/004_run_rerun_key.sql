-- A run's file content may be analysed again (a re-analysis campaign, a
-- repair): such runs carry a rerun key, and each (flow, content, key) runs
-- once. Runs started by an upload have the empty key, as before.
ALTER TABLE run ADD COLUMN rerun_key TEXT NOT NULL DEFAULT '';
ALTER TABLE run DROP CONSTRAINT run_flow_sha256_key;
ALTER TABLE run ADD CONSTRAINT run_content UNIQUE (flow, sha256, rerun_key);
