-- Staff at the till (numbered 0020 to stay clear of other work in progress): offline sign-in
-- verifiers, and the manager who approved a line discount.

-- After each successful online sign-in, an argon2id verifier of the secret used (password or
-- PIN), never the secret itself: with Central out of reach, staff who signed in here before
-- sign in against it (until it is older than the configured age). A 401 from Central deletes it.
CREATE TABLE staff_verifiers (
    username TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('password', 'pin')),
    role TEXT NOT NULL,
    verifier TEXT NOT NULL,
    verified_at INTEGER NOT NULL,
    PRIMARY KEY (username, kind)
);

-- The manager (username) who approved a discount above the limit, on the cart line and on the
-- sale's line in the outbox (sent to Central with the order).
ALTER TABLE cart_lines ADD COLUMN discount_approved_by TEXT;
ALTER TABLE outbox_lines ADD COLUMN discount_approved_by TEXT;

-- A sale's lines are written from its cart in the sale's transaction; the approver comes along
-- from the cart line with the same SKU, whichever checkout path wrote the line.
CREATE TRIGGER outbox_lines_discount_approver AFTER INSERT ON outbox_lines
WHEN NEW.discount_approved_by IS NULL
BEGIN
    UPDATE outbox_lines SET discount_approved_by = (
        SELECT l.discount_approved_by FROM cart_lines l
        JOIN outbox_orders o ON o.cart_id = l.cart_id
        WHERE o.order_id = NEW.order_id AND l.sku = NEW.sku
    )
    WHERE order_id = NEW.order_id AND line_no = NEW.line_no;
END;
