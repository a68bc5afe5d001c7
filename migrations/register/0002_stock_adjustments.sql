-- A manager's stock adjustments and receiving, queued at the register and pushed in order.
-- Central's POST /v1/stock/adjustments has no idempotency key: an attempt whose answer was lost
-- is marked 'uncertain' for a manager to check instead of being sent twice.
CREATE TABLE stock_adjustments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sku TEXT NOT NULL,
    location TEXT NOT NULL,
    delta INTEGER NOT NULL CHECK (delta != 0),
    reason TEXT NOT NULL,
    note TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'rejected', 'uncertain')),
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX stock_adjustments_status ON stock_adjustments(status, seq);
