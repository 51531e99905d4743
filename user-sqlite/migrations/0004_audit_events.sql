-- The audit log: security events, newest first for admins and for the users they concern.
-- Times are INTEGER nanoseconds since the Unix epoch (UTC), like the others.
--
-- No foreign key to users: events outlive their users. Deleting an account anonymizes its
-- events (identifier, ip and user_agent set to NULL) instead of deleting them.
CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY NOT NULL,   -- UUID v7, hyphenated: orders ties of `at`
    at         INTEGER NOT NULL,
    -- No CHECK on kind: new kinds come with new releases, without a table rebuild. A kind
    -- this release does not know reads as a corrupt row.
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    actor      TEXT,                        -- user UUID; NULL: anonymous or a tool
    subject    TEXT,                        -- user UUID; NULL: no account concerned
    identifier TEXT,                        -- as typed at a sign-in
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT
) STRICT;

-- Pages are newest first, by (at, id), continuing below a (at, id) cursor. This index
-- serves the unfiltered page and the purge (at < cut-off); the two below serve the subject
-- and actor filters. The kind and outcome filters are checked on the rows these indexes
-- yield: they are coarse (a few kinds make most of the log), so their own index would
-- rarely beat walking the time order.
CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_subject ON audit_events (subject, at, id);
CREATE INDEX audit_events_actor ON audit_events (actor, at, id);
