-- The durable mail outbox, its dead letters, and one-time tokens (email verification,
-- password reset). Times are INTEGER nanoseconds since the Unix epoch (UTC), like the others.

-- Mail waiting to be sent. A worker claims due rows for a lease (claim_id, claimed_until);
-- a sent mail is deleted, body and all (it may hold a single-use link).
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY NOT NULL,   -- UUID, hyphenated; also the Message-ID
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,  -- failed attempts so far
    enqueued_at     INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claim_id        TEXT,                        -- the claim holding it, 32 hex digits
    claimed_until   INTEGER,
    last_error      TEXT
) STRICT;

-- Claims take due rows oldest first.
CREATE INDEX mail_outbox_claim_order ON mail_outbox (enqueued_at, id);
CREATE INDEX mail_outbox_next_attempt_at ON mail_outbox (next_attempt_at);

-- What is left of a mail the outbox gave up on: never its subject or body.
CREATE TABLE mail_dead_letters (
    id        TEXT NOT NULL,                     -- the mail's UUID
    recipient TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    error     TEXT NOT NULL,
    failed_at INTEGER NOT NULL
) STRICT;

CREATE INDEX mail_dead_letters_failed_at ON mail_dead_letters (failed_at);

-- The SHA-256 of each one-time token; a newer token of a user and purpose replaces the older.
CREATE TABLE one_time_tokens (
    hash       BLOB PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email      TEXT NOT NULL,                    -- the address it was sent to
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX one_time_tokens_user_purpose ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
