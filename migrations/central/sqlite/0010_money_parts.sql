-- Money never goes astray (issue 10).
--
-- Each card payment knows what has been given back from it: refund parts and an orphan
-- refund alike count here, so a payment is never refunded twice and a refund's split across
-- an order's card payments is computed per payment, once, under the order's lock.
ALTER TABLE payments ADD COLUMN refunded_minor INTEGER NOT NULL DEFAULT 0;
-- A card success that came for an order which could no longer take it: 'pending' until the
-- processor gave it back, then 'refunded'. NULL for every other payment.
ALTER TABLE payments ADD COLUMN orphan TEXT CHECK (orphan IN ('pending', 'refunded'));
-- The processor's payment-method token (pm_…, never card data): the reconciler replays a card
-- payment whose first call went unanswered with exactly the parameters it was sent.
ALTER TABLE payments ADD COLUMN payment_method TEXT;
CREATE INDEX payments_pending ON payments (status, updated_at);
CREATE INDEX payments_orphan ON payments (orphan);

-- How a refund's card part is split over the order's card payments: written with the refund,
-- so every retry (and the reconciler) sends the processor the same calls with the same keys.
CREATE TABLE refund_parts (
    refund_id     TEXT NOT NULL REFERENCES refunds (id),
    seq           INTEGER NOT NULL,
    payment_id    TEXT NOT NULL REFERENCES payments (id),
    intent_id     TEXT NOT NULL,
    amount_minor  INTEGER NOT NULL CHECK (amount_minor > 0),
    -- The processor's refund id once it answered.
    processor_ref TEXT,
    PRIMARY KEY (refund_id, seq)
);
CREATE INDEX refund_parts_payment ON refund_parts (payment_id);
CREATE INDEX refunds_pending ON refunds (status, updated_at);
-- Why the processor refused a refund (status 'failed').
ALTER TABLE refunds ADD COLUMN failure TEXT;
