-- Manager approvals Central can verify (issue 10, point 8).
--
-- Each register keeps an approval key, HMAC-SHA256(credential, 'kassa-approval-key-v1') in
-- hex, made at pairing: it signs the approvals a register gives offline. Registers paired
-- before this migration have none (their offline approvals are flagged at sync).
ALTER TABLE registers ADD COLUMN approval_key TEXT;

-- Every approval, granted online by Central or given offline by a register (recorded when its
-- sale syncs): used once (used_at, by order_id).
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    register_id TEXT NOT NULL REFERENCES registers (id),
    manager_id  TEXT NOT NULL REFERENCES users (id),
    manager     TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('online', 'offline')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    order_id    TEXT
);

-- Offline sales whose approval did not hold up at sync: the sale stands, a manager looks.
CREATE TABLE approval_flags (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    sku         TEXT NOT NULL,
    approver    TEXT,
    approval_id TEXT,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX approval_flags_created ON approval_flags (created_at);
