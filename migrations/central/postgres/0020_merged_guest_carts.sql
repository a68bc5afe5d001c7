-- Guest carts in Redis (issue 13 point 4): a guest cart kept in Redis that was merged into a
-- user's cart. The merge commits this row with the user's new lines, then deletes the cart's
-- key in Redis; a second merge of the same cart finds the row and is a 404 even when the key
-- outlived the merge (a crash or a Redis failure in between). Forgotten at forget_at, when
-- Redis has dropped the key anyway.
CREATE TABLE merged_guest_carts (
    cart_id   TEXT PRIMARY KEY,
    merged_at BIGINT NOT NULL,
    forget_at BIGINT NOT NULL
);
CREATE INDEX merged_guest_carts_forget ON merged_guest_carts (forget_at);
