-- P3 step 2: monthly partitioning.
--
-- The spec's partitioned twins of the three high-volume tables, the registry
-- that says which tables are managed, and the functions that premake and
-- retire months. Every identifier that reaches dynamic SQL comes from the
-- registry (never from the caller) and is quoted with format('%I').
--
-- Timestamps: thread_messages."createdAt" is a naive TIMESTAMP holding UTC
-- (the ERP's Prisma convention); the other partition keys are TIMESTAMPTZ.
-- The functions run with TimeZone = 'UTC' so that month boundaries are UTC
-- months whatever the caller's session time zone is, for both column types.

CREATE TABLE IF NOT EXISTS bisman_partitioned_tables (
    base_table        TEXT PRIMARY KEY CHECK (base_table ~ '^[a-z_][a-z0-9_]{0,40}$'),
    parent_table      TEXT NOT NULL UNIQUE CHECK (parent_table ~ '^[a-z_][a-z0-9_]{0,50}$'),
    partition_column  TEXT NOT NULL CHECK (length(partition_column) BETWEEN 1 AND 63),
    -- Co-partitioned children (message_reads, message_reactions) name the
    -- table whose months they follow; they are premade and retired with it.
    follows           TEXT REFERENCES bisman_partitioned_tables(base_table),
    -- Months kept before and made ahead of the current UTC month.
    past_months       INTEGER NOT NULL DEFAULT 3 CHECK (past_months BETWEEN 0 AND 120),
    premake_months    INTEGER NOT NULL DEFAULT 11 CHECK (premake_months BETWEEN 0 AND 120),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE bisman_partitioned_tables IS
    'Tables whose monthly partitions bisman manages (premake, archive, retention).';

-- Archive ledger: one row per exported partition. drop_old_partitions() only
-- drops a partition with a verified archive whose row count still matches.
CREATE TABLE IF NOT EXISTS bisman_partition_archives (
    id              BIGSERIAL PRIMARY KEY,
    base_table      TEXT NOT NULL,
    partition_name  TEXT NOT NULL,
    range_start     TIMESTAMP NOT NULL,
    range_end       TIMESTAMP NOT NULL,
    row_count       BIGINT NOT NULL CHECK (row_count >= 0),
    file_name       TEXT NOT NULL,
    file_sha256     TEXT NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    format          TEXT NOT NULL,
    manifest        JSONB NOT NULL DEFAULT '{}'::jsonb,
    archived_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    verified_at     TIMESTAMPTZ,
    dropped_at      TIMESTAMPTZ,
    restored_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS bisman_partition_archives_partition_idx
    ON bisman_partition_archives (partition_name, archived_at DESC);

-- ---------------------------------------------------------------------------
-- The partitioned twins. LIKE copies the live table's columns in order, so the
-- spec's `INSERT INTO thread_messages_partitioned SELECT * FROM thread_messages`
-- works as written, also on an ERP whose tables carry extra columns. Their
-- primary keys must contain the partition key; tenant_id is in every key so
-- that a move to a distributed PostgreSQL (Citus, distributed by tenant) needs
-- no key change.
CREATE TABLE IF NOT EXISTS thread_messages_partitioned (
    LIKE thread_messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
    CONSTRAINT thread_messages_partitioned_pkey PRIMARY KEY (id, "createdAt", tenant_id)
) PARTITION BY RANGE ("createdAt");
CREATE INDEX IF NOT EXISTS thread_messages_partitioned_thread_created_idx
    ON thread_messages_partitioned ("threadId", "createdAt" DESC);
CREATE INDEX IF NOT EXISTS thread_messages_partitioned_thread_not_deleted_idx
    ON thread_messages_partitioned ("threadId", "createdAt" DESC) WHERE "isDeleted" = false;
CREATE INDEX IF NOT EXISTS thread_messages_partitioned_sender_created_idx
    ON thread_messages_partitioned ("senderId", "createdAt" DESC);
CREATE INDEX IF NOT EXISTS thread_messages_partitioned_reactions_gin
    ON thread_messages_partitioned USING GIN (reactions);
CREATE INDEX IF NOT EXISTS thread_messages_partitioned_readby_gin
    ON thread_messages_partitioned USING GIN ("readBy");

-- The id sequence is shared with the live table, so ids never collide when
-- rows move between them (the swap hands the sequence over).
CREATE TABLE IF NOT EXISTS client_usage_events_partitioned (
    LIKE client_usage_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
    CONSTRAINT client_usage_events_partitioned_pkey PRIMARY KEY (id, occurred_at, tenant_id)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX IF NOT EXISTS client_usage_events_partitioned_composite_idx
    ON client_usage_events_partitioned (tenant_id, event_type, user_id, occurred_at DESC);
CREATE INDEX IF NOT EXISTS client_usage_events_partitioned_type_date_idx
    ON client_usage_events_partitioned (event_type, occurred_at DESC);
CREATE INDEX IF NOT EXISTS client_usage_events_partitioned_user_date_idx
    ON client_usage_events_partitioned (user_id, occurred_at DESC);

-- audit_logs.tenant_id is nullable (platform-level events), so its key is
-- (id, created_at); the tenant is indexed instead.
CREATE TABLE IF NOT EXISTS audit_logs_partitioned (
    LIKE audit_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE,
    CONSTRAINT audit_logs_partitioned_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX IF NOT EXISTS audit_logs_partitioned_tenant_created_idx
    ON audit_logs_partitioned (tenant_id, created_at DESC);
CREATE INDEX IF NOT EXISTS audit_logs_partitioned_entity_idx
    ON audit_logs_partitioned (entity_type, entity_id);

INSERT INTO bisman_partitioned_tables (base_table, parent_table, partition_column, past_months, premake_months)
VALUES ('thread_messages', 'thread_messages_partitioned', 'createdAt', 3, 11),
       ('client_usage_events', 'client_usage_events_partitioned', 'occurred_at', 3, 11),
       ('audit_logs', 'audit_logs_partitioned', 'created_at', 3, 2)
ON CONFLICT (base_table) DO NOTHING;

-- ---------------------------------------------------------------------------
-- Helpers.

-- The first day of the UTC month containing p_at.
CREATE OR REPLACE FUNCTION bisman_utc_month(p_at TIMESTAMPTZ DEFAULT now())
RETURNS DATE LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT date_trunc('month', p_at AT TIME ZONE 'UTC')::date $$;

-- {table}_pYYYY_MM, the spec's partition naming convention.
CREATE OR REPLACE FUNCTION bisman_partition_name(p_base TEXT, p_month DATE)
RETURNS TEXT LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT p_base || '_p' || to_char(p_month, 'YYYY_MM') $$;

-- The registry row of a managed table given by its base name; a clear error
-- (and nothing else) for anything that is not one.
CREATE OR REPLACE FUNCTION bisman_managed_table(p_table TEXT, p_allow_follower BOOLEAN DEFAULT false)
RETURNS bisman_partitioned_tables
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT
AS $$
DECLARE
    cfg bisman_partitioned_tables;
BEGIN
    SELECT * INTO cfg FROM bisman_partitioned_tables WHERE base_table = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown partitioned table %', coalesce(quote_literal(p_table), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'managed tables: ' || coalesce((
                      SELECT string_agg(base_table, ', ' ORDER BY base_table)
                      FROM bisman_partitioned_tables WHERE follows IS NULL), 'none');
    END IF;
    IF cfg.follows IS NOT NULL AND NOT p_allow_follower THEN
        RAISE EXCEPTION '% is partitioned together with %', quote_literal(p_table), quote_literal(cfg.follows)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('call it with %L: its months are made and retired together', cfg.follows);
    END IF;
    RETURN cfg;
END $$;

-- Partitions of a managed table with their bounds as naive UTC timestamps.
CREATE OR REPLACE FUNCTION bisman_partitions(p_table TEXT)
RETURNS TABLE (partition_name TEXT, is_default BOOLEAN, range_start TIMESTAMP, range_end TIMESTAMP)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    cfg bisman_partitioned_tables := bisman_managed_table(p_table, true);
BEGIN
    RETURN QUERY
    SELECT c.relname::text,
           b.expr = 'DEFAULT',
           (regexp_match(b.expr, 'FROM \(''([^'']+)''\)'))[1]::timestamp,
           (regexp_match(b.expr, 'TO \(''([^'']+)''\)'))[1]::timestamp
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) b
    WHERE i.inhparent = to_regclass(quote_ident(cfg.parent_table))
    ORDER BY 3 NULLS FIRST, 1;
END $$;

-- Creates one month of one managed table, detached, moving into it any rows
-- of that month that sit in the default partition. The caller attaches it.
-- Returns the number of rows moved, or NULL when the month already exists.
CREATE OR REPLACE FUNCTION bisman_prepare_month(p_cfg bisman_partitioned_tables, p_month DATE)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    part TEXT := bisman_partition_name(p_cfg.base_table, p_month);
    parent REGCLASS := to_regclass(quote_ident(p_cfg.parent_table));
    existing REGCLASS := to_regclass(quote_ident(part));
    default_part REGCLASS;
    moved BIGINT := 0;
BEGIN
    IF parent IS NULL THEN
        RAISE EXCEPTION 'partitioned table % of % does not exist', p_cfg.parent_table, p_cfg.base_table
            USING ERRCODE = 'undefined_table';
    END IF;
    IF existing IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = existing AND inhparent = parent) THEN
            RAISE EXCEPTION 'table % exists but is not a partition of %', part, p_cfg.parent_table
                USING ERRCODE = 'duplicate_table',
                      HINT = 'a detached or restored month; attach it or rename it before premaking';
        END IF;
        RETURN NULL;
    END IF;

    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                   part, p_cfg.parent_table);

    SELECT pt.partdefid::regclass INTO default_part
    FROM pg_partitioned_table pt WHERE pt.partrelid = parent AND pt.partdefid <> 0;
    IF default_part IS NOT NULL THEN
        -- Hold writers off the default partition until this transaction ends:
        -- a row inserted there between a child's move and its parent's (a
        -- receipt for a message still in the default partition) would
        -- otherwise be deleted by the parent's cascade. Readers carry on.
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', default_part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved',
            default_part, p_cfg.partition_column, p_month::timestamp,
            p_cfg.partition_column, (p_month + interval '1 month')::timestamp, part);
        GET DIAGNOSTICS moved = ROW_COUNT;
    END IF;
    RETURN moved;
END $$;

CREATE OR REPLACE FUNCTION bisman_attach_month(p_cfg bisman_partitioned_tables, p_month DATE)
RETURNS VOID
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    -- ATTACH takes a weaker lock on the parent than CREATE ... PARTITION OF.
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   p_cfg.parent_table, bisman_partition_name(p_cfg.base_table, p_month),
                   p_month::timestamp, (p_month + interval '1 month')::timestamp);
END $$;

CREATE OR REPLACE FUNCTION bisman_ensure_default_partition(p_cfg bisman_partitioned_tables)
RETURNS VOID
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table
                   WHERE partrelid = to_regclass(quote_ident(p_cfg.parent_table)) AND partdefid <> 0) THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT',
                       p_cfg.base_table || '_default', p_cfg.parent_table);
    END IF;
END $$;

-- Makes sure p_months months starting at p_from exist for a managed table and
-- the tables partitioned together with it. Idempotent. Rows of a new month
-- that were waiting in a default partition are moved into it (pg_partman's
-- "default partition would be violated" trap). Children are prepared before
-- and attached after their parent month, so that the parent's rows leaving
-- the default partition never cascade to the children's rows.
CREATE OR REPLACE FUNCTION bisman_ensure_partitions(p_table TEXT, p_from DATE, p_months INTEGER)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               created BOOLEAN, rows_moved BIGINT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table);
    cfg bisman_partitioned_tables;
    children bisman_partitioned_tables[];
    child_moved BIGINT[];
    m DATE;
    moved BIGINT;
    k INTEGER;
BEGIN
    IF p_from IS NULL THEN
        RAISE EXCEPTION 'start month must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_months IS NULL OR p_months < 1 OR p_months > 240 THEN
        RAISE EXCEPTION 'number of months must be between 1 and 240, got %', coalesce(p_months::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(array_agg(b ORDER BY b.base_table), '{}') INTO children
    FROM bisman_partitioned_tables b WHERE b.follows = root.base_table;

    PERFORM bisman_ensure_default_partition(root);
    FOREACH cfg IN ARRAY children LOOP
        PERFORM bisman_ensure_default_partition(cfg);
    END LOOP;

    FOR i IN 0 .. p_months - 1 LOOP
        m := (date_trunc('month', p_from) + make_interval(months => i))::date;
        child_moved := '{}';
        FOR k IN 1 .. coalesce(array_length(children, 1), 0) LOOP
            child_moved := child_moved || bisman_prepare_month(children[k], m);
        END LOOP;

        moved := bisman_prepare_month(root, m);
        IF moved IS NOT NULL THEN
            PERFORM bisman_attach_month(root, m);
        END IF;
        table_name := root.base_table; partition_name := bisman_partition_name(root.base_table, m);
        range_start := m; range_end := m + interval '1 month';
        created := moved IS NOT NULL; rows_moved := coalesce(moved, 0);
        RETURN NEXT;

        FOR k IN 1 .. coalesce(array_length(children, 1), 0) LOOP
            IF child_moved[k] IS NOT NULL THEN
                PERFORM bisman_attach_month(children[k], m);
            END IF;
            table_name := children[k].base_table; partition_name := bisman_partition_name(children[k].base_table, m);
            created := child_moved[k] IS NOT NULL; rows_moved := coalesce(child_moved[k], 0);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- Spec §2: `SELECT * FROM create_future_partitions('thread_messages', 3);`
-- Makes sure the current UTC month and the next p_months months exist.
CREATE OR REPLACE FUNCTION create_future_partitions(p_table TEXT, p_months INTEGER)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               created BOOLEAN, rows_moved BIGINT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
BEGIN
    IF p_months IS NULL OR p_months < 0 OR p_months > 120 THEN
        RAISE EXCEPTION 'months ahead must be between 0 and 120, got %', coalesce(p_months::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM bisman_ensure_partitions(p_table, bisman_utc_month(), p_months + 1);
END $$;

-- Why a month may (or may not) be dropped: NULL when it may, else the reason.
CREATE OR REPLACE FUNCTION bisman_drop_blocker(p_cfg bisman_partitioned_tables, p_partition TEXT)
RETURNS TEXT
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    has_rows BOOLEAN;
    n BIGINT;
    arch bisman_partition_archives;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', p_partition) INTO has_rows;
    IF NOT has_rows THEN
        RETURN NULL;
    END IF;
    SELECT * INTO arch FROM bisman_partition_archives
    WHERE partition_name = p_partition AND base_table = p_cfg.base_table AND verified_at IS NOT NULL
    ORDER BY archived_at DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN 'not archived: run `bisman partitions archive` first';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', p_partition) INTO n;
    IF n <> arch.row_count THEN
        RETURN format('archive %s holds %s rows but the partition now has %s', arch.file_name, arch.row_count, n);
    END IF;
    RETURN NULL;
END $$;

-- Spec §2: `SELECT * FROM drop_old_partitions('thread_messages', 12);`
-- Drops months that end on or before the start of the UTC month p_keep_months
-- before the current one, together with the months of the tables whose
-- foreign keys point into them (children first: PostgreSQL refuses to drop an
-- attached month of a referenced table). A month is dropped only when it and
-- its children's months are empty or archived and verified with a matching
-- row count, unless p_drop_unarchived is true. Every month considered is
-- reported as 'dropped' or 'skipped' with the reason.
CREATE OR REPLACE FUNCTION drop_old_partitions(p_table TEXT, p_keep_months INTEGER,
                                               p_drop_unarchived BOOLEAN DEFAULT false)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               action TEXT, reason TEXT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table);
    cutoff TIMESTAMP;
    p RECORD;
    c RECORD;
    members JSONB;
    member JSONB;
    blocker TEXT;
    blocked BOOLEAN;
BEGIN
    IF p_keep_months IS NULL OR p_keep_months < 0 OR p_keep_months > 1200 THEN
        RAISE EXCEPTION 'months to keep must be between 0 and 1200, got %', coalesce(p_keep_months::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := bisman_utc_month() - make_interval(months => p_keep_months);

    FOR p IN SELECT * FROM bisman_partitions(root.base_table) bp
             WHERE NOT bp.is_default AND bp.range_end <= cutoff ORDER BY bp.range_start LOOP
        -- The month itself and the same month of each table referencing it.
        members := jsonb_build_array(jsonb_build_object(
            'base', root.base_table, 'parent', root.parent_table, 'name', p.partition_name));
        FOR c IN
            SELECT b.base_table, b.parent_table, cp.partition_name
            FROM bisman_partitioned_tables b
            CROSS JOIN LATERAL bisman_partitions(b.base_table) cp
            WHERE b.follows = root.base_table
              AND cp.range_start = p.range_start AND NOT cp.is_default
              AND EXISTS (SELECT 1 FROM pg_constraint fk
                          WHERE fk.contype = 'f'
                            AND fk.conrelid = to_regclass(quote_ident(b.parent_table))
                            AND fk.confrelid = to_regclass(quote_ident(root.parent_table)))
            ORDER BY b.base_table
        LOOP
            members := jsonb_build_array(jsonb_build_object(
                'base', c.base_table, 'parent', c.parent_table, 'name', c.partition_name)) || members;
        END LOOP;

        blocked := false;
        FOR member IN SELECT * FROM jsonb_array_elements(members) LOOP
            blocker := bisman_drop_blocker(bisman_managed_table(member->>'base', true), member->>'name');
            IF blocker IS NOT NULL THEN
                blocked := true;
                table_name := member->>'base'; partition_name := member->>'name';
                range_start := p.range_start; range_end := p.range_end;
                action := CASE WHEN p_drop_unarchived THEN 'dropped' ELSE 'skipped' END;
                reason := CASE WHEN p_drop_unarchived THEN 'dropped without archive as asked (' || blocker || ')'
                               ELSE blocker END;
                IF NOT p_drop_unarchived THEN
                    RETURN NEXT;
                END IF;
            END IF;
        END LOOP;
        IF blocked AND NOT p_drop_unarchived THEN
            -- Report the members that were fine too, so nothing is silently kept.
            FOR member IN SELECT * FROM jsonb_array_elements(members) LOOP
                IF bisman_drop_blocker(bisman_managed_table(member->>'base', true), member->>'name') IS NULL THEN
                    table_name := member->>'base'; partition_name := member->>'name';
                    range_start := p.range_start; range_end := p.range_end;
                    action := 'skipped'; reason := 'kept with its month, which is not archived';
                    RETURN NEXT;
                END IF;
            END LOOP;
            CONTINUE;
        END IF;

        -- Children first, then the month itself; detach before drop.
        FOR member IN SELECT * FROM jsonb_array_elements(members) LOOP
            blocker := bisman_drop_blocker(bisman_managed_table(member->>'base', true), member->>'name');
            EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', member->>'parent', member->>'name');
            EXECUTE format('DROP TABLE %I', member->>'name');
            UPDATE bisman_partition_archives a SET dropped_at = now()
            WHERE a.partition_name = member->>'name' AND a.dropped_at IS NULL;
            table_name := member->>'base'; partition_name := member->>'name';
            range_start := p.range_start; range_end := p.range_end;
            action := 'dropped';
            reason := CASE
                WHEN blocker IS NOT NULL THEN 'dropped without archive as asked (' || blocker || ')'
                WHEN EXISTS (SELECT 1 FROM bisman_partition_archives a
                             WHERE a.partition_name = member->>'name' AND a.verified_at IS NOT NULL)
                    THEN 'archived and verified'
                ELSE 'empty' END;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- Rows waiting in default partitions (pg_partman's check_default): rows
-- written for a month that had no partition yet. Premaking that month moves
-- them into it.
CREATE OR REPLACE FUNCTION check_default_partitions()
RETURNS TABLE (table_name TEXT, default_partition TEXT, row_count BIGINT,
               oldest TIMESTAMP, newest TIMESTAMP)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    cfg bisman_partitioned_tables;
    def TEXT;
BEGIN
    FOR cfg IN SELECT * FROM bisman_partitioned_tables ORDER BY follows NULLS FIRST, base_table LOOP
        SELECT c.relname INTO def
        FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partdefid
        WHERE pt.partrelid = to_regclass(quote_ident(cfg.parent_table));
        CONTINUE WHEN def IS NULL;
        table_name := cfg.base_table;
        default_partition := def;
        EXECUTE format('SELECT count(*), min(%1$I)::timestamp, max(%1$I)::timestamp FROM %2$I',
                       cfg.partition_column, def)
            INTO row_count, oldest, newest;
        RETURN NEXT;
    END LOOP;
END $$;
