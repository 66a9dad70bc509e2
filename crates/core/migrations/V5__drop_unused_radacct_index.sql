-- V3's ordering index for GET accounting/ was never used: the listing
-- orders by acctstarttime DESC NULLS LAST, which an index on
-- (acctstarttime DESC, radacctid DESC) (NULLS FIRST) cannot provide, so
-- PostgreSQL sorted anyway. Every accounting Start, and every Interim-Update
-- and Stop that is not a HOT update, paid for an entry in it.
-- radacct_username_idx stays: the per-user listing uses it.
DROP INDEX IF EXISTS radacct_starttime_id_idx;
