-- A refund the till is asking Central for, written before the request: its id (sent to
-- Central, which keeps it) and its Idempotency-Key never change, so every try is the same
-- request. Central's answer settles it into `refunds` (in one transaction with the row's
-- removal); if the register crashed or its local write failed after Central answered, the
-- sync engine settles it from `GET /v1/orders/{id}/refunds`. A refund Central refused is
-- removed. The report reads only `refunds`, so a refund counts once.
CREATE TABLE pending_refunds (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES outbox_orders(order_id),
    location TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    -- The returned lines as sent: JSON [{"sku","qty"}].
    lines TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
