-- Indexes for what runs on every request or scrape: the admin user search and its role and
-- status filters, and the count of active sessions. Nothing here rewrites a table; the
-- search index is filled from the users already there.

-- The display name in lowercase as the service lowercases text (Rust's `str::to_lowercase`),
-- which the search compares with: SQLite's own lower() folds ASCII letters only. The adapter
-- writes it with every display name, and the triggers below refuse a row whose two columns
-- disagree on being NULL. Display names of printable ASCII are lowercased here; the others
-- are left NULL, and the adapter lowercases them when it opens the file (it looks them up on
-- the partial index below, which stays empty afterwards).
ALTER TABLE users ADD COLUMN display_name_lower TEXT;
UPDATE users SET display_name_lower = lower(display_name)
    WHERE display_name NOT GLOB '*[^ -~]*';
CREATE INDEX users_display_name_unlowered ON users (id)
    WHERE display_name IS NOT NULL AND display_name_lower IS NULL;

CREATE TRIGGER users_display_name_lower_on_insert BEFORE INSERT ON users
    WHEN (new.display_name IS NULL) <> (new.display_name_lower IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'users.display_name_lower must be set with display_name');
END;

CREATE TRIGGER users_display_name_lower_on_update
    BEFORE UPDATE OF display_name, display_name_lower ON users
    WHEN (new.display_name IS NULL) <> (new.display_name_lower IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'users.display_name_lower must be set with display_name');
END;

-- The search index: an FTS5 table with the trigram tokenizer over the username, email and
-- lowercase display name, so that a search of 3 characters or more finds a substring of any
-- of them from the index. External content: the text lives in `users` only (the index keeps
-- trigrams and row ids, no copy), `columnsize = 0` drops the per-row sizes that only ranking
-- needs, and the tokenizer is case-sensitive because every column is lowercase already:
-- a match is then exactly a substring of the lowercase text.
--
-- The index is keyed by the rowid of `users`, which has no INTEGER PRIMARY KEY. VACUUM
-- keeps the rowids of a table that has an index (every `users` has several); the
-- integration tests check that a search still finds its users after a VACUUM.
--
-- The triggers keep the index in step with every INSERT, UPDATE and DELETE on `users`. Do
-- not use INSERT OR REPLACE on `users`: the rows it replaces leave no DELETE trigger behind
-- (recursive triggers are off) and would stay in the index. Should the index ever drift,
-- `INSERT INTO users_search (users_search) VALUES ('rebuild')` fills it again from `users`.
CREATE VIRTUAL TABLE users_search USING fts5(
    username, email, display_name_lower,
    content = 'users', columnsize = 0, tokenize = 'trigram case_sensitive 1'
);

INSERT INTO users_search (users_search) VALUES ('rebuild');

CREATE TRIGGER users_search_on_insert AFTER INSERT ON users
BEGIN
    INSERT INTO users_search (rowid, username, email, display_name_lower)
        VALUES (new.rowid, new.username, new.email, new.display_name_lower);
END;

CREATE TRIGGER users_search_on_delete AFTER DELETE ON users
BEGIN
    INSERT INTO users_search (users_search, rowid, username, email, display_name_lower)
        VALUES ('delete', old.rowid, old.username, old.email, old.display_name_lower);
END;

-- Only when a searched column changes: a sign-in or a role change leaves the index alone.
CREATE TRIGGER users_search_on_update
    AFTER UPDATE OF username, email, display_name_lower ON users
    WHEN old.username IS NOT new.username COLLATE BINARY
      OR old.email IS NOT new.email COLLATE BINARY
      OR old.display_name_lower IS NOT new.display_name_lower
BEGIN
    INSERT INTO users_search (users_search, rowid, username, email, display_name_lower)
        VALUES ('delete', old.rowid, old.username, old.email, old.display_name_lower);
    INSERT INTO users_search (rowid, username, email, display_name_lower)
        VALUES (new.rowid, new.username, new.email, new.display_name_lower);
END;

-- The role and status filters, alone or together, in username order from the keyset cursor
-- on: each page is an index range, however rare the role or status. The third also counts
-- the active admins for the last-admin guard.
CREATE INDEX users_role_username ON users (role, username);
CREATE INDEX users_status_username ON users (status, username);
CREATE INDEX users_role_status_username ON users (role, status, username);

-- The active sessions, counted on every scrape of /metrics: a range of this index (it
-- holds the sessions not revoked, by expiry), never the table. `revoked_at`, NULL in every
-- entry, is there so that the count reads the index alone: SQLite checks `revoked_at IS
-- NULL` on the index entry instead of the row.
CREATE INDEX sessions_active_expires_at ON sessions (expires_at, revoked_at)
    WHERE revoked_at IS NULL;
