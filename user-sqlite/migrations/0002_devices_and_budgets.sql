-- Device tokens (OWASP's "device cookie"): the SHA-256 of each token given to a client at a
-- successful sign-in. Their holders' guesses count on the device's own budget.
CREATE TABLE devices (
    hash       BLOB PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX devices_user_id ON devices (user_id);
CREATE INDEX devices_expires_at ON devices (expires_at);

-- Purges of old guess counts and ended sessions use their time columns.
CREATE INDEX login_failures_last_failed_at ON login_failures (last_failed_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
