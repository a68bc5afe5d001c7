-- Cash rounding (issue 15 point 5): a location's increment for cash amounts, in the currency's
-- minor units (5 = 0.05); 0 is none, which every location made before this keeps.
ALTER TABLE locations ADD COLUMN cash_rounding_minor INTEGER NOT NULL DEFAULT 0;
-- The rounding a sale's final cash part was given (rounded − exact, negative when rounded
-- down): paid = total + cash_rounding.
ALTER TABLE orders ADD COLUMN cash_rounding_minor INTEGER NOT NULL DEFAULT 0;
