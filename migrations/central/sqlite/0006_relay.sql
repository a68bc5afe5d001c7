-- The event relay (crates/central/src/events): a per-event delivered marker instead of a
-- "seq > cursor" read position, so an event whose transaction commits after a later-numbered
-- one is still found (it is undelivered until a relay has handed it to every sink).
ALTER TABLE events ADD COLUMN delivered_at INTEGER;
CREATE INDEX events_undelivered ON events (seq) WHERE delivered_at IS NULL;

-- Which in-process consumer has applied which event; the row is written in the consumer's own
-- transaction, so a re-delivered event is seen as a duplicate and skipped.
CREATE TABLE consumed_events (
    consumer    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    consumed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- One relay at a time delivers: the holder renews its lease every step. An optimisation only:
-- consumers and the NATS stream de-duplicate by event id when two relays overlap.
CREATE TABLE relay_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO relay_leases (name, holder, expires_at) VALUES ('outbox', '', 0);

-- Low-stock alerts raised by the stock-alerts consumer from stock.low events.
CREATE TABLE stock_alerts (
    event_id    TEXT PRIMARY KEY,
    sku         TEXT NOT NULL,
    location_id TEXT NOT NULL,
    available   INTEGER NOT NULL,
    threshold   INTEGER NOT NULL,
    raised_at   INTEGER NOT NULL
);
CREATE INDEX stock_alerts_sku ON stock_alerts (sku, location_id);
