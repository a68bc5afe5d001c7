-- The W3C traceparent of the work that wrote each event (NULL when it was not traced): the relay
-- publishes it in the NATS message headers and its consumers continue that trace.
ALTER TABLE events ADD COLUMN traceparent TEXT;
