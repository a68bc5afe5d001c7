-- A manager settles a shortfall an offline sale left (after a recount, a found box, a write-off):
-- who settled it and how, next to when (resolved_at).
ALTER TABLE stock_discrepancies ADD COLUMN resolved_by TEXT REFERENCES users (id);
ALTER TABLE stock_discrepancies ADD COLUMN resolution TEXT;
