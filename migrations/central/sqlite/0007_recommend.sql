-- Recommendations: item-to-item co-purchase scores computed by the batch job
-- (`kassa-central recommend`), the top-k per product.

-- The top-k partners of each product: score is the cosine co(a,b)/sqrt(n(a)n(b)) over the
-- baskets of paid orders, support is co(a,b) (the number of orders holding both).
CREATE TABLE copurchase_scores (
    product_id  TEXT NOT NULL,
    other_id    TEXT NOT NULL,
    score       REAL NOT NULL,
    support     INTEGER NOT NULL CHECK (support > 0),
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (product_id, other_id)
);

-- One row per product whose top-k list was ever written; change_seq moves forward each time the
-- list changes (also to empty), so registers can page through changed lists by cursor.
CREATE TABLE copurchase_lists (
    product_id  TEXT PRIMARY KEY,
    change_seq  INTEGER NOT NULL UNIQUE,
    computed_at INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('recommend', 0);

-- What the stored scores reflect: every `order.paid` event up to last_event_seq.
CREATE TABLE recommend_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_seq INTEGER NOT NULL,
    computed_at    INTEGER NOT NULL
);
