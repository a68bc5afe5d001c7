-- Approvals Central verifies (issue 10, point 8). A line whose discount is above the cashier's
-- limit carries the approval as Central checks it: JSON of `kassa_domain::approval::ApprovalRef`
-- (the id Central granted online, or an approval this register signed offline with its
-- approval key). Written on the cart line with its approver, copied to the sale's line in the
-- sale's transaction, sent with the order online and offline. NULL on lines that needed none.
ALTER TABLE cart_lines ADD COLUMN discount_approval TEXT;
ALTER TABLE outbox_lines ADD COLUMN discount_approval TEXT;

-- What Central decides for every till, as last pulled (`GET /v1/settings/sale`): one row per
-- setting group, its JSON. Until the first pull the register's configuration applies.
CREATE TABLE central_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    pulled_at INTEGER NOT NULL
);
