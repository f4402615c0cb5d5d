-- 016: the data lifecycle under concurrency.
--
-- The promise: every committed row of a managed table is in the table or in
-- an archive whose content checksum matches exactly the rows that were
-- dropped, and nothing is invisible for longer than one short statement.
-- This migration replaces the month-making and month-dropping code of 012
-- with one implementation that the SQL functions of the spec
-- (create_future_partitions, drop_old_partitions) and the Rust commands
-- (`bisman partitions premake | retain | restore`) all call:
--
-- - Drops lock first, then check, in the same transaction, and compare
--   content, not counts: the rows' checksum recomputed under the lock must
--   equal the checksum recorded with the archive (bisman_retire_months).
-- - A month is made fully before it is attached (bisman_premake_month): its
--   table, the parent's indexes and a CHECK matching its bounds are built
--   first, and the rows waiting for it in the default partition are copied
--   in; only then, under a short lock, are the rows that changed meanwhile
--   reconciled, the default partition's copies deleted, and the month
--   attached. No row is ever in a detached table between transactions.
-- - Every lock that blocks the application is asked for with a short
--   lock_timeout (setting bisman.lock_timeout, default 250ms) and retried
--   (bisman.lock_attempts, default 40) instead of queueing behind readers.
-- - Rows added or removed without row triggers (attach, drop) are written
--   to the change log of a table that `bisman partitions migrate` swapped,
--   so that unswap still finds the flat table complete.
-- - Retention skips a table whose migration is in progress.
--
-- Every identifier that reaches dynamic SQL comes from the registry or the
-- catalog and is quoted with format('%I').

-- ---------------------------------------------------------------------------
-- Ledger: what an archive holds, by content.

ALTER TABLE bisman_partition_archives ADD COLUMN IF NOT EXISTS content_checksum TEXT;
COMMENT ON COLUMN bisman_partition_archives.content_checksum IS
    'bisman_rows_digest() of the rows exported, taken in the export''s snapshot and checked again by loading the file back. A month is dropped only when its rows, under the drop''s lock, have this checksum.';

-- ---------------------------------------------------------------------------
-- Settings and hooks.

-- A bisman.* setting of the session or transaction, or the default.
CREATE OR REPLACE FUNCTION bisman_setting(p_name TEXT, p_default TEXT)
RETURNS TEXT LANGUAGE sql STABLE
AS $$ SELECT coalesce(nullif(current_setting('bisman.' || p_name, true), ''), p_default) $$;

-- A named step of a lifecycle operation. It does nothing; the concurrency
-- tests replace it in their own database to pause an operation exactly
-- there while other sessions write (crates/bisman-db/src/lifecycle/steps.rs
-- lists the steps).
CREATE OR REPLACE FUNCTION bisman_lifecycle_step(p_step TEXT)
RETURNS VOID LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;

-- The pause before lock attempt p_attempt + 1: growing, capped at a second,
-- with jitter so that two waiters do not retry in step.
CREATE OR REPLACE FUNCTION bisman_lock_backoff(p_attempt INTEGER)
RETURNS VOID LANGUAGE sql VOLATILE
AS $$ SELECT pg_sleep(least(0.05 * p_attempt, 1.0) * (0.5 + random())) $$;

-- ---------------------------------------------------------------------------
-- Content of a set of rows.

-- The columns of a managed table's parent, in order, as a quoted list.
CREATE OR REPLACE FUNCTION bisman_column_list(p_parent TEXT, p_alias TEXT DEFAULT NULL)
RETURNS TEXT LANGUAGE sql STABLE
AS $$
    SELECT string_agg(CASE WHEN p_alias IS NULL THEN '' ELSE quote_ident(p_alias) || '.' END
                      || quote_ident(a.attname), ', ' ORDER BY a.attnum)
    FROM pg_attribute a
    WHERE a.attrelid = to_regclass(quote_ident(p_parent)) AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Row count and content checksum of the rows of p_relation (a month, or a
-- table loaded from an archive), over p_parent's columns in order. The
-- checksum is order-independent: two sums of 64-bit hashes of each row's
-- text (hashtextextended with seeds 0 and 1: the hash PostgreSQL's hash
-- partitioning relies on, so stable across versions). The text of a row is
-- fixed by the settings below, whatever the caller's session uses.
CREATE OR REPLACE FUNCTION bisman_rows_digest(p_parent TEXT, p_relation TEXT,
                                              OUT row_count BIGINT, OUT checksum TEXT)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT SET TimeZone = 'UTC' SET DateStyle = 'ISO, MDY'
SET IntervalStyle = 'postgres' SET extra_float_digits = 1 SET bytea_output = 'hex'
AS $$
BEGIN
    EXECUTE format(
        'SELECT count(*), ''h2:'' || coalesce(sum(hashtextextended(s.r, 0)::numeric), 0)
                                  || '':'' || coalesce(sum(hashtextextended(s.r, 1)::numeric), 0)
         FROM (SELECT ROW(%s)::text AS r FROM %I t) s',
        bisman_column_list(p_parent, 't'), p_relation)
    INTO row_count, checksum;
END $$;

-- ---------------------------------------------------------------------------
-- Table migrations (013) seen from the lifecycle.

-- Why the lifecycle must leave p_base alone, or NULL: while `bisman
-- partitions migrate` fills (or after an unswap), the partitioned twin is
-- not the live table, and its months are the migration's.
CREATE OR REPLACE FUNCTION bisman_migration_blocker(p_base TEXT)
RETURNS TEXT LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$
    SELECT format('`bisman partitions migrate %s` is in progress (state %s): its partitioned table is not '
                  'the live one yet, so its months are left alone until it is swapped', m.base_table, m.state)
    FROM bisman_table_migrations m
    WHERE m.base_table = p_base AND m.state IN ('filling', 'filled', 'unswapped')
$$;

-- After a swap the change log feeds the retired flat table, so that unswap
-- can bring it back complete. Attaching and dropping months fire no row
-- triggers: their rows' keys are logged here instead. Returns keys logged.
CREATE OR REPLACE FUNCTION bisman_log_rows(p_base TEXT, p_relation TEXT)
RETURNS BIGINT LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    key_col TEXT;
    n BIGINT := 0;
BEGIN
    SELECT m.key_column INTO key_col FROM bisman_table_migrations m
    WHERE m.base_table = p_base AND m.state = 'swapped';
    IF key_col IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('INSERT INTO bisman_table_changes (base_table, key) SELECT %L, %I::text FROM %I',
                   p_base, key_col, p_relation);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- ---------------------------------------------------------------------------
-- Making a month.

-- Name of a constraint of a month built after the parent's constraint.
CREATE OR REPLACE FUNCTION bisman_month_constraint_name(p_parent TEXT, p_part TEXT, p_conname TEXT)
RETURNS TEXT LANGUAGE sql IMMUTABLE
AS $$
    SELECT left(p_part || CASE WHEN p_conname LIKE p_parent || '\_%' THEN substr(p_conname, length(p_parent) + 1)
                               ELSE '_' || p_conname END, 63)
$$;

-- Stage one month of one table: its table (created, or adopted when a
-- detached month table of that name is left from an interrupted run or a
-- restore loaded it), the rows of the month waiting in the default
-- partition copied in (nothing is deleted yet; the copies are remembered in
-- pg_temp.bisman_staged), the parent's indexes and unique keys built, and a
-- CHECK matching the bounds, so that ATTACH scans nothing and builds
-- nothing. Returns the rows copied, or NULL when the month is attached
-- already. Takes no lock that blocks the application.
CREATE OR REPLACE FUNCTION bisman_month_stage(p_cfg bisman_partitioned_tables, p_month DATE)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    part TEXT := bisman_partition_name(p_cfg.base_table, p_month);
    parent REGCLASS := to_regclass(quote_ident(p_cfg.parent_table));
    rel REGCLASS := to_regclass(quote_ident(part));
    def REGCLASS;
    lo TIMESTAMP := p_month::timestamp;
    hi TIMESTAMP := (p_month + interval '1 month')::timestamp;
    cols TEXT := bisman_column_list(p_cfg.parent_table);
    copied BIGINT := 0;
    idx RECORD;
    tail TEXT;
BEGIN
    IF parent IS NULL THEN
        RAISE EXCEPTION 'partitioned table % of % does not exist', p_cfg.parent_table, p_cfg.base_table
            USING ERRCODE = 'undefined_table';
    END IF;
    IF rel IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = rel AND inhparent = parent) THEN
            RETURN NULL;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = rel)
           OR (SELECT relkind FROM pg_class WHERE oid = rel) <> 'r' THEN
            RAISE EXCEPTION '% exists but is not a month table of %', part, p_cfg.parent_table
                USING ERRCODE = 'duplicate_table', HINT = 'rename it before making this month';
        END IF;
    ELSE
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                       part, p_cfg.parent_table);
        rel := to_regclass(quote_ident(part));
    END IF;

    IF to_regclass('pg_temp.bisman_staged') IS NULL THEN
        CREATE TEMP TABLE bisman_staged (partition_name TEXT NOT NULL, row_hash TEXT NOT NULL) ON COMMIT DROP;
    END IF;
    SELECT pt.partdefid::regclass INTO def
    FROM pg_partitioned_table pt WHERE pt.partrelid = parent AND pt.partdefid <> 0;
    IF def IS NOT NULL THEN
        EXECUTE format(
            'WITH c AS (INSERT INTO %1$I AS t (%2$s) SELECT %3$s FROM %4$s d WHERE d.%5$I >= %6$L AND d.%5$I < %7$L
                        RETURNING md5(ROW(%8$s)::text) AS h)
             INSERT INTO bisman_staged SELECT %9$L, c.h FROM c',
            part, cols, bisman_column_list(p_cfg.parent_table, 'd'), def, p_cfg.partition_column, lo, hi,
            bisman_column_list(p_cfg.parent_table, 't'), part);
        GET DIAGNOSTICS copied = ROW_COUNT;
        ANALYZE pg_temp.bisman_staged;
    END IF;

    -- The parent's unique keys as constraints (ATTACH adopts them), its other
    -- indexes by definition; an adopted table keeps what it has already.
    FOR idx IN
        SELECT i.indexrelid, i.indisunique, c.contype, c.conname,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.o)
                FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) AS con_cols,
               pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i
        LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = parent AND c.contype IN ('p', 'u')
        WHERE i.indrelid = parent
        ORDER BY c.contype NULLS LAST, i.indexrelid
    LOOP
        tail := substring(idx.def FROM position(' USING ' IN idx.def));
        IF idx.contype = 'p' THEN
            CONTINUE WHEN EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = rel AND contype = 'p');
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (%s)', part,
                           bisman_month_constraint_name(p_cfg.parent_table, part, idx.conname), idx.con_cols);
        ELSIF idx.contype = 'u' THEN
            CONTINUE WHEN EXISTS (SELECT 1 FROM pg_constraint
                                  WHERE conrelid = rel AND contype = 'u'
                                    AND conname = bisman_month_constraint_name(p_cfg.parent_table, part, idx.conname));
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (%s)', part,
                           bisman_month_constraint_name(p_cfg.parent_table, part, idx.conname), idx.con_cols);
        ELSE
            CONTINUE WHEN EXISTS (SELECT 1 FROM pg_index j
                                  WHERE j.indrelid = rel
                                    AND substring(pg_get_indexdef(j.indexrelid)
                                                  FROM position(' USING ' IN pg_get_indexdef(j.indexrelid))) = tail);
            EXECUTE 'CREATE ' || CASE WHEN idx.indisunique THEN 'UNIQUE ' ELSE '' END
                    || 'INDEX ON ' || quote_ident(part) || tail;
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = rel AND conname = left(part, 56) || '_bounds') THEN
        EXECUTE format('ALTER TABLE %1$I ADD CONSTRAINT %2$I CHECK (%3$I IS NOT NULL AND %3$I >= %4$L AND %3$I < %5$L)',
                       part, left(part, 56) || '_bounds', p_cfg.partition_column, lo, hi);
    END IF;
    RETURN copied;
END $$;

-- Under the caller's lock on the parent (no writer between this and the
-- commit): the staged copies reconciled with the default partition as it is
-- now (copies of rows changed or deleted since are removed, rows added or
-- changed since are copied), then the month's rows deleted from the default
-- partition. Children before their parent: the parent's rows leaving the
-- default partition must find no child rows there to cascade to. Returns
-- the rows moved. The work under the lock is one pass over the month's rows
-- in the default partition (their hashes, compared with the staged ones as
-- sets) and their delete; the month's own rows are read only when something
-- changed since staging.
-- (work_mem: the set comparisons of a large month hash in memory instead
-- of sorting on disk while the lock is held.)
CREATE OR REPLACE FUNCTION bisman_month_unstage(p_cfg bisman_partitioned_tables, p_month DATE)
RETURNS BIGINT
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC' SET work_mem = '128MB'
AS $$
DECLARE
    part TEXT := bisman_partition_name(p_cfg.base_table, p_month);
    def REGCLASS;
    lo TIMESTAMP := p_month::timestamp;
    hi TIMESTAMP := (p_month + interval '1 month')::timestamp;
    col TEXT := p_cfg.partition_column;
    moved BIGINT := 0;
BEGIN
    SELECT pt.partdefid::regclass INTO def FROM pg_partitioned_table pt
    WHERE pt.partrelid = to_regclass(quote_ident(p_cfg.parent_table)) AND pt.partdefid <> 0;
    IF def IS NULL THEN
        RETURN 0;
    END IF;
    IF to_regclass('pg_temp.bisman_staged') IS NULL THEN
        CREATE TEMP TABLE bisman_staged (partition_name TEXT NOT NULL, row_hash TEXT NOT NULL) ON COMMIT DROP;
    END IF;
    DROP TABLE IF EXISTS pg_temp.bisman_now, pg_temp.bisman_gone, pg_temp.bisman_new;
    EXECUTE format(
        'CREATE TEMP TABLE bisman_now ON COMMIT DROP AS
         SELECT d.ctid AS row_ctid, md5(ROW(%s)::text) AS row_hash FROM %s d WHERE d.%I >= %L AND d.%I < %L',
        bisman_column_list(p_cfg.parent_table, 'd'), def, col, lo, col, hi);
    CREATE TEMP TABLE bisman_gone ON COMMIT DROP AS
        SELECT s.row_hash FROM bisman_staged s WHERE s.partition_name = part
        EXCEPT ALL SELECT n.row_hash FROM bisman_now n;
    CREATE TEMP TABLE bisman_new ON COMMIT DROP AS
        SELECT n.row_hash FROM bisman_now n
        EXCEPT ALL SELECT s.row_hash FROM bisman_staged s WHERE s.partition_name = part;
    IF EXISTS (SELECT 1 FROM bisman_gone) THEN
        EXECUTE format('DELETE FROM %I t USING bisman_gone g WHERE md5(ROW(%s)::text) = g.row_hash',
                       part, bisman_column_list(p_cfg.parent_table, 't'));
    END IF;
    IF EXISTS (SELECT 1 FROM bisman_new) THEN
        EXECUTE format(
            'INSERT INTO %I (%s) SELECT %s FROM %s d
             WHERE d.ctid IN (SELECT n.row_ctid FROM bisman_now n JOIN bisman_new w ON w.row_hash = n.row_hash)',
            part, bisman_column_list(p_cfg.parent_table), bisman_column_list(p_cfg.parent_table, 'd'), def);
    END IF;
    EXECUTE format('DELETE FROM %s d WHERE d.%I >= %L AND d.%I < %L', def, col, lo, col, hi);
    GET DIAGNOSTICS moved = ROW_COUNT;
    DELETE FROM bisman_staged s WHERE s.partition_name = part;
    DROP TABLE pg_temp.bisman_now, pg_temp.bisman_gone, pg_temp.bisman_new;
    RETURN moved;
END $$;

-- Under the caller's lock: attach a staged month (its CHECK makes ATTACH
-- skip the scan, its indexes are adopted), then drop the CHECK.
CREATE OR REPLACE FUNCTION bisman_month_attach(p_cfg bisman_partitioned_tables, p_month DATE)
RETURNS VOID
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    part TEXT := bisman_partition_name(p_cfg.base_table, p_month);
BEGIN
    PERFORM bisman_log_rows(p_cfg.base_table, part);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   p_cfg.parent_table, part, p_month::timestamp, (p_month + interval '1 month')::timestamp);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', part, left(part, 56) || '_bounds');
END $$;

-- Makes one month of a managed table and of the tables that follow it
-- (message_reads, message_reactions follow thread_messages): staged without
-- blocking anyone, then, under EXCLUSIVE locks on the parents that gain a
-- month (readers carry on; writers wait for the few statements that
-- reconcile, move and attach), moved and attached. The parents are locked
-- for writes, not only the default partitions, so that a writer waiting
-- behind the attach plans again with the new month and finds the rows that
-- moved (a plan made before would look for them in the default partition).
-- One premake of a table at a time: a second one waits for the first (on an
-- advisory lock that blocks no ERP query) and finds the month made. The
-- lock is retried on a short timeout (bisman.lock_timeout, attempts
-- bisman.lock_attempts) without losing the staged work; after the last
-- attempt it raises lock_not_available.
CREATE OR REPLACE FUNCTION bisman_premake_month(p_table TEXT, p_month DATE)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               created BOOLEAN, rows_moved BIGINT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC' SET lock_timeout = 0
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table);
    m DATE := date_trunc('month', p_month)::date;
    members bisman_partitioned_tables[];
    staged BIGINT[] := '{}';
    moved BIGINT[] := '{}';
    lt TEXT := bisman_setting('lock_timeout', '250ms');
    attempts INTEGER := greatest(bisman_setting('lock_attempts', '40')::integer, 1);
    n INTEGER;
    k INTEGER;
    cnt INTEGER;
BEGIN
    IF m IS NULL THEN
        RAISE EXCEPTION 'month must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('bisman-premake'), hashtext(root.base_table));
    members := ARRAY[root] || coalesce((SELECT array_agg(b ORDER BY b.base_table)
                                        FROM bisman_partitioned_tables b WHERE b.follows = root.base_table), '{}');
    cnt := array_length(members, 1);
    FOR k IN 1 .. cnt LOOP
        PERFORM bisman_ensure_default_partition(members[k]);
        staged := staged || bisman_month_stage(members[k], m);
        moved := moved || 0::bigint;
    END LOOP;
    -- A follower's month without this month would lose its rows to the
    -- cascade of this month's rows leaving the default partition.
    IF staged[1] > 0 THEN
        FOR k IN 2 .. cnt LOOP
            IF staged[k] IS NULL AND EXISTS (
                SELECT 1 FROM pg_constraint fk
                WHERE fk.contype = 'f' AND fk.conparentid = 0
                  AND fk.conrelid = to_regclass(quote_ident(members[k].parent_table))
                  AND fk.confrelid = to_regclass(quote_ident(root.parent_table))) THEN
                RAISE EXCEPTION '% exists without %: make or restore % first',
                    bisman_partition_name(members[k].base_table, m), bisman_partition_name(root.base_table, m),
                    bisman_partition_name(root.base_table, m)
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
        END LOOP;
    END IF;
    PERFORM bisman_lifecycle_step('month.staged');

    IF EXISTS (SELECT 1 FROM unnest(staged) s WHERE s IS NOT NULL) THEN
        FOR n IN 1 .. attempts LOOP
            BEGIN
                PERFORM set_config('lock_timeout', lt, true);
                -- The root's parent first, then its followers': the order in
                -- which the application's queries and foreign keys take them.
                FOR k IN 1 .. cnt LOOP
                    CONTINUE WHEN staged[k] IS NULL;
                    EXECUTE format('LOCK TABLE ONLY %I IN EXCLUSIVE MODE', members[k].parent_table);
                END LOOP;
                PERFORM bisman_lifecycle_step('month.locked');
                FOR k IN REVERSE cnt .. 1 LOOP
                    CONTINUE WHEN staged[k] IS NULL;
                    moved[k] := bisman_month_unstage(members[k], m);
                END LOOP;
                FOR k IN 1 .. cnt LOOP
                    CONTINUE WHEN staged[k] IS NULL;
                    PERFORM bisman_month_attach(members[k], m);
                END LOOP;
                PERFORM set_config('lock_timeout', '0', true);
                EXIT;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                IF n >= attempts THEN
                    RAISE EXCEPTION 'could not lock % to attach %: % attempts of %', root.parent_table,
                                    bisman_partition_name(root.base_table, m), attempts, lt
                        USING ERRCODE = 'lock_not_available',
                              HINT = 'a long transaction holds the table; try again later';
                END IF;
                PERFORM set_config('lock_timeout', '0', true);
                PERFORM bisman_lock_backoff(n);
            END;
        END LOOP;
        PERFORM bisman_lifecycle_step('month.attached');
    END IF;

    FOR k IN 1 .. cnt LOOP
        table_name := members[k].base_table;
        partition_name := bisman_partition_name(members[k].base_table, m);
        range_start := m;
        range_end := m + interval '1 month';
        created := staged[k] IS NOT NULL;
        rows_moved := coalesce(moved[k], 0);
        RETURN NEXT;
    END LOOP;
END $$;

-- 012's function with 012's contract: p_months months from p_from made for a
-- table and the tables that follow it, each month by bisman_premake_month.
CREATE OR REPLACE FUNCTION bisman_ensure_partitions(p_table TEXT, p_from DATE, p_months INTEGER)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               created BOOLEAN, rows_moved BIGINT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table);
BEGIN
    IF p_from IS NULL THEN
        RAISE EXCEPTION 'start month must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_months IS NULL OR p_months < 1 OR p_months > 240 THEN
        RAISE EXCEPTION 'number of months must be between 1 and 240, got %', coalesce(p_months::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 0 .. p_months - 1 LOOP
        RETURN QUERY SELECT * FROM bisman_premake_month(root.base_table,
                                                         (date_trunc('month', p_from) + make_interval(months => i))::date);
    END LOOP;
END $$;

-- Rows moved by 012's helpers were deleted from the default partition in
-- committed batches or attached without prepared indexes; nothing calls them
-- any more.
DROP FUNCTION IF EXISTS bisman_prepare_month(bisman_partitioned_tables, DATE);
DROP FUNCTION IF EXISTS bisman_attach_month(bisman_partitioned_tables, DATE);

-- Months older than p_cutoff whose rows wait in p_table's default partition
-- (rows that arrived after their month was dropped, or that never had one).
CREATE OR REPLACE FUNCTION bisman_late_months(p_table TEXT, p_cutoff TIMESTAMP)
RETURNS TABLE (month DATE, row_count BIGINT)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table, true);
    def REGCLASS;
BEGIN
    SELECT pt.partdefid::regclass INTO def FROM pg_partitioned_table pt
    WHERE pt.partrelid = to_regclass(quote_ident(root.parent_table)) AND pt.partdefid <> 0;
    IF def IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT date_trunc(''month'', d.%1$I)::date, count(*) FROM %2$s d WHERE d.%1$I < %3$L GROUP BY 1 ORDER BY 1',
        root.partition_column, def, p_cutoff);
END $$;

-- ---------------------------------------------------------------------------
-- Dropping months.

-- Whether p_partition of p_cfg may be dropped, judged on its content now
-- (the caller holds a lock that keeps writers out): 'empty', 'archived'
-- (its newest verified archive holds exactly these rows), or why not:
-- 'not_archived', 'changed' (the content differs from that archive's, or
-- the archive predates content checksums).
CREATE OR REPLACE FUNCTION bisman_retire_check(p_cfg bisman_partitioned_tables, p_partition TEXT,
                                               OUT outcome TEXT, OUT reason TEXT, OUT archive_id BIGINT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    d RECORD;
    arch bisman_partition_archives;
BEGIN
    SELECT * INTO d FROM bisman_rows_digest(p_cfg.parent_table, p_partition);
    IF d.row_count = 0 THEN
        outcome := 'empty'; reason := 'empty';
        RETURN;
    END IF;
    SELECT * INTO arch FROM bisman_partition_archives a
    WHERE a.base_table = p_cfg.base_table AND a.partition_name = p_partition AND a.verified_at IS NOT NULL
    ORDER BY a.archived_at DESC, a.id DESC LIMIT 1;
    IF NOT FOUND THEN
        outcome := 'not_archived';
        reason := format('not archived: %s rows; run `bisman partitions archive` (or `retain` with an archive folder) first',
                         d.row_count);
        RETURN;
    END IF;
    archive_id := arch.id;
    IF arch.content_checksum IS NULL THEN
        outcome := 'changed';
        reason := format('archive %s predates content checksums (%s rows then, %s now): archive it again',
                         arch.file_name, arch.row_count, d.row_count);
    ELSIF arch.row_count = d.row_count AND arch.content_checksum = d.checksum THEN
        outcome := 'archived';
        reason := 'archived and verified';
    ELSE
        outcome := 'changed';
        reason := format('changed since its archive %s (%s rows then, %s now, content %s): archive it again',
                         arch.file_name, arch.row_count, d.row_count,
                         CASE WHEN arch.content_checksum = d.checksum THEN 'equal' ELSE 'differs' END);
    END IF;
END $$;

-- 012's function, judged on content: why a month may not be dropped, or NULL.
CREATE OR REPLACE FUNCTION bisman_drop_blocker(p_cfg bisman_partitioned_tables, p_partition TEXT)
RETURNS TEXT
LANGUAGE sql VOLATILE SET search_path FROM CURRENT
AS $$
    SELECT CASE WHEN c.outcome IN ('empty', 'archived') THEN NULL ELSE c.reason END
    FROM bisman_retire_check(p_cfg, p_partition) c
$$;

-- Retires months of a managed table and the same months of the tables whose
-- foreign keys point into it, in one transaction per attempt:
--   1. every member month locked in SHARE mode (writers to those months wait;
--      readers carry on), 2. its content checked against its archive,
--   3. the parents locked and the months that may go detached and dropped,
--      children first, their archive marked dropped, their keys logged for
--      a swapped table's change log.
-- A month is dropped only when all its members are empty or archived with
-- exactly their present content, unless p_drop_unarchived. When a lock is
-- not granted within bisman.lock_timeout the whole attempt is rolled back
-- (writers waiting for it go on) and retried. Reports every member:
-- action 'dropped' or 'skipped', reason, and outcome (empty, archived,
-- unarchived, not_archived, changed, kept, migrating, locked).
CREATE OR REPLACE FUNCTION bisman_retire_months(p_table TEXT, p_months DATE[], p_drop_unarchived BOOLEAN DEFAULT false)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               action TEXT, reason TEXT, outcome TEXT, archive_id BIGINT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC' SET lock_timeout = 0
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table);
    lt TEXT := bisman_setting('lock_timeout', '250ms');
    attempts INTEGER := greatest(bisman_setting('lock_attempts', '40')::integer, 1);
    blocked_by TEXT := bisman_migration_blocker(root.base_table);
    plan JSONB := '[]';
    result JSONB;
    mem JSONB;
    par TEXT;
    chk RECORD;
    n INTEGER;
    month_ok BOOLEAN;
    any_drop BOOLEAN;
    p RECORD;
    c RECORD;
BEGIN
    -- The members: for each month, the followers' months (whose foreign keys
    -- point at this table) first, the month itself last.
    FOR p IN SELECT * FROM bisman_partitions(root.base_table) bp
             WHERE NOT bp.is_default AND bp.range_start::date = ANY (p_months) ORDER BY bp.range_start LOOP
        FOR c IN
            SELECT b.base_table, b.parent_table, cp.partition_name
            FROM bisman_partitioned_tables b
            CROSS JOIN LATERAL bisman_partitions(b.base_table) cp
            WHERE b.follows = root.base_table AND cp.range_start = p.range_start AND NOT cp.is_default
              AND EXISTS (SELECT 1 FROM pg_constraint fk
                          WHERE fk.contype = 'f' AND fk.conparentid = 0
                            AND fk.conrelid = to_regclass(quote_ident(b.parent_table))
                            AND fk.confrelid = to_regclass(quote_ident(root.parent_table)))
            ORDER BY b.base_table
        LOOP
            plan := plan || jsonb_build_object('base', c.base_table, 'parent', c.parent_table,
                                               'name', c.partition_name, 'start', p.range_start, 'end', p.range_end);
        END LOOP;
        plan := plan || jsonb_build_object('base', root.base_table, 'parent', root.parent_table,
                                           'name', p.partition_name, 'start', p.range_start, 'end', p.range_end);
    END LOOP;

    IF blocked_by IS NOT NULL THEN
        result := (SELECT coalesce(jsonb_agg(e || jsonb_build_object('action', 'skipped', 'reason', blocked_by,
                                                                      'outcome', 'migrating')), '[]')
                   FROM jsonb_array_elements(plan) e);
    ELSE
        FOR n IN 1 .. attempts LOOP
            BEGIN
                PERFORM set_config('lock_timeout', lt, true);
                FOR mem IN SELECT * FROM jsonb_array_elements(plan) LOOP
                    EXECUTE format('LOCK TABLE %I IN SHARE MODE', mem->>'name');
                END LOOP;
                PERFORM bisman_lifecycle_step('retire.locked');
                result := '[]';
                FOR mem IN SELECT * FROM jsonb_array_elements(plan) LOOP
                    SELECT * INTO chk FROM bisman_retire_check(bisman_managed_table(mem->>'base', true), mem->>'name');
                    result := result || (mem || jsonb_build_object('outcome', chk.outcome, 'reason', chk.reason,
                                                                   'archive_id', chk.archive_id));
                END LOOP;
                PERFORM bisman_lifecycle_step('retire.checked');
                -- Decide per month: all members fine, or dropping unarchived as asked.
                result := (
                    SELECT coalesce(jsonb_agg(
                        CASE WHEN g.ok OR p_drop_unarchived THEN
                                 e || jsonb_build_object('action', 'dropped',
                                     'reason', CASE WHEN e->>'outcome' IN ('empty', 'archived') THEN e->>'reason'
                                                    ELSE 'dropped without archive as asked (' || (e->>'reason') || ')' END,
                                     'outcome', CASE WHEN e->>'outcome' IN ('empty', 'archived') THEN e->>'outcome'
                                                     ELSE 'unarchived' END)
                             WHEN e->>'outcome' IN ('empty', 'archived') THEN
                                 e || jsonb_build_object('action', 'skipped', 'outcome', 'kept',
                                     'reason', 'kept with its month: ' || g.why)
                             ELSE e || jsonb_build_object('action', 'skipped')
                        END ORDER BY x.ord), '[]')
                    FROM jsonb_array_elements(result) WITH ORDINALITY AS x(e, ord)
                    JOIN (SELECT y.e->>'start' AS start,
                                 bool_and(y.e->>'outcome' IN ('empty', 'archived')) AS ok,
                                 string_agg(CASE WHEN y.e->>'outcome' NOT IN ('empty', 'archived')
                                                 THEN (y.e->>'name') || ' is ' || replace(y.e->>'outcome', '_', ' ') END, ', ') AS why
                          FROM jsonb_array_elements(result) y(e) GROUP BY 1) g ON g.start = x.e->>'start');
                any_drop := EXISTS (SELECT 1 FROM jsonb_array_elements(result) e WHERE e->>'action' = 'dropped');
                IF any_drop THEN
                    -- Parents: this table's first, then its followers'.
                    EXECUTE format('LOCK TABLE ONLY %I IN ACCESS EXCLUSIVE MODE', root.parent_table);
                    FOR par IN SELECT DISTINCT e->>'parent' FROM jsonb_array_elements(result) e
                               WHERE e->>'action' = 'dropped' AND e->>'parent' <> root.parent_table ORDER BY 1 LOOP
                        EXECUTE format('LOCK TABLE ONLY %I IN ACCESS EXCLUSIVE MODE', par);
                    END LOOP;
                    FOR mem IN SELECT e FROM jsonb_array_elements(result) WITH ORDINALITY x(e, ord)
                               WHERE e->>'action' = 'dropped' ORDER BY ord LOOP
                        PERFORM bisman_log_rows(mem->>'base', mem->>'name');
                        EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', mem->>'parent', mem->>'name');
                        EXECUTE format('DROP TABLE %I', mem->>'name');
                        UPDATE bisman_partition_archives a SET dropped_at = now()
                        WHERE a.id = (mem->>'archive_id')::bigint AND mem->>'outcome' = 'archived';
                    END LOOP;
                    PERFORM bisman_lifecycle_step('retire.dropped');
                END IF;
                PERFORM set_config('lock_timeout', '0', true);
                EXIT;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                PERFORM set_config('lock_timeout', '0', true);
                IF n >= attempts THEN
                    result := (SELECT coalesce(jsonb_agg(e || jsonb_build_object('action', 'skipped', 'outcome', 'locked',
                                   'reason', format('could not lock it within %s in %s attempts (a long transaction '
                                                    'holds it); try again later', lt, attempts))), '[]')
                               FROM jsonb_array_elements(plan) e);
                    EXIT;
                END IF;
                PERFORM bisman_lock_backoff(n);
            END;
        END LOOP;
    END IF;

    RETURN QUERY
    SELECT e->>'base', e->>'name', (e->>'start')::timestamp, (e->>'end')::timestamp,
           e->>'action', e->>'reason', e->>'outcome', (e->>'archive_id')::bigint
    FROM jsonb_array_elements(result) WITH ORDINALITY x(e, ord) ORDER BY ord;
END $$;

-- Spec §2: `SELECT * FROM drop_old_partitions('thread_messages', 12);`
-- 012's contract, on the shared implementation: months that end on or
-- before the start of the UTC month p_keep_months before the current one are
-- dropped, children first, when they are empty or archived with exactly
-- their present content (or p_drop_unarchived); every month considered is
-- reported. Rows waiting in the default partition for months older than the
-- cut-off (late rows of a dropped month) are first made into their month
-- again, so that the default partition stays small and they are archived
-- (by `bisman partitions retain`) or reported here as not archived.
CREATE OR REPLACE FUNCTION drop_old_partitions(p_table TEXT, p_keep_months INTEGER,
                                               p_drop_unarchived BOOLEAN DEFAULT false)
RETURNS TABLE (table_name TEXT, partition_name TEXT, range_start TIMESTAMP, range_end TIMESTAMP,
               action TEXT, reason TEXT)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT SET TimeZone = 'UTC'
AS $$
DECLARE
    root bisman_partitioned_tables := bisman_managed_table(p_table);
    cutoff TIMESTAMP;
    months DATE[];
BEGIN
    IF p_keep_months IS NULL OR p_keep_months < 0 OR p_keep_months > 1200 THEN
        RAISE EXCEPTION 'months to keep must be between 0 and 1200, got %', coalesce(p_keep_months::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cutoff := bisman_utc_month() - make_interval(months => p_keep_months);
    IF bisman_migration_blocker(root.base_table) IS NULL THEN
        PERFORM bisman_premake_month(root.base_table, l.month) FROM bisman_late_months(root.base_table, cutoff) l;
    END IF;
    SELECT coalesce(array_agg(bp.range_start::date ORDER BY bp.range_start), '{}') INTO months
    FROM bisman_partitions(root.base_table) bp
    WHERE NOT bp.is_default AND bp.range_end <= cutoff;
    RETURN QUERY
    SELECT r.table_name, r.partition_name, r.range_start, r.range_end, r.action, r.reason
    FROM bisman_retire_months(root.base_table, months, p_drop_unarchived) r;
END $$;

-- ---------------------------------------------------------------------------
-- Normalisation: the backfill reads its batch with row locks.
--
-- Spec §3's functions, unchanged but for FOR SHARE on the batch: a message
-- whose JSONB the application changes while a batch runs is either changed
-- before the batch reads it (the batch reads the new value) or waits for the
-- batch to commit (and the mirror trigger then applies the change). Without
-- the lock the batch could insert an entry the application had just removed.

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
        FOR SHARE OF m
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
        FOR SHARE OF m
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
