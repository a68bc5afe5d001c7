-- Card payments at the till (numbered 0010 to leave 0003–0009 to other work in progress).

-- A sale's payment now says its method: cash (tendered, change), card (the processor's
-- reference; the sale went through Central's checkout) or card_offline (the reference this
-- register made under its offline card policy). SQLite cannot change a CHECK in place, so the
-- table is rebuilt; nothing references it.
CREATE TABLE outbox_payments_v2 (
    order_id TEXT PRIMARY KEY REFERENCES outbox_orders(order_id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('cash', 'card', 'card_offline')),
    amount_minor INTEGER NOT NULL,
    tendered_minor INTEGER,
    change_minor INTEGER CHECK (change_minor >= 0),
    reference TEXT,
    CHECK ((method = 'cash') = (tendered_minor IS NOT NULL AND change_minor IS NOT NULL)),
    CHECK ((method = 'cash') = (reference IS NULL))
);
INSERT INTO outbox_payments_v2 (order_id, method, amount_minor, tendered_minor, change_minor)
    SELECT order_id, method, amount_minor, tendered_minor, change_minor FROM outbox_payments;
DROP TABLE outbox_payments;
ALTER TABLE outbox_payments_v2 RENAME TO outbox_payments;

-- A card payment while its outcome is unknown. 'pending' holds its cart (no edit, no other
-- tender) until Central says paid (the sale completes, the row goes) or not (the row goes, or
-- waits as 'cancelling' until Central has cancelled the order and released its stock). The
-- keys and the payment method never change, so every retry is the same request.
CREATE TABLE card_sales (
    order_id TEXT PRIMARY KEY,
    cart_id TEXT NOT NULL,
    location TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'cancelling')),
    order_key TEXT NOT NULL,
    payment_key TEXT NOT NULL,
    -- The processor's payment-method token the terminal handed over (never card data).
    payment_method TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX card_sales_pending_cart ON card_sales(cart_id) WHERE status = 'pending';
