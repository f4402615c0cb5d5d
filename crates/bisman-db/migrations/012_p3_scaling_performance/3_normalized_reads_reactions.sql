-- P3 step 3: read receipts and reactions as tables (spec §3).
--
-- The spec declares `message_id TEXT REFERENCES thread_messages(id)`. That
-- cannot survive partitioning: a table partitioned by "createdAt" can only
-- have keys that contain "createdAt", so a foreign key into it must be
-- composite. These tables therefore carry the message's timestamp (and tenant)
-- and reference (id, "createdAt", tenant_id), and they are partitioned by the
-- same month as the messages, so that retention drops a month of messages
-- together with its receipts and reactions. While the flat thread_messages is
-- the live table they reference it; `bisman partitions migrate
-- thread_messages` re-points them at the partitioned table when it swaps.
--
-- An ERP that already ran the spec's original DDL has unpartitioned
-- message_reads / message_reactions: they are renamed to *_unpartitioned,
-- kept (never dropped), and their rows copied into the new tables.

DO $$
DECLARE
    t TEXT;
    idx TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['message_reads', 'message_reactions'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(t) AND relkind = 'r');
        -- Its indexes (and so its key constraints) move out of the way too.
        FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                   WHERE i.indrelid = to_regclass(t) AND c.relname LIKE t || '\_%' LOOP
            EXECUTE format('ALTER INDEX %I RENAME TO %I', idx,
                           left(t || '_unpartitioned' || substr(idx, length(t) + 1), 63));
        END LOOP;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_unpartitioned');
        IF to_regclass(t || '_id_seq') IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %I RENAME TO %I', t || '_id_seq', t || '_unpartitioned_id_seq');
        END IF;
    END LOOP;
END $$;

CREATE TABLE IF NOT EXISTS message_reads (
    id                  BIGSERIAL,
    message_id          TEXT NOT NULL,
    user_id             INTEGER NOT NULL,
    read_at             TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    tenant_id           UUID NOT NULL,
    thread_id           TEXT NOT NULL,
    message_created_at  TIMESTAMP(3) NOT NULL,
    CONSTRAINT message_reads_pkey PRIMARY KEY (id, message_created_at, tenant_id),
    -- The spec's UNIQUE(message_id, user_id), widened by the partition key.
    CONSTRAINT message_reads_message_user_key UNIQUE (message_id, user_id, message_created_at, tenant_id),
    CONSTRAINT message_reads_message_fkey FOREIGN KEY (message_id, message_created_at, tenant_id)
        REFERENCES thread_messages (id, "createdAt", tenant_id) ON DELETE CASCADE
) PARTITION BY RANGE (message_created_at);
-- "What has U read in thread T" and unread counts.
CREATE INDEX IF NOT EXISTS message_reads_user_thread_idx
    ON message_reads (user_id, thread_id, message_created_at DESC);

CREATE TABLE IF NOT EXISTS message_reactions (
    id                  BIGSERIAL,
    message_id          TEXT NOT NULL,
    user_id             INTEGER NOT NULL,
    emoji               VARCHAR(20) NOT NULL CHECK (length(emoji) > 0),
    created_at          TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    tenant_id           UUID NOT NULL,
    thread_id           TEXT NOT NULL,
    message_created_at  TIMESTAMP(3) NOT NULL,
    CONSTRAINT message_reactions_pkey PRIMARY KEY (id, message_created_at, tenant_id),
    -- The spec's UNIQUE(message_id, user_id, emoji), widened by the partition key.
    CONSTRAINT message_reactions_message_user_emoji_key
        UNIQUE (message_id, user_id, emoji, message_created_at, tenant_id),
    CONSTRAINT message_reactions_message_fkey FOREIGN KEY (message_id, message_created_at, tenant_id)
        REFERENCES thread_messages (id, "createdAt", tenant_id) ON DELETE CASCADE
) PARTITION BY RANGE (message_created_at);
CREATE INDEX IF NOT EXISTS message_reactions_user_idx ON message_reactions (user_id, message_created_at DESC);

INSERT INTO bisman_partitioned_tables (base_table, parent_table, partition_column, follows, past_months, premake_months)
VALUES ('message_reads', 'message_reads', 'message_created_at', 'thread_messages', 3, 11),
       ('message_reactions', 'message_reactions', 'message_created_at', 'thread_messages', 3, 11)
ON CONFLICT (base_table) DO NOTHING;

-- Entries that could not be normalised, kept with their source and reason.
-- Nothing is removed from the JSONB columns, so nothing is ever lost.
CREATE TABLE IF NOT EXISTS normalization_quarantine (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('reads', 'reactions')),
    message_id   TEXT NOT NULL,
    -- Position of the entry in the JSONB array; -1 when the whole column is unusable.
    entry_index  INTEGER NOT NULL,
    entry        JSONB,
    entry_hash   TEXT NOT NULL,
    reason       TEXT NOT NULL,
    found_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, message_id, entry_index, entry_hash)
);

-- ---------------------------------------------------------------------------
-- Parsing helpers.

-- A timestamp from JSON text, or NULL when it is not one. Plain SQL (no
-- exception block, which would cost a subtransaction per entry): a strict
-- ISO-8601 pattern and a days-in-month check decide, so the cast never
-- fails. Values without an offset are read in the session's time zone; the
-- normalisation functions run in UTC. Whitespace and digits are spelled out
-- as ASCII: `\s` and `\d` follow the database's locale (in C.UTF-8 `\s`
-- matches U+2003), while ltrim, the integer casts and the date parser only
-- skip ASCII whitespace, so a leading tab or em space made the casts raise
-- (the Rust twin, crates/bisman-jsonb, and its differential test pin this).
-- Offsets stop at ±15:59 and a bare date takes no `-hh` offset without a
-- space: PostgreSQL's parser refuses both.
CREATE OR REPLACE FUNCTION bisman_try_timestamp(p TEXT)
RETURNS TIMESTAMP LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN p ~ '^[ \t\n\r\f\v]*[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?)?[ \t\n\r\f\v]*(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)?[ \t\n\r\f\v]*$'
              AND p !~ '^[ \t\n\r\f\v]*[0-9]{4}-[0-9]{2}-[0-9]{2}-'
        THEN CASE WHEN substr(ltrim(p, E' \t\n\r\f\x0b'), 9, 2)::int
                       <= extract(day from make_date(substr(ltrim(p, E' \t\n\r\f\x0b'), 1, 4)::int,
                                                     substr(ltrim(p, E' \t\n\r\f\x0b'), 6, 2)::int, 1)
                                        + interval '1 month - 1 day')
                  THEN p::timestamptz AT TIME ZONE 'UTC' END
    END
$$;

-- A user id from a JSON value: a positive 32-bit integer given as a number
-- (123 or 123.0) or a numeric string; NULL otherwise.
CREATE OR REPLACE FUNCTION bisman_json_user_id(p JSONB)
RETURNS INTEGER LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE jsonb_typeof(p)
        WHEN 'number' THEN CASE WHEN p::numeric = trunc(p::numeric) AND p::numeric BETWEEN 1 AND 2147483647
                                THEN p::numeric::integer END
        WHEN 'string' THEN CASE WHEN (p #>> '{}') ~ '^[ \t\n\r\f\v]*[0-9]{1,10}[ \t\n\r\f\v]*$'
                                     AND (p #>> '{}')::numeric BETWEEN 1 AND 2147483647
                                THEN (p #>> '{}')::numeric::integer END
    END
$$;

-- Why a "readBy" entry cannot be normalised, or NULL when it can.
CREATE OR REPLACE FUNCTION bisman_read_entry_problem(e JSONB)
RETURNS TEXT LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(e) IS DISTINCT FROM 'object' THEN 'entry is not a JSON object'
        WHEN NOT e ? 'userId' THEN 'missing userId'
        WHEN jsonb_typeof(e->'userId') = 'null' THEN 'userId is null'
        WHEN bisman_json_user_id(e->'userId') IS NULL THEN 'userId is not a positive 32-bit integer'
        WHEN jsonb_typeof(e->'readAt') NOT IN ('null')
             AND bisman_try_timestamp(e->>'readAt') IS NULL THEN 'readAt is not a timestamp'
    END
$$;

-- Why a reaction entry cannot be normalised, or NULL when it can.
CREATE OR REPLACE FUNCTION bisman_reaction_entry_problem(e JSONB)
RETURNS TEXT LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(e) IS DISTINCT FROM 'object' THEN 'entry is not a JSON object'
        WHEN e ? 'users' THEN 'users of a reaction are not a JSON array'
        WHEN NOT e ? 'userId' THEN 'missing userId'
        WHEN jsonb_typeof(e->'userId') = 'null' THEN 'userId is null'
        WHEN bisman_json_user_id(e->'userId') IS NULL THEN 'userId is not a positive 32-bit integer'
        WHEN jsonb_typeof(e->'emoji') IS DISTINCT FROM 'string' THEN 'emoji is missing or not a string'
        WHEN length(e->>'emoji') NOT BETWEEN 1 AND 20 THEN 'emoji must be 1 to 20 characters'
        WHEN jsonb_typeof(e->'createdAt') NOT IN ('null')
             AND bisman_try_timestamp(e->>'createdAt') IS NULL THEN 'createdAt is not a timestamp'
    END
$$;

-- The entries of a reactions column, in either shape the ERP has written:
-- an array [{"userId": 1, "emoji": "👍"}, ...] or a map {"👍": [1, 2], ...}.
CREATE OR REPLACE FUNCTION bisman_reaction_entries(p JSONB)
RETURNS TABLE (idx INTEGER, entry JSONB) LANGUAGE sql IMMUTABLE
AS $$
    SELECT (a.ord - 1)::integer, a.value
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p) = 'array' THEN p END) WITH ORDINALITY AS a(value, ord)
    UNION ALL
    SELECT (row_number() OVER (ORDER BY o.ord, u.ord) - 1)::integer,
           CASE WHEN jsonb_typeof(o.value) = 'array'
                THEN jsonb_build_object('userId', u.value, 'emoji', o.key)
                ELSE jsonb_build_object('emoji', o.key, 'users', o.value) END
    FROM jsonb_each(CASE WHEN jsonb_typeof(p) = 'object' THEN p END) WITH ORDINALITY AS o(key, value, ord)
    CROSS JOIN LATERAL (
        SELECT x.value, x.ord FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(o.value) = 'array' THEN o.value END) WITH ORDINALITY AS x(value, ord)
        UNION ALL
        SELECT NULL::jsonb, 0 WHERE jsonb_typeof(o.value) IS DISTINCT FROM 'array'
    ) AS u
$$;

-- ---------------------------------------------------------------------------
-- Spec §3: `SELECT * FROM migrate_readby_to_normalized();`
--
-- Copies "readBy" entries of thread_messages into message_reads. Idempotent
-- (a second run inserts nothing). Valid entries land once (duplicates of a
-- user in one message keep the earliest readAt); malformed ones are recorded
-- in normalization_quarantine with the reason, and the run goes on. The JSONB
-- column is never modified. With p_after_id / p_limit it handles one batch of
-- messages in id order (what `bisman normalize reads` drives); without them,
-- the whole table.
CREATE OR REPLACE FUNCTION migrate_readby_to_normalized(p_after_id TEXT DEFAULT NULL, p_limit INTEGER DEFAULT NULL)
RETURNS TABLE (messages_scanned BIGINT, entries_found BIGINT, rows_inserted BIGINT,
               already_present BIGINT, malformed_entries BIGINT, last_message_id TEXT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    IF p_limit IS NOT NULL AND p_limit < 1 THEN
        RAISE EXCEPTION 'batch size must be positive, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH batch AS (
        SELECT m.id, m.tenant_id, m."threadId" AS thread_id, m."createdAt" AS created_at, m."readBy" AS col
        FROM thread_messages m
        WHERE (p_after_id IS NULL OR m.id > p_after_id)
        ORDER BY m.id
        LIMIT p_limit
    ), entries AS (
        SELECT b.*, (e.ord - 1)::integer AS idx, e.value AS entry,
               bisman_read_entry_problem(e.value) AS problem,
               bisman_json_user_id(e.value->'userId') AS user_id,
               bisman_try_timestamp(e.value->>'readAt') AS read_at
        FROM batch b
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(b.col) = 'array' THEN b.col END)
             WITH ORDINALITY AS e(value, ord)
    ), valid AS (
        SELECT DISTINCT ON (en.id, en.user_id)
               en.tenant_id, en.id, en.created_at, en.thread_id, en.user_id,
               coalesce(en.read_at, en.created_at) AS read_at
        FROM entries en WHERE en.problem IS NULL
        ORDER BY en.id, en.user_id, coalesce(en.read_at, en.created_at)
    ), ins AS (
        INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id, read_at)
        SELECT v.tenant_id, v.id, v.created_at, v.thread_id, v.user_id, v.read_at FROM valid v
        ON CONFLICT (message_id, user_id, message_created_at, tenant_id) DO NOTHING
        RETURNING 1
    ), bad AS (
        SELECT en.id, en.idx, en.entry, en.problem FROM entries en WHERE en.problem IS NOT NULL
        UNION ALL
        SELECT b.id, -1, b.col, '"readBy" is not a JSON array' FROM batch b
        WHERE b.col IS NOT NULL AND jsonb_typeof(b.col) <> 'array'
    ), q AS (
        INSERT INTO normalization_quarantine (kind, message_id, entry_index, entry, entry_hash, reason)
        SELECT 'reads', bad.id, bad.idx, bad.entry, md5(coalesce(bad.entry::text, '')), bad.problem FROM bad
        ON CONFLICT (kind, message_id, entry_index, entry_hash) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch),
           (SELECT count(*) FROM entries),
           (SELECT count(*) FROM ins),
           (SELECT count(*) FROM valid) - (SELECT count(*) FROM ins),
           (SELECT count(*) FROM bad),
           (SELECT max(b.id) FROM batch b);
END $$;

-- Spec §3: `SELECT * FROM migrate_reactions_to_normalized();` The same
-- contract as migrate_readby_to_normalized, for the reactions column.
CREATE OR REPLACE FUNCTION migrate_reactions_to_normalized(p_after_id TEXT DEFAULT NULL, p_limit INTEGER DEFAULT NULL)
RETURNS TABLE (messages_scanned BIGINT, entries_found BIGINT, rows_inserted BIGINT,
               already_present BIGINT, malformed_entries BIGINT, last_message_id TEXT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    IF p_limit IS NOT NULL AND p_limit < 1 THEN
        RAISE EXCEPTION 'batch size must be positive, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH batch AS (
        SELECT m.id, m.tenant_id, m."threadId" AS thread_id, m."createdAt" AS created_at, m.reactions AS col
        FROM thread_messages m
        WHERE (p_after_id IS NULL OR m.id > p_after_id)
        ORDER BY m.id
        LIMIT p_limit
    ), entries AS (
        SELECT b.*, e.idx, e.entry, bisman_reaction_entry_problem(e.entry) AS problem,
               bisman_json_user_id(e.entry->'userId') AS user_id, e.entry->>'emoji' AS emoji,
               bisman_try_timestamp(e.entry->>'createdAt') AS reacted_at
        FROM batch b CROSS JOIN LATERAL bisman_reaction_entries(b.col) AS e
    ), valid AS (
        SELECT DISTINCT ON (en.id, en.user_id, en.emoji)
               en.tenant_id, en.id, en.created_at, en.thread_id, en.user_id, en.emoji,
               coalesce(en.reacted_at, en.created_at) AS reacted_at
        FROM entries en WHERE en.problem IS NULL
        ORDER BY en.id, en.user_id, en.emoji, coalesce(en.reacted_at, en.created_at)
    ), ins AS (
        INSERT INTO message_reactions (tenant_id, message_id, message_created_at, thread_id, user_id, emoji, created_at)
        SELECT v.tenant_id, v.id, v.created_at, v.thread_id, v.user_id, v.emoji, v.reacted_at FROM valid v
        ON CONFLICT (message_id, user_id, emoji, message_created_at, tenant_id) DO NOTHING
        RETURNING 1
    ), bad AS (
        SELECT en.id, en.idx, en.entry, en.problem FROM entries en WHERE en.problem IS NOT NULL
        UNION ALL
        SELECT b.id, -1, b.col, 'reactions is neither a JSON array nor an object' FROM batch b
        WHERE b.col IS NOT NULL AND jsonb_typeof(b.col) NOT IN ('array', 'object')
    ), q AS (
        INSERT INTO normalization_quarantine (kind, message_id, entry_index, entry, entry_hash, reason)
        SELECT 'reactions', bad.id, bad.idx, bad.entry, md5(coalesce(bad.entry::text, '')), bad.problem FROM bad
        ON CONFLICT (kind, message_id, entry_index, entry_hash) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch),
           (SELECT count(*) FROM entries),
           (SELECT count(*) FROM ins),
           (SELECT count(*) FROM valid) - (SELECT count(*) FROM ins),
           (SELECT count(*) FROM bad),
           (SELECT max(b.id) FROM batch b);
END $$;
