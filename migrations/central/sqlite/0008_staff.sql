-- Staff at the tills: PINs for quick sign-in at a register, the manager who approved a line
-- discount, and register device sessions (a paired till syncing with nobody signed in).

-- A short PIN (4-8 digits, argon2id-hashed like passwords), only accepted with a register's
-- credential. pin_failures counts wrong PINs in a row; at the limit PIN sign-in locks until
-- pin_locked_until (password sign-in is unaffected).
ALTER TABLE users ADD COLUMN pin_hash TEXT;
ALTER TABLE users ADD COLUMN pin_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN pin_locked_until INTEGER;

-- The manager who approved a discount above the register's limit (a username), if any.
ALTER TABLE order_lines ADD COLUMN discount_approved_by TEXT;

-- A session's role when it is not its user's: 'register' for a device session, whose user is
-- the manager who paired the register.
ALTER TABLE sessions ADD COLUMN role TEXT;
