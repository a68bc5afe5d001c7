-- Shifts (issue 15): every register's closed shifts, as their Z reports arrive through sync,
-- exactly once per (register, Z number). The figures a manager lists are columns; the whole
-- report is kept as it came (JSON), and a replay is recognised by comparing it.

CREATE TABLE shifts (
    register_id            TEXT NOT NULL REFERENCES registers (id),
    z_no                   BIGINT NOT NULL CHECK (z_no >= 1),
    shift_id               TEXT NOT NULL UNIQUE,
    location_id            TEXT NOT NULL REFERENCES locations (id),
    register_code          TEXT NOT NULL,
    -- The store's local day the shift opened on, YYYY-MM-DD.
    business_day           TEXT NOT NULL,
    opened_at              BIGINT NOT NULL,
    closed_at              BIGINT NOT NULL,
    opened_by              TEXT NOT NULL,
    closed_by              TEXT NOT NULL,
    currency               TEXT NOT NULL,
    float_minor            BIGINT NOT NULL,
    cash_sales_minor       BIGINT NOT NULL,
    cash_refunds_minor     BIGINT NOT NULL,
    paid_in_minor          BIGINT NOT NULL,
    paid_out_minor         BIGINT NOT NULL,
    safe_drops_minor       BIGINT NOT NULL,
    expected_minor         BIGINT NOT NULL,
    counted_minor          BIGINT NOT NULL,
    over_short_minor       BIGINT NOT NULL,
    over_short_approved_by TEXT,
    sales                  BIGINT NOT NULL,
    gross_minor            BIGINT NOT NULL,
    refunds_minor          BIGINT NOT NULL,
    net_minor              BIGINT NOT NULL,
    no_sales               BIGINT NOT NULL,
    report                 TEXT NOT NULL,
    received_at            BIGINT NOT NULL,
    received_from          TEXT NOT NULL,
    PRIMARY KEY (register_id, z_no),
    CHECK (expected_minor = float_minor + cash_sales_minor - cash_refunds_minor + paid_in_minor
        - paid_out_minor - safe_drops_minor),
    CHECK (over_short_minor = counted_minor - expected_minor)
);
CREATE INDEX shifts_location_day ON shifts (location_id, business_day);
CREATE INDEX shifts_day ON shifts (business_day);
