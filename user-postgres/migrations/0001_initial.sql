-- Users, sessions with their hashed secrets, the guess budgets and device tokens.
--
-- Written to move to other PostgreSQL-compatible databases: UUID keys, timestamptz
-- (microseconds, UTC), bytea for hashes, text with CHECK constraints for enumerations, named
-- constraints, and no function that only PostgreSQL has. We do not claim CockroachDB or
-- YugabyteDB yet (see the README): each would need its own CI run and a check of sqlx's
-- advisory-lock migrations, the COLLATE "C" comparisons below, and the FOR NO KEY UPDATE of
-- the last-admin guard.

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    -- Usernames and emails arrive lowercase (the domain types normalize them), so the unique
    -- constraints below make them unique case-insensitively. COLLATE "C" compares bytes, as
    -- SQLite does: `ORDER BY username` and keyset paging (`username > $after`) give the same
    -- order whatever the database's locale.
    username          text COLLATE "C" NOT NULL,
    email             text COLLATE "C" NOT NULL,
    display_name      text,
    password_hash     text NOT NULL,                          -- PHC string or legacy bcrypt
    role              text NOT NULL CHECK (role IN ('user', 'admin')),
    status            text NOT NULL CHECK (status IN ('active', 'disabled')),
    email_verified_at timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    -- The adapter maps a unique violation to the field by these names.
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- The last-admin guard locks and counts the active admins on every demotion, disabling and
-- deletion: this keeps that a short index scan however many users there are.
CREATE INDEX users_active_admins ON users (id) WHERE role = 'admin' AND status = 'active';

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('browser', 'token')),
    user_agent   text,
    ip           text,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- The SHA-256 of each session secret: the browser cookie, or every refresh token issued.
-- A refresh token is spent (spent_at set) when rotated; presenting it again is reuse.
CREATE TABLE session_secrets (
    hash       bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spent_at   timestamptz
);

CREATE INDEX session_secrets_session_id ON session_secrets (session_id);

-- Consecutive failed sign-ins per budget: the SHA-256 of its throttle key.
CREATE TABLE login_failures (
    key            bytea PRIMARY KEY CHECK (octet_length(key) = 32),
    count          bigint NOT NULL CHECK (count BETWEEN 0 AND 4294967295),  -- a u32
    last_failed_at timestamptz NOT NULL
);

CREATE INDEX login_failures_last_failed_at ON login_failures (last_failed_at);

-- Device tokens (OWASP's "device cookie"): the SHA-256 of each token given to a client at a
-- successful sign-in. Their holders' guesses count on the device's own budget.
CREATE TABLE devices (
    hash       bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX devices_user_id ON devices (user_id);
CREATE INDEX devices_expires_at ON devices (expires_at);
