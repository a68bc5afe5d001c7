-- The cash drawer opened with no sale: recorded, with the manager who allowed it, and counted
-- per day (and by the Z report of the shift it fell in).
CREATE TABLE no_sales (
    id TEXT PRIMARY KEY,
    opened_at INTEGER NOT NULL,
    -- The manager who allowed it, and who was signed in at the till.
    approved_by TEXT NOT NULL,
    signed_in TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX no_sales_opened_at ON no_sales(opened_at);
