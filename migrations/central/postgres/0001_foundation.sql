-- Kassa Central foundation: settings, users and sessions, registers, locations, catalog.
-- Times are unix milliseconds (UTC); money is integer minor units plus an ISO currency.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'cashier', 'customer')),
    created_at    BIGINT NOT NULL
);

CREATE TABLE locations (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE registers (
    id              TEXT PRIMARY KEY,
    location_id     TEXT NOT NULL REFERENCES locations (id),
    name            TEXT NOT NULL,
    credential_hash TEXT NOT NULL,
    created_by      TEXT NOT NULL REFERENCES users (id),
    created_at      BIGINT NOT NULL
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    register_id  TEXT REFERENCES registers (id),
    refresh_hash TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

-- Refresh tokens already rotated away: presenting one again means it was stolen or replayed.
CREATE TABLE retired_refresh_tokens (
    refresh_hash TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id)
);

-- Monotonic counters taken inside write transactions (the catalog change sequence).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('catalog', 0);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    category    TEXT NOT NULL,
    brand       TEXT NOT NULL,
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL,
    tax_class   TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    archived    BIGINT NOT NULL DEFAULT 0,
    version     BIGINT NOT NULL,
    change_seq  BIGINT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE product_barcodes (
    barcode    TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    position   BIGINT NOT NULL
);
CREATE INDEX product_barcodes_product ON product_barcodes (product_id);
