-- The register's stock lease at Central (issue 16): stock reserved there for this till, which
-- its offline sales consume with no shortfall. One lease at a time, refreshed every sync round
-- while online (after the sales are pushed), returned at shift close or a clean shutdown.
CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    -- 'active', 'released' or 'expired', as Central last said.
    status TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    pulled_at INTEGER NOT NULL
);

-- Per SKU: `held` is what Central said the lease still holds; `left` is what this till may
-- still sell without a shortfall: `held` less the offline sales made since that are not at
-- Central yet (each sale takes its units in its own transaction).
CREATE TABLE lease_lines (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    sku TEXT NOT NULL,
    held INTEGER NOT NULL CHECK (held >= 0),
    left INTEGER NOT NULL CHECK (left >= 0),
    PRIMARY KEY (lease_id, sku)
);
