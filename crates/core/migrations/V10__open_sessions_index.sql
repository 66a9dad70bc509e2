-- Simultaneous-Use reads a user's open sessions at every login that has
-- the check item. radacct_username_idx would visit every session the user
-- ever had; this one only the open ones, so the count stays one small
-- index probe on a radacct of millions of rows. (The counters sum a user's
-- closed sessions through radacct_username_idx.)
CREATE INDEX IF NOT EXISTS radacct_username_open_idx ON radacct (username)
    WHERE acctstoptime IS NULL;
