-- Second factors: each user's authenticator-app (TOTP) factor, its recovery codes, the
-- browsers a user trusts to skip the second step, and the sign-in challenges between the
-- password step and the code step; in the style of 0001: uuid keys, timestamptz, bytea
-- hashes, text with CHECK constraints. Everything here is deleted with its user. New tables
-- only: a release without them runs beside this one.

-- At most one factor per user: pending while confirmed_at is NULL (it does not count at
-- sign-in), confirmed once the user entered a valid code. The secret is sealed by the core
-- (AEAD) before it gets here: opaque bytes.
CREATE TABLE totp_factors (
    user_id        uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret  bytea NOT NULL,
    created_at     timestamptz NOT NULL,
    confirmed_at   timestamptz,
    last_used_step bigint,         -- Unix seconds / 30 of the last accepted code
    CONSTRAINT totp_factors_step_when_confirmed
        CHECK (confirmed_at IS NOT NULL OR last_used_step IS NULL)
);

-- The purge deletes enrolments left pending too long.
CREATE INDEX totp_factors_pending_created_at ON totp_factors (created_at)
    WHERE confirmed_at IS NULL;

-- The SHA-256 of each unused recovery code. They belong to the factor: removing it (or the
-- user) deletes them.
CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES totp_factors (user_id) ON DELETE CASCADE,
    code_hash bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (user_id, code_hash)
);

-- Browsers trusted to skip the second step: the SHA-256 of the device token, per user, until
-- expires_at. One browser may be trusted by several users.
CREATE TABLE trusted_devices (
    device_hash bytea NOT NULL CHECK (octet_length(device_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT trusted_devices_pkey PRIMARY KEY (device_hash, user_id)
);

CREATE INDEX trusted_devices_user_id ON trusted_devices (user_id);
CREATE INDEX trusted_devices_expires_at ON trusted_devices (expires_at);

-- The SHA-256 of each sign-in challenge's secret: the state between a right password and
-- the second step. It dies when used or when it expires.
CREATE TABLE sign_in_challenges (
    hash        bytea PRIMARY KEY CHECK (octet_length(hash) = 32),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('second_factor', 'enrolment')),
    -- The device token presented at the password step.
    device_hash bytea CHECK (octet_length(device_hash) = 32),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX sign_in_challenges_user_id ON sign_in_challenges (user_id);
CREATE INDEX sign_in_challenges_expires_at ON sign_in_challenges (expires_at);
