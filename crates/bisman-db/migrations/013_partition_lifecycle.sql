-- 013: the state that makes `bisman partitions migrate` and `bisman normalize`
-- resumable, and the triggers that keep data in step while they run.
--
-- Nothing here changes the P3 contract of 012: its tables and functions are
-- used as they are. Every identifier reaching dynamic SQL comes from the
-- catalog or the registry and is quoted with format('%I').

-- ---------------------------------------------------------------------------
-- Table migrations (flat table -> partitioned twin, pgslice-style).

-- One row per managed table being (or having been) migrated: the checkpoint
-- of the fill, and what the swap renamed so that unswap can undo exactly it.
CREATE TABLE IF NOT EXISTS bisman_table_migrations (
    base_table     TEXT PRIMARY KEY REFERENCES bisman_partitioned_tables (base_table),
    state          TEXT NOT NULL CHECK (state IN ('filling', 'filled', 'swapped', 'unswapped', 'finished')),
    key_column     TEXT NOT NULL,
    -- The partitioned twin's own name (the registry's parent_table before the swap).
    shadow_table   TEXT NOT NULL,
    -- The flat table's name once it is retired by the swap.
    retired_table  TEXT NOT NULL,
    -- Fill checkpoint: the last key copied (as text), in key order.
    last_key       TEXT,
    rows_copied    BIGINT NOT NULL DEFAULT 0,
    batches        BIGINT NOT NULL DEFAULT 0,
    -- Renamed indexes, handed-over sequences, re-pointed foreign keys, moved triggers.
    swap_details   JSONB NOT NULL DEFAULT '{}'::jsonb,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    filled_at      TIMESTAMPTZ,
    verified_at    TIMESTAMPTZ,
    swapped_at     TIMESTAMPTZ,
    unswapped_at   TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE bisman_table_migrations IS
    'Checkpoint and swap record of `bisman partitions migrate` (one row per table).';

-- Keys written to the live table while a migration runs; replayed into the
-- other table (delete the key there, copy it again), which handles inserts,
-- updates and deletes alike (pgslice's append-only assumption, its #56).
CREATE TABLE IF NOT EXISTS bisman_table_changes (
    id          BIGSERIAL PRIMARY KEY,
    base_table  TEXT NOT NULL,
    key         TEXT NOT NULL,
    logged_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bisman_table_changes_key_idx ON bisman_table_changes (base_table, key);

-- Keys replayed since the last full checksum: the swap checks exactly these.
CREATE TABLE IF NOT EXISTS bisman_table_dirty_keys (
    base_table  TEXT NOT NULL,
    key         TEXT NOT NULL,
    marked      BIGINT NOT NULL,
    PRIMARY KEY (base_table, key)
);
CREATE SEQUENCE IF NOT EXISTS bisman_table_dirty_keys_marked_seq;

-- Row trigger on the live table: TG_ARGV[0] is the base table, TG_ARGV[1] the
-- key column (both from the registry and the catalog).
CREATE OR REPLACE FUNCTION bisman_log_table_change()
RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$
DECLARE
    new_key TEXT;
    old_key TEXT;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_key := to_jsonb(NEW) ->> TG_ARGV[1];
        INSERT INTO bisman_table_changes (base_table, key) VALUES (TG_ARGV[0], new_key);
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_key := to_jsonb(OLD) ->> TG_ARGV[1];
        IF old_key IS DISTINCT FROM new_key THEN
            INSERT INTO bisman_table_changes (base_table, key) VALUES (TG_ARGV[0], old_key);
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- TRUNCATE fires no row trigger, so it would slip past the change log.
CREATE OR REPLACE FUNCTION bisman_refuse_truncate()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of % is refused while `bisman partitions migrate %` is in progress',
        TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'object_in_use',
              HINT = 'finish it with `bisman partitions migrate ' || TG_ARGV[0] || ' --finish` first';
END $$;

-- ---------------------------------------------------------------------------
-- Online normalisation of "readBy" / reactions (spec §3).

-- Checkpoint of `bisman normalize reads|reactions`.
CREATE TABLE IF NOT EXISTS bisman_normalize_progress (
    kind              TEXT PRIMARY KEY CHECK (kind IN ('reads', 'reactions')),
    last_message_id   TEXT,
    messages_scanned  BIGINT NOT NULL DEFAULT 0,
    rows_inserted     BIGINT NOT NULL DEFAULT 0,
    malformed_entries BIGINT NOT NULL DEFAULT 0,
    batches           BIGINT NOT NULL DEFAULT 0,
    started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at       TIMESTAMPTZ
);

-- The valid read receipts of one "readBy" value, as migrate_readby_to_normalized
-- keeps them (a user once, earliest readAt, the message time when absent).
CREATE OR REPLACE FUNCTION bisman_valid_reads(p_col JSONB, p_created TIMESTAMP)
RETURNS TABLE (user_id INTEGER, read_at TIMESTAMP)
LANGUAGE sql STABLE
AS $$
    SELECT DISTINCT ON (u.user_id) u.user_id, u.read_at
    FROM (
        SELECT bisman_json_user_id(e.value->'userId') AS user_id,
               coalesce(bisman_try_timestamp(e.value->>'readAt'), p_created) AS read_at
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_col) = 'array' THEN p_col END) AS e(value)
        WHERE bisman_read_entry_problem(e.value) IS NULL
    ) u
    ORDER BY u.user_id, u.read_at
$$;

-- The valid reactions of one reactions value (either shape), as
-- migrate_reactions_to_normalized keeps them.
CREATE OR REPLACE FUNCTION bisman_valid_reactions(p_col JSONB, p_created TIMESTAMP)
RETURNS TABLE (user_id INTEGER, emoji TEXT, created_at TIMESTAMP)
LANGUAGE sql STABLE
AS $$
    SELECT DISTINCT ON (u.user_id, u.emoji) u.user_id, u.emoji, u.created_at
    FROM (
        SELECT bisman_json_user_id(e.entry->'userId') AS user_id, e.entry->>'emoji' AS emoji,
               coalesce(bisman_try_timestamp(e.entry->>'createdAt'), p_created) AS created_at
        FROM bisman_reaction_entries(p_col) e
        WHERE bisman_reaction_entry_problem(e.entry) IS NULL
    ) u
    ORDER BY u.user_id, u.emoji, u.created_at
$$;

-- Mirrors one message's "readBy" into message_reads: rows for entries that
-- are there, none for entries that are not, malformed entries quarantined.
CREATE OR REPLACE FUNCTION bisman_mirror_reads()
RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW."readBy" IS NOT DISTINCT FROM OLD."readBy" THEN
        RETURN NULL;
    END IF;
    DELETE FROM message_reads r
    WHERE r.message_id = NEW.id AND r.message_created_at = NEW."createdAt" AND r.tenant_id = NEW.tenant_id
      AND r.user_id NOT IN (SELECT v.user_id FROM bisman_valid_reads(NEW."readBy", NEW."createdAt") v);
    INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id, read_at)
    SELECT NEW.tenant_id, NEW.id, NEW."createdAt", NEW."threadId", v.user_id, v.read_at
    FROM bisman_valid_reads(NEW."readBy", NEW."createdAt") v
    ON CONFLICT (message_id, user_id, message_created_at, tenant_id) DO NOTHING;
    INSERT INTO normalization_quarantine (kind, message_id, entry_index, entry, entry_hash, reason)
    SELECT 'reads', NEW.id, b.idx, b.entry, md5(coalesce(b.entry::text, '')), b.problem
    FROM (
        SELECT (e.ord - 1)::integer AS idx, e.value AS entry, bisman_read_entry_problem(e.value) AS problem
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(NEW."readBy") = 'array' THEN NEW."readBy" END)
             WITH ORDINALITY AS e(value, ord)
        UNION ALL
        SELECT -1, NEW."readBy", '"readBy" is not a JSON array'
        WHERE NEW."readBy" IS NOT NULL AND jsonb_typeof(NEW."readBy") <> 'array'
    ) b
    WHERE b.problem IS NOT NULL
    ON CONFLICT (kind, message_id, entry_index, entry_hash) DO NOTHING;
    RETURN NULL;
END $$;

-- The same for reactions.
CREATE OR REPLACE FUNCTION bisman_mirror_reactions()
RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.reactions IS NOT DISTINCT FROM OLD.reactions THEN
        RETURN NULL;
    END IF;
    DELETE FROM message_reactions r
    WHERE r.message_id = NEW.id AND r.message_created_at = NEW."createdAt" AND r.tenant_id = NEW.tenant_id
      AND (r.user_id, r.emoji::text) NOT IN (
          SELECT v.user_id, v.emoji FROM bisman_valid_reactions(NEW.reactions, NEW."createdAt") v);
    INSERT INTO message_reactions (tenant_id, message_id, message_created_at, thread_id, user_id, emoji, created_at)
    SELECT NEW.tenant_id, NEW.id, NEW."createdAt", NEW."threadId", v.user_id, v.emoji, v.created_at
    FROM bisman_valid_reactions(NEW.reactions, NEW."createdAt") v
    ON CONFLICT (message_id, user_id, emoji, message_created_at, tenant_id) DO NOTHING;
    INSERT INTO normalization_quarantine (kind, message_id, entry_index, entry, entry_hash, reason)
    SELECT 'reactions', NEW.id, b.idx, b.entry, md5(coalesce(b.entry::text, '')), b.problem
    FROM (
        SELECT e.idx, e.entry, bisman_reaction_entry_problem(e.entry) AS problem
        FROM bisman_reaction_entries(NEW.reactions) e
        UNION ALL
        SELECT -1, NEW.reactions, 'reactions is neither a JSON array nor an object'
        WHERE NEW.reactions IS NOT NULL AND jsonb_typeof(NEW.reactions) NOT IN ('array', 'object')
    ) b
    WHERE b.problem IS NOT NULL
    ON CONFLICT (kind, message_id, entry_index, entry_hash) DO NOTHING;
    RETURN NULL;
END $$;

-- Differences between the JSONB columns and the tables for one batch of
-- messages in id order (what `bisman normalize verify` walks).
CREATE OR REPLACE FUNCTION bisman_normalize_differences(p_kind TEXT, p_after_id TEXT, p_limit INTEGER)
RETURNS TABLE (message_id TEXT, detail TEXT, problem TEXT, last_message_id TEXT, messages_scanned BIGINT)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    IF p_kind NOT IN ('reads', 'reactions') THEN
        RAISE EXCEPTION 'kind must be reads or reactions, got %', coalesce(p_kind, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'batch size must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH batch AS (
        SELECT m.id, m.tenant_id, m."createdAt" AS created_at,
               CASE WHEN p_kind = 'reads' THEN m."readBy" ELSE m.reactions END AS col
        FROM thread_messages m
        WHERE (p_after_id IS NULL OR m.id > p_after_id)
        ORDER BY m.id
        LIMIT p_limit
    ), expected AS (
        SELECT b.id, v.user_id::text AS entry FROM batch b
        CROSS JOIN LATERAL bisman_valid_reads(b.col, b.created_at) v WHERE p_kind = 'reads'
        UNION ALL
        SELECT b.id, v.user_id::text || ' ' || v.emoji FROM batch b
        CROSS JOIN LATERAL bisman_valid_reactions(b.col, b.created_at) v WHERE p_kind = 'reactions'
    ), actual AS (
        SELECT r.message_id AS id, r.user_id::text AS entry FROM batch b
        JOIN message_reads r ON r.message_id = b.id AND r.message_created_at = b.created_at AND r.tenant_id = b.tenant_id
        WHERE p_kind = 'reads'
        UNION ALL
        SELECT r.message_id, r.user_id::text || ' ' || r.emoji FROM batch b
        JOIN message_reactions r ON r.message_id = b.id AND r.message_created_at = b.created_at AND r.tenant_id = b.tenant_id
        WHERE p_kind = 'reactions'
    ), diff AS (
        SELECT e.id, e.entry, 'in JSONB, missing from the table' AS problem
        FROM (SELECT * FROM expected EXCEPT SELECT * FROM actual) e
        UNION ALL
        SELECT a.id, a.entry, 'in the table, not in JSONB'
        FROM (SELECT * FROM actual EXCEPT SELECT * FROM expected) a
    ), meta AS (
        SELECT max(b.id) AS last_id, count(*) AS n FROM batch b
    )
    SELECT d.id, d.entry, d.problem, meta.last_id, meta.n FROM diff d, meta
    UNION ALL
    SELECT NULL, NULL, NULL, meta.last_id, meta.n FROM meta;
END $$;
