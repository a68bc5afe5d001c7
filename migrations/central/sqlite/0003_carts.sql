-- Carts: guest carts (opened by an unguessable token, of which only the hash is kept) and user
-- carts (one per user), with lines priced at the time they were added. Both expire.

CREATE TABLE carts (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT UNIQUE REFERENCES users (id),
    token_hash  TEXT UNIQUE,
    location_id TEXT NOT NULL REFERENCES locations (id),
    currency    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    -- Exactly one of: a user's cart, a guest's cart.
    CHECK ((owner_id IS NULL) <> (token_hash IS NULL))
);
CREATE INDEX carts_expiry ON carts (expires_at);

-- One line per SKU; unit_price_minor, name and tax_class are the product's when it was added.
CREATE TABLE cart_lines (
    cart_id          TEXT NOT NULL REFERENCES carts (id),
    sku              TEXT NOT NULL,
    position         INTEGER NOT NULL,
    qty              INTEGER NOT NULL CHECK (qty > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    currency         TEXT NOT NULL,
    name             TEXT NOT NULL,
    tax_class        TEXT NOT NULL,
    added_at         INTEGER NOT NULL,
    PRIMARY KEY (cart_id, sku)
);
