-- The audit log: security events, newest first for admins and for the users they concern,
-- in the style of 0001: uuid keys, timestamptz, text with CHECK constraints.
--
-- No foreign key to users: events outlive their users. Deleting an account anonymizes its
-- events (identifier, ip and user_agent set to NULL) instead of deleting them.
CREATE TABLE audit_events (
    id         uuid PRIMARY KEY,            -- v7: orders ties of `at`
    at         timestamptz NOT NULL,
    -- No CHECK on kind: new kinds come with new releases, and during a rolling deploy the
    -- newer release writes them before the older one stops. A kind a release does not know
    -- reads as a corrupt row there.
    kind       text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('success', 'failure')),
    actor      uuid,                        -- NULL: anonymous or a tool
    subject    uuid,                        -- NULL: no account concerned
    identifier text,                        -- as typed at a sign-in
    ip         text,
    user_agent text,
    detail     text
);

-- Pages are newest first, by (at, id), continuing below an (at, id) cursor (a row-value
-- comparison, which a btree index serves). This index serves the unfiltered page and the
-- purge (at < cut-off); the two below serve the subject and actor filters and anonymizing.
-- The kind and outcome filters are checked on the rows these indexes yield: they are
-- coarse (a few kinds make most of the log), so their own index would rarely beat walking
-- the time order.
CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_subject ON audit_events (subject, at, id);
CREATE INDEX audit_events_actor ON audit_events (actor, at, id);
