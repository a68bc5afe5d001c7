-- Stock leases (issue 16): stock reserved at Central for one register, which its offline sales
-- consume with no shortfall. Leased units are counted in stock.reserved, so
-- available = on_hand - reserved leaves them out for the shop and the other tills.

CREATE TABLE stock_leases (
    id          TEXT PRIMARY KEY,
    register_id TEXT NOT NULL REFERENCES registers (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    status      TEXT NOT NULL CHECK (status IN ('active', 'released', 'expired')),
    expires_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
CREATE INDEX stock_leases_active_expiry ON stock_leases (status, expires_at);
CREATE INDEX stock_leases_register ON stock_leases (register_id, created_at);

-- Each line keeps its books: what is still held is what was granted less what sales took and
-- what was given back. The sum of `remaining` over active leases is their share of reserved.
CREATE TABLE stock_lease_lines (
    lease_id  TEXT NOT NULL REFERENCES stock_leases (id),
    sku       TEXT NOT NULL,
    requested INTEGER NOT NULL CHECK (requested >= 0),
    granted   INTEGER NOT NULL CHECK (granted >= 0),
    consumed  INTEGER NOT NULL DEFAULT 0 CHECK (consumed >= 0),
    released  INTEGER NOT NULL DEFAULT 0 CHECK (released >= 0),
    remaining INTEGER NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (lease_id, sku),
    CHECK (remaining = granted - consumed - released)
);

-- How the registers of a location size their leases (a manager's setting).
CREATE TABLE lease_settings (
    location_id TEXT PRIMARY KEY REFERENCES locations (id),
    horizon_s   INTEGER NOT NULL,
    cap_percent INTEGER NOT NULL,
    floor_units INTEGER NOT NULL,
    top_sellers INTEGER NOT NULL,
    beyond      TEXT NOT NULL CHECK (beyond IN ('warn', 'approval')),
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
