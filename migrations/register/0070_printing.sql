-- Thermal printing: every document this till prints goes through this queue, so a printer
-- that is off never blocks or loses a sale: the job waits and prints when the printer is back.
-- A receipt's original is copy 0; each reprint is the next copy of its sale (COPY n on paper).
CREATE TABLE print_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('receipt', 'report', 'drawer')),
    -- The sale a receipt is of.
    order_id TEXT REFERENCES outbox_orders(order_id),
    copy_no INTEGER NOT NULL DEFAULT 0 CHECK (copy_no >= 0),
    -- What the till lists: "Receipt STORE-1-R1-000042", "Sales report".
    title TEXT NOT NULL,
    -- The layout (printer::Document JSON), rendered for the paper at print time.
    document TEXT NOT NULL,
    -- Pulse the cash drawer before printing (a cash sale, a no-sale), unless the job is stale.
    open_drawer INTEGER NOT NULL DEFAULT 0 CHECK (open_drawer IN (0, 1)),
    -- queued → printed; a drawer pulse nobody printed in time → expired.
    status TEXT NOT NULL CHECK (status IN ('queued', 'printed', 'expired')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    printed_at INTEGER,
    UNIQUE (order_id, copy_no)
);
CREATE INDEX print_jobs_status ON print_jobs(status, id);
