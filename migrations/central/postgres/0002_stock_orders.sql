-- Stock with its ledger, reservations, orders, idempotency keys, and the event outbox.

-- The transactional outbox: every state change writes its event in the same transaction.
CREATE TABLE events (
    seq            BIGSERIAL PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    type           TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX events_aggregate ON events (aggregate_type, aggregate_id, seq);

-- available = on_hand - reserved, never below zero: the database refuses it.
CREATE TABLE stock (
    sku           TEXT NOT NULL,
    location_id   TEXT NOT NULL REFERENCES locations (id),
    on_hand       BIGINT NOT NULL DEFAULT 0,
    reserved      BIGINT NOT NULL DEFAULT 0,
    low_threshold BIGINT,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (sku, location_id),
    CHECK (reserved >= 0),
    CHECK (on_hand - reserved >= 0)
);

-- Every movement of on_hand, with its reason; per SKU and location it sums to on_hand.
CREATE TABLE stock_ledger (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL,
    location_id TEXT NOT NULL REFERENCES locations (id),
    delta       BIGINT NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('receiving', 'sale', 'return', 'adjustment',
                                                'count_correction', 'reservation_conversion')),
    ref         TEXT,
    note        TEXT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX stock_ledger_sku ON stock_ledger (sku, location_id);

CREATE TABLE reservations (
    id          TEXT PRIMARY KEY,
    location_id TEXT NOT NULL REFERENCES locations (id),
    order_id    TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'released', 'expired', 'converted')),
    expires_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX reservations_active_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    sku            TEXT NOT NULL,
    qty            BIGINT NOT NULL CHECK (qty > 0),
    PRIMARY KEY (reservation_id, sku)
);

CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users (id),
    register_id     TEXT,
    location_id     TEXT NOT NULL REFERENCES locations (id),
    source          TEXT NOT NULL CHECK (source IN ('online', 'register', 'offline')),
    status          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    subtotal_minor  BIGINT NOT NULL,
    discount_minor  BIGINT NOT NULL,
    tax_minor       BIGINT NOT NULL,
    total_minor     BIGINT NOT NULL,
    paid_minor      BIGINT NOT NULL DEFAULT 0,
    refunded_minor  BIGINT NOT NULL DEFAULT 0,
    totals          TEXT NOT NULL,
    reservation_id  TEXT REFERENCES reservations (id),
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX orders_status_created ON orders (status, created_at);

CREATE TABLE order_lines (
    order_id       TEXT NOT NULL REFERENCES orders (id),
    line_no        BIGINT NOT NULL,
    sku            TEXT NOT NULL,
    name           TEXT NOT NULL,
    qty            BIGINT NOT NULL CHECK (qty > 0),
    unit_price_minor BIGINT NOT NULL,
    discount_minor BIGINT NOT NULL,
    total_minor    BIGINT NOT NULL,
    tax_class      TEXT NOT NULL,
    returned_qty   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (order_id, line_no)
);

-- Stripe-style idempotency: the first response of (scope, key) is kept and replayed.
-- response_status NULL means the first request is still in flight (since locked_at).
CREATE TABLE idempotency_keys (
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    locked_at       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Offline sales that found less stock than they sold: for a manager to resolve.
CREATE TABLE stock_discrepancies (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL,
    location_id TEXT NOT NULL REFERENCES locations (id),
    order_id    TEXT NOT NULL REFERENCES orders (id),
    shortfall   BIGINT NOT NULL CHECK (shortfall > 0),
    created_at  BIGINT NOT NULL,
    resolved_at BIGINT
);
