-- Split tender (issue 15, point 4): one sale paid by several methods (cash and card, two
-- cards).

-- A sale's payments, one row per part in the order they were taken (part_no 1, 2, …). A sale
-- paid by one method has one row, part 1, as before. For cash, amount is what stayed in the
-- drawer (tendered − change); change is only ever given from cash.
CREATE TABLE outbox_payments_v3 (
    order_id TEXT NOT NULL REFERENCES outbox_orders(order_id) ON DELETE CASCADE,
    part_no INTEGER NOT NULL CHECK (part_no >= 1),
    method TEXT NOT NULL CHECK (method IN ('cash', 'card', 'card_offline')),
    amount_minor INTEGER NOT NULL,
    tendered_minor INTEGER,
    change_minor INTEGER CHECK (change_minor >= 0),
    reference TEXT,
    CHECK ((method = 'cash') = (tendered_minor IS NOT NULL AND change_minor IS NOT NULL)),
    CHECK ((method = 'cash') = (reference IS NULL)),
    PRIMARY KEY (order_id, part_no)
);
INSERT INTO outbox_payments_v3 (order_id, part_no, method, amount_minor, tendered_minor,
        change_minor, reference)
    SELECT order_id, 1, method, amount_minor, tendered_minor, change_minor, reference
    FROM outbox_payments;
DROP TABLE outbox_payments;
ALTER TABLE outbox_payments_v3 RENAME TO outbox_payments;

-- A sale being paid in parts: the cart it holds (no edit, no other tender) until the parts
-- cover its total (the sale is written, these rows go in the same transaction) or the split is
-- voided (every part given back). The parts taken are here, so a crash or a restart mid-way
-- loses none of them: the payment screen comes back with them and the remaining due.
CREATE TABLE split_sales (
    -- The sale's id (and Central's order id once a card part went through Central).
    order_id TEXT PRIMARY KEY,
    cart_id TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL,
    shift_id TEXT REFERENCES shifts(id),
    currency TEXT NOT NULL,
    total_minor INTEGER NOT NULL CHECK (total_minor > 0),
    created_at INTEGER NOT NULL
);

-- One part of a split sale. An online card part is written 'pending' before Central hears of
-- it (with its own payment key, so every retry is the same request) and becomes 'paid' with
-- the processor's reference, or goes when it was declined or never sent.
CREATE TABLE split_parts (
    order_id TEXT NOT NULL REFERENCES split_sales(order_id) ON DELETE CASCADE,
    part_no INTEGER NOT NULL CHECK (part_no >= 1),
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid')),
    method TEXT NOT NULL CHECK (method IN ('cash', 'card', 'card_offline')),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    tendered_minor INTEGER,
    change_minor INTEGER CHECK (change_minor >= 0),
    reference TEXT,
    payment_key TEXT,
    -- The processor's payment-method token the terminal handed over (never card data).
    payment_method TEXT,
    last_error TEXT,
    taken_at INTEGER NOT NULL,
    CHECK ((method = 'cash') = (tendered_minor IS NOT NULL AND change_minor IS NOT NULL)),
    CHECK (status = 'pending' OR method = 'cash' OR reference IS NOT NULL),
    PRIMARY KEY (order_id, part_no)
);
