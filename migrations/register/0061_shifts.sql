-- Shifts at the till (issue 15): a shift opens with a float, every sale, refund and cash
-- movement belongs to the open one, and it closes with a blind count and a Z report.

-- One row per shift; at most one open (closed_at IS NULL) at a time. The count is written once
-- (counted_at): the cashier counts before seeing what was expected and cannot count again.
CREATE TABLE shifts (
    id TEXT PRIMARY KEY,
    opened_at INTEGER NOT NULL,
    opened_by TEXT NOT NULL,
    currency TEXT NOT NULL,
    float_minor INTEGER NOT NULL CHECK (float_minor >= 0),
    -- The float note by note (JSON [{value, count}]), or '[]' when given as a sum.
    float_counts TEXT NOT NULL DEFAULT '[]',
    counted_at INTEGER,
    counted_by TEXT,
    counted_minor INTEGER CHECK (counted_minor >= 0),
    counted_counts TEXT,
    closed_at INTEGER,
    closed_by TEXT,
    CHECK ((counted_at IS NULL) = (counted_minor IS NULL)),
    CHECK (closed_at IS NULL OR counted_at IS NOT NULL)
);
CREATE UNIQUE INDEX shifts_one_open ON shifts((1)) WHERE closed_at IS NULL;

-- Cash into or out of the drawer that is not a sale: paid-in, paid-out, safe drop.
CREATE TABLE cash_movements (
    id TEXT PRIMARY KEY,
    shift_id TEXT NOT NULL REFERENCES shifts(id),
    kind TEXT NOT NULL CHECK (kind IN ('paid_in', 'paid_out', 'safe_drop')),
    currency TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    made_by TEXT NOT NULL,
    approved_by TEXT,
    made_at INTEGER NOT NULL
);
CREATE INDEX cash_movements_shift ON cash_movements(shift_id, made_at);

-- Z reports: numbered per register 1, 2, 3, … written in the closing transaction. The number
-- is the next after the highest (checked here, so no code path can leave a gap), the primary
-- key never reuses one, and a written report is never changed or deleted; only its delivery
-- to Central (synced_at) is recorded later.
CREATE TABLE z_reports (
    z_no INTEGER PRIMARY KEY CHECK (z_no >= 1),
    shift_id TEXT NOT NULL UNIQUE REFERENCES shifts(id),
    -- The whole report as kassa_domain::ShiftReport JSON.
    report TEXT NOT NULL,
    written_at INTEGER NOT NULL,
    synced_at INTEGER
);
CREATE TRIGGER z_reports_no_gap BEFORE INSERT ON z_reports
WHEN NEW.z_no <> COALESCE((SELECT MAX(z_no) FROM z_reports), 0) + 1
BEGIN
    SELECT RAISE(ABORT, 'a Z number must follow the last one with no gap');
END;
CREATE TRIGGER z_reports_immutable BEFORE UPDATE OF z_no, shift_id, report, written_at ON z_reports
BEGIN
    SELECT RAISE(ABORT, 'a Z report is immutable');
END;
CREATE TRIGGER z_reports_kept BEFORE DELETE ON z_reports
BEGIN
    SELECT RAISE(ABORT, 'a Z report is never deleted');
END;

-- Sales, card payments in progress and refunds belong to the shift open when they were made.
-- (NULL only for rows from before shifts existed.)
ALTER TABLE outbox_orders ADD COLUMN shift_id TEXT REFERENCES shifts(id);
CREATE INDEX outbox_orders_shift ON outbox_orders(shift_id);
ALTER TABLE card_sales ADD COLUMN shift_id TEXT REFERENCES shifts(id);
ALTER TABLE pending_refunds ADD COLUMN shift_id TEXT REFERENCES shifts(id);
ALTER TABLE refunds ADD COLUMN shift_id TEXT REFERENCES shifts(id);
CREATE INDEX refunds_shift ON refunds(shift_id);
