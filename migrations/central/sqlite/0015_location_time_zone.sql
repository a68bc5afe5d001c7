-- The store's day (issue 15): a location's time zone, an IANA name. Reports and Z reports
-- group by the store's local day; a location made before this keeps UTC until an admin sets it.
ALTER TABLE locations ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
