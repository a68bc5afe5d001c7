-- Offline sync: orders registers completed while offline, applied once per (register, order id),
-- and the payments they were taken with.

-- One row per applied offline order: the key that makes a retry replay instead of re-apply, and
-- the per-order result (JSON) replayed byte for byte. The row is inserted at the start of the
-- transaction that applies the order (the claim) and gets its result before that commits.
CREATE TABLE offline_orders (
    register_id  TEXT NOT NULL REFERENCES registers (id),
    order_id     TEXT NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    request_hash TEXT NOT NULL,
    receipt_no   TEXT NOT NULL,
    completed_at INTEGER NOT NULL,
    result       TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (register_id, order_id)
);

-- Payments taken offline: cash with what was tendered and the change, or a card payment the
-- terminal authorised offline (only its reference is kept, never a card number).
CREATE TABLE offline_payments (
    order_id       TEXT NOT NULL REFERENCES orders (id),
    seq            INTEGER NOT NULL,
    method         TEXT NOT NULL CHECK (method IN ('cash', 'card_offline')),
    currency       TEXT NOT NULL,
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    tendered_minor INTEGER,
    change_minor   INTEGER,
    reference      TEXT,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (order_id, seq),
    CHECK (method <> 'cash'
           OR (tendered_minor >= amount_minor AND change_minor = tendered_minor - amount_minor)),
    CHECK (method <> 'card_offline' OR reference IS NOT NULL)
);

CREATE INDEX stock_discrepancies_location ON stock_discrepancies (location_id, resolved_at);
