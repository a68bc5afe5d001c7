-- Refunds given at this register (through Central), for the sales report: how much went back,
-- how much of it to the card and how much in cash, as Central split it. One row per refund
-- Central made; its id is Central's.
CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES outbox_orders(order_id),
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    card_minor INTEGER NOT NULL CHECK (card_minor >= 0),
    cash_minor INTEGER NOT NULL CHECK (cash_minor >= 0),
    approved_by TEXT NOT NULL,
    refunded_at INTEGER NOT NULL,
    CHECK (card_minor + cash_minor = amount_minor)
);
CREATE INDEX refunds_refunded_at ON refunds(refunded_at);
