-- Cash rounding (issue 15 point 5): the store's rule (from Central, in central_settings) rounds
-- the final cash due of a sale. The rounding (rounded − exact, minor units; negative when the
-- customer paid less) is kept on the sale, so its payments add up to total + rounding.
ALTER TABLE outbox_orders ADD COLUMN cash_rounding_minor INTEGER NOT NULL DEFAULT 0;
-- A split sale's final cash part was rounded by this much (0 until that part is taken).
ALTER TABLE split_sales ADD COLUMN cash_rounding_minor INTEGER NOT NULL DEFAULT 0;
