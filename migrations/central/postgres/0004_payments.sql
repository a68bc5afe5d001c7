-- Payments against orders: cash recorded by the register, card through the processor.
-- Only the processor's references are stored (its PaymentIntent and Refund ids), never card data.
CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    method         TEXT NOT NULL CHECK (method IN ('cash', 'card')),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    currency       TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    tendered_minor BIGINT,
    change_minor   BIGINT,
    -- The idempotency key sent to the processor, derived from the caller's; one row per key.
    processor_key  TEXT UNIQUE,
    -- The processor's PaymentIntent id.
    processor_ref  TEXT UNIQUE,
    failure_code   TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX payments_order ON payments (order_id);

-- Money given back. pending: the processor has not answered yet (the amount is already
-- counted in orders.refunded_minor so two refunds can never exceed what was paid).
CREATE TABLE refunds (
    id             TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL REFERENCES orders (id),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    currency       TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    card_minor     BIGINT NOT NULL CHECK (card_minor >= 0),
    cash_minor     BIGINT NOT NULL CHECK (cash_minor >= 0),
    lines          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    processor_key  TEXT NOT NULL UNIQUE,
    processor_refs TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id);

-- Processor webhook deliveries already applied: the same event id is applied once.
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
