-- Users, sessions with their hashed secrets, and failed-login counters.
-- Times are INTEGER nanoseconds since the Unix epoch (UTC), so comparisons are exact.

CREATE TABLE users (
    id                TEXT PRIMARY KEY NOT NULL,             -- UUID, hyphenated
    username          TEXT NOT NULL COLLATE NOCASE,          -- stored lowercase
    email             TEXT NOT NULL COLLATE NOCASE,          -- stored lowercase
    display_name      TEXT,
    password_hash     TEXT NOT NULL,                         -- PHC string or legacy bcrypt
    role              TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    status            TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    email_verified_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('browser', 'token')),
    user_agent   TEXT,
    ip           TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);

-- The SHA-256 of each session secret: the browser cookie, or every refresh token issued.
-- A refresh token is spent (spent_at set) when rotated; presenting it again is reuse.
CREATE TABLE session_secrets (
    hash       BLOB PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spent_at   INTEGER
) STRICT;

CREATE INDEX session_secrets_session_id ON session_secrets (session_id);

-- Consecutive failed logins per SHA-256 of the normalized identifier.
CREATE TABLE login_failures (
    key            BLOB PRIMARY KEY NOT NULL,
    count          INTEGER NOT NULL,
    last_failed_at INTEGER NOT NULL
) STRICT;
