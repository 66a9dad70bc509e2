-- GET accounting/ at scale (a radacct of ten million sessions): each filter
-- the API offers finds its newest sessions through an index in the order
-- it lists them (acctstarttime DESC, radacctid DESC), instead of reading
-- every match and sorting. The per-user index gains the start time (it
-- replaces radacct_username_idx, which the counters' sums use the same
-- way); the MAC and access-point filters get one each. Cost: two more
-- index entries per new session (a bulk insert of 200,000 sessions took
-- 1.6-1.9x as long with them); a site that never searches by MAC or access
-- point may drop those two: this migration runs once.
CREATE INDEX IF NOT EXISTS radacct_username_start_idx ON radacct (username, acctstarttime);
DROP INDEX IF EXISTS radacct_username_idx;
CREATE INDEX IF NOT EXISTS radacct_calling_start_idx ON radacct (callingstationid, acctstarttime);
CREATE INDEX IF NOT EXISTS radacct_called_start_idx ON radacct (calledstationid, acctstarttime);
