-- The durable mail outbox, its dead letters, and one-time tokens (email verification,
-- password reset), in the style of 0001: uuid keys, timestamptz, bytea hashes, text with
-- CHECK constraints.

-- Mail waiting to be sent. Workers claim due rows for a lease (claim_id, claimed_until) with
-- FOR UPDATE SKIP LOCKED; a sent mail is deleted, body and all (it may hold a single-use
-- link).
CREATE TABLE mail_outbox (
    id              uuid PRIMARY KEY,            -- also the Message-ID
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body_text       text NOT NULL,
    body_html       text,
    attempts        bigint NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 4294967295),
    enqueued_at     timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    claim_id        uuid,
    claimed_until   timestamptz,
    last_error      text
);

-- Claims take due rows oldest first.
CREATE INDEX mail_outbox_claim_order ON mail_outbox (enqueued_at, id);
CREATE INDEX mail_outbox_next_attempt_at ON mail_outbox (next_attempt_at);

-- What is left of a mail the outbox gave up on: never its subject or body.
CREATE TABLE mail_dead_letters (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id        uuid NOT NULL,                     -- the mail's id
    recipient text NOT NULL,
    attempts  bigint NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
    error     text NOT NULL,
    failed_at timestamptz NOT NULL
);

CREATE INDEX mail_dead_letters_failed_at ON mail_dead_letters (failed_at);

-- The SHA-256 of each one-time token; a newer token of a user and purpose replaces the older.
CREATE TABLE one_time_tokens (
    hash       bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email      text NOT NULL,                    -- the address it was sent to
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX one_time_tokens_user_purpose ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_expires_at ON one_time_tokens (expires_at);
