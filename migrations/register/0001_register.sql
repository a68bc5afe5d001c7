-- The register's local store: everything a till needs to sell with Central out of reach.
-- Money is integer minor units plus an ISO currency; times are unix milliseconds; ids are UUID text.

-- The register's identity, one row: which register this is, where it stands, the receipt sequence.
CREATE TABLE identity (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    register_id TEXT NOT NULL,
    location TEXT NOT NULL,
    register_code TEXT NOT NULL,
    -- The last receipt sequence used; the next sale takes receipt_seq + 1 in its transaction.
    receipt_seq INTEGER NOT NULL DEFAULT 0 CHECK (receipt_seq >= 0),
    paired_at INTEGER NOT NULL
);

-- The catalog cache: active products only (archived ones are dropped when the feed says so).
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    brand TEXT NOT NULL,
    price_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    tax_class TEXT NOT NULL,
    version INTEGER NOT NULL,
    -- The whole product as Central sent it (or as a queued local edit made it).
    body TEXT NOT NULL
);

CREATE TABLE product_barcodes (
    barcode TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE
);
CREATE INDEX product_barcodes_product ON product_barcodes(product_id);

-- Full-text search by name, SKU, brand, category and barcode; rowid-free, kept by hand.
CREATE VIRTUAL TABLE products_fts USING fts5(
    product_id UNINDEXED, sku, name, brand, category, barcodes,
    tokenize = "unicode61 remove_diacritics 2", prefix = '2 3'
);

-- Central's view of stock per SKU and location, as last pulled.
CREATE TABLE stock_levels (
    sku TEXT NOT NULL,
    location TEXT NOT NULL,
    on_hand INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    available INTEGER NOT NULL,
    pulled_at INTEGER NOT NULL,
    PRIMARY KEY (sku, location)
);

-- Carts survive a restart; several may be parked, one is open at a time.
CREATE TABLE carts (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('open', 'parked', 'completed', 'voided')),
    label TEXT NOT NULL DEFAULT '',
    currency TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX carts_status ON carts(status, updated_at);

CREATE TABLE cart_lines (
    cart_id TEXT NOT NULL REFERENCES carts(id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    unit_price_minor INTEGER NOT NULL,
    tax_class TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty >= 1),
    discount_minor INTEGER NOT NULL DEFAULT 0 CHECK (discount_minor >= 0),
    PRIMARY KEY (cart_id, line_no),
    UNIQUE (cart_id, sku)
);

-- The outbox: one row per completed sale, written in the sale's transaction, pushed in seq order.
CREATE TABLE outbox_orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL UNIQUE,
    cart_id TEXT NOT NULL UNIQUE,
    receipt_no TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL,
    -- 'online': pushed through POST /v1/orders then the payment; 'offline': POST /v1/sync/orders.
    mode TEXT NOT NULL CHECK (mode IN ('online', 'offline')),
    -- pending → (online only) order_created → done; rejected when Central refuses it for good.
    status TEXT NOT NULL CHECK (status IN ('pending', 'order_created', 'done', 'rejected')),
    order_key TEXT NOT NULL,
    payment_key TEXT NOT NULL,
    currency TEXT NOT NULL,
    total_minor INTEGER NOT NULL,
    -- The receipt as printed (domain Totals, JSON), checked again when loaded.
    totals TEXT NOT NULL,
    completed_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- Central's answer once accepted (Order JSON) and any shortfalls it recorded.
    central_order TEXT,
    shortfalls TEXT,
    synced_at INTEGER
);
CREATE INDEX outbox_orders_status ON outbox_orders(status, seq);

CREATE TABLE outbox_lines (
    order_id TEXT NOT NULL REFERENCES outbox_orders(order_id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty >= 1),
    unit_price_minor INTEGER NOT NULL,
    discount_minor INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE outbox_payments (
    order_id TEXT PRIMARY KEY REFERENCES outbox_orders(order_id) ON DELETE CASCADE,
    method TEXT NOT NULL CHECK (method IN ('cash')),
    amount_minor INTEGER NOT NULL,
    tendered_minor INTEGER NOT NULL,
    change_minor INTEGER NOT NULL CHECK (change_minor >= 0)
);

-- Cursors of the pulled feeds ('products', 'recommendations', 'stock').
CREATE TABLE sync_cursors (
    feed TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- A manager's product edits made here, pushed with If-Match: base_version (none for a create).
CREATE TABLE product_edits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    product_id TEXT,
    base_version INTEGER,
    -- The product as the edit saw it (Product JSON), for the field-by-field comparison.
    base TEXT,
    -- What the manager wants (ProductInput JSON).
    input TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'conflict', 'done', 'rejected')),
    -- On a 412: Central's current row (Product JSON).
    theirs TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX product_edits_status ON product_edits(status, seq);

-- "Frequently bought together": each product's top-k partners, as Central's feed gives them.
CREATE TABLE recommendations (
    product_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    partner_id TEXT NOT NULL,
    score REAL NOT NULL,
    support INTEGER NOT NULL,
    PRIMARY KEY (product_id, rank)
);
