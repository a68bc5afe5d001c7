-- Returns by receipt: a till refunds a sale made at another till of the store (or an online
-- order), found at Central by the order id its receipt's code holds. Such a sale is not in
-- this till's outbox, so refunds and refunds in progress no longer reference it. Rebuilt
-- without the foreign key (SQLite cannot drop one), rows kept as they were, with the shift each
-- belongs to (0061).
CREATE TABLE refunds_any_till (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    card_minor INTEGER NOT NULL CHECK (card_minor >= 0),
    cash_minor INTEGER NOT NULL CHECK (cash_minor >= 0),
    approved_by TEXT NOT NULL,
    refunded_at INTEGER NOT NULL,
    shift_id TEXT REFERENCES shifts(id),
    CHECK (card_minor + cash_minor = amount_minor)
);
INSERT INTO refunds_any_till SELECT id, order_id, currency, amount_minor, card_minor, cash_minor,
    approved_by, refunded_at, shift_id FROM refunds;
DROP TABLE refunds;
ALTER TABLE refunds_any_till RENAME TO refunds;
CREATE INDEX refunds_refunded_at ON refunds(refunded_at);
CREATE INDEX refunds_shift ON refunds(shift_id);

CREATE TABLE pending_refunds_any_till (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    location TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    lines TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    shift_id TEXT REFERENCES shifts(id)
);
INSERT INTO pending_refunds_any_till SELECT id, order_id, location, idempotency_key, lines,
    approved_by, last_error, created_at, updated_at, shift_id FROM pending_refunds;
DROP TABLE pending_refunds;
ALTER TABLE pending_refunds_any_till RENAME TO pending_refunds;
