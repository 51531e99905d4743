-- Indexes for what runs on every request or scrape: the admin user search and its role and
-- status filters, and the count of active sessions. New indexes only: a release without
-- them runs beside this one. Building them locks writes to `users` and `sessions` (not
-- reads) for as long as the build takes; the trigram index is the long one (seconds at
-- 100,000 users).

-- The search index: pg_trgm's trigram operator class in a GIN index over the username, the
-- email (both stored lowercase) and the lowercase display name, so that `LIKE '%text%'` on
-- any of them (a search of 3 characters or more) reads the index. PostgreSQL's lower()
-- folds case by the database's LC_CTYPE: every script under a UTF-8 locale (C.UTF-8,
-- en_US.UTF-8), ASCII only under the C locale.
--
-- pg_trgm is an extension, installed once per database in one schema. When the database
-- has it already (a DBA may create it beforehand: `CREATE EXTENSION pg_trgm SCHEMA
-- public`, for a user that may not create extensions), the index names the operator class
-- in that schema, whatever this connection's search_path. Otherwise it is created here, in
-- the schema of our tables (the first of the search_path); trusted since PostgreSQL 13, it
-- needs the CREATE privilege on the database, not a superuser. Beware: dropping the schema
-- it lives in (DROP SCHEMA ... CASCADE) drops it, and with it the trigram indexes of every
-- other schema of the database that uses it. Several deployments in one database should
-- create it in a schema of its own first.
DO $$
DECLARE
    trgm name;
BEGIN
    SELECT n.nspname INTO trgm
        FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    IF trgm IS NULL THEN
        CREATE EXTENSION pg_trgm;
        SELECT n.nspname INTO trgm
            FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
            WHERE e.extname = 'pg_trgm';
    END IF;
    EXECUTE format(
        'CREATE INDEX users_search ON users USING gin ('
        'username %1$I.gin_trgm_ops, email %1$I.gin_trgm_ops, '
        'lower(display_name) %1$I.gin_trgm_ops)',
        trgm);
END
$$;

-- The role and status filters, alone or together, in username order from the keyset cursor
-- on: each page is an index range, however rare the role or status.
CREATE INDEX users_role_username ON users (role, username);
CREATE INDEX users_status_username ON users (status, username);
CREATE INDEX users_role_status_username ON users (role, status, username);

-- The active sessions, counted on every scrape of /metrics: an index-only range of the
-- sessions not revoked, by expiry.
CREATE INDEX sessions_active_expires_at ON sessions (expires_at) WHERE revoked_at IS NULL;
