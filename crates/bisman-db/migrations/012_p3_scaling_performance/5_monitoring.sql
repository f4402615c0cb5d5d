-- P3 step 5: monitoring views (spec §6).
--
-- "Queries taking > 100ms in the last 24 hours" needs history, which
-- pg_stat_statements does not keep (it holds totals since its last reset).
-- snapshot_pg_stat_statements() records totals on a schedule (bisman serve
-- runs it; cron can too) and v_slow_queries diffs now against the snapshot
-- from 24 hours ago. Everything touching pg_stat_statements is dynamic SQL, so
-- these objects exist and work whether or not the extension is installed:
-- without it v_slow_queries is empty and says why in a NOTICE.

DO $$
BEGIN
    -- Only possible when the library is preloaded and we may create it.
    IF 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_stat_statements not created: %', SQLERRM;
        END;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS bisman_stat_statements_snapshots (
    captured_at      TIMESTAMPTZ NOT NULL,
    userid           OID NOT NULL,
    queryid          BIGINT NOT NULL,
    toplevel         BOOLEAN NOT NULL,
    query            TEXT NOT NULL,
    calls            BIGINT NOT NULL,
    total_exec_time  DOUBLE PRECISION NOT NULL,
    max_exec_time    DOUBLE PRECISION NOT NULL,
    rows             BIGINT NOT NULL,
    PRIMARY KEY (captured_at, userid, queryid, toplevel)
);

-- Why pg_stat_statements cannot be read here, or NULL when it can.
CREATE OR REPLACE FUNCTION bisman_stat_statements_problem()
RETURNS TEXT LANGUAGE plpgsql STABLE SET search_path FROM CURRENT
AS $$
DECLARE
    ext_schema TEXT;
BEGIN
    IF NOT ('pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))) THEN
        RETURN 'pg_stat_statements is not loaded: add it to shared_preload_libraries and restart PostgreSQL';
    END IF;
    SELECT n.nspname INTO ext_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_stat_statements';
    IF ext_schema IS NULL THEN
        RETURN 'the pg_stat_statements extension is not created in this database: CREATE EXTENSION pg_stat_statements';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION bisman_stat_statements_relation()
RETURNS TEXT LANGUAGE sql STABLE
AS $$
    SELECT format('%I.pg_stat_statements', n.nspname)
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_stat_statements'
$$;

-- Records the current pg_stat_statements totals of this database and prunes
-- snapshots older than p_keep. Returns the number of statements recorded
-- (0, with a NOTICE, when the extension cannot be read).
CREATE OR REPLACE FUNCTION snapshot_pg_stat_statements(p_keep INTERVAL DEFAULT '8 days')
RETURNS INTEGER LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    problem TEXT := bisman_stat_statements_problem();
    n INTEGER;
BEGIN
    IF problem IS NOT NULL THEN
        RAISE NOTICE 'no snapshot taken: %', problem;
        RETURN 0;
    END IF;
    EXECUTE format(
        'INSERT INTO bisman_stat_statements_snapshots '
        '(captured_at, userid, queryid, toplevel, query, calls, total_exec_time, max_exec_time, rows) '
        'SELECT now(), userid, queryid, toplevel, query, calls, total_exec_time, max_exec_time, rows '
        'FROM %s WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) '
        'AND queryid IS NOT NULL ON CONFLICT DO NOTHING', bisman_stat_statements_relation());
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM bisman_stat_statements_snapshots WHERE captured_at < now() - p_keep;
    RETURN n;
END $$;

-- Statements whose mean time over the window exceeded p_min_mean_ms: the
-- difference between the live totals and the newest snapshot taken at least
-- p_window ago (or the oldest one, when history is shorter; or since the last
-- reset, when there are no snapshots yet: the `source` column says which).
CREATE OR REPLACE FUNCTION bisman_slow_queries(p_window INTERVAL DEFAULT '24 hours',
                                               p_min_mean_ms DOUBLE PRECISION DEFAULT 100)
RETURNS TABLE (queryid BIGINT, query TEXT, calls BIGINT, total_ms DOUBLE PRECISION,
               mean_ms DOUBLE PRECISION, max_ms DOUBLE PRECISION, rows BIGINT,
               window_start TIMESTAMPTZ, source TEXT)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT
AS $$
DECLARE
    problem TEXT := bisman_stat_statements_problem();
    base_at TIMESTAMPTZ;
BEGIN
    IF problem IS NOT NULL THEN
        RAISE NOTICE 'v_slow_queries is empty: %', problem;
        RETURN;
    END IF;
    SELECT max(s.captured_at) INTO base_at FROM bisman_stat_statements_snapshots s
    WHERE s.captured_at <= now() - p_window;
    IF base_at IS NULL THEN
        SELECT min(s.captured_at) INTO base_at FROM bisman_stat_statements_snapshots s;
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH cur AS (
            SELECT p.userid, p.queryid, p.toplevel, p.query, p.calls, p.total_exec_time, p.max_exec_time, p.rows
            FROM %s p
            WHERE p.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND p.queryid IS NOT NULL
        ), diff AS (
            SELECT c.queryid, c.query,
                   -- A reset since the snapshot shows as fewer calls: count from zero then.
                   CASE WHEN b.calls IS NULL OR c.calls < b.calls THEN c.calls ELSE c.calls - b.calls END AS calls,
                   CASE WHEN b.calls IS NULL OR c.calls < b.calls THEN c.total_exec_time
                        ELSE c.total_exec_time - b.total_exec_time END AS total_ms,
                   c.max_exec_time, 
                   CASE WHEN b.calls IS NULL OR c.calls < b.calls THEN c.rows ELSE c.rows - b.rows END AS rows
            FROM cur c
            LEFT JOIN bisman_stat_statements_snapshots b
                   ON b.captured_at = $1 AND b.userid = c.userid AND b.queryid = c.queryid AND b.toplevel = c.toplevel
        )
        SELECT d.queryid, d.query, d.calls, d.total_ms, d.total_ms / d.calls, d.max_exec_time, d.rows,
               $1, CASE WHEN $1 IS NULL THEN 'since statistics reset' ELSE 'snapshot difference' END
        FROM diff d
        WHERE d.calls > 0 AND d.total_ms / d.calls > $2
        ORDER BY d.total_ms DESC
        LIMIT 100
    $q$, bisman_stat_statements_relation()) USING base_at, p_min_mean_ms;
END $$;

-- Spec §6: `SELECT * FROM v_slow_queries;` Queries taking > 100 ms (mean) in
-- the last 24 hours.
CREATE OR REPLACE VIEW v_slow_queries AS
SELECT * FROM bisman_slow_queries(interval '24 hours', 100);

-- Spec §6: `SELECT * FROM v_table_access_patterns;` Which tables are read
-- and written most, and how. Partitions are rolled up into their partitioned
-- table (what PgHero does not do), with the number of partitions.
CREATE OR REPLACE VIEW v_table_access_patterns AS
WITH stats AS (
    SELECT coalesce(pg_partition_root(s.relid), s.relid) AS root, s.*
    FROM pg_stat_user_tables s
), rolled AS (
    SELECT st.root,
           count(*) AS relations,
           sum(st.seq_scan)::bigint AS seq_scan,
           sum(st.seq_tup_read)::bigint AS seq_tup_read,
           sum(coalesce(st.idx_scan, 0))::bigint AS idx_scan,
           sum(coalesce(st.idx_tup_fetch, 0))::bigint AS idx_tup_fetch,
           sum(st.n_tup_ins)::bigint AS inserts,
           sum(st.n_tup_upd)::bigint AS updates,
           sum(st.n_tup_del)::bigint AS deletes,
           sum(st.n_live_tup)::bigint AS live_rows,
           sum(st.n_dead_tup)::bigint AS dead_rows,
           sum(pg_total_relation_size(st.relid))::bigint AS total_bytes,
           max(greatest(st.last_vacuum, st.last_autovacuum)) AS last_vacuum,
           max(greatest(st.last_analyze, st.last_autoanalyze)) AS last_analyze
    FROM stats st
    GROUP BY st.root
)
SELECT n.nspname::text AS schema_name,
       c.relname::text AS table_name,
       (c.relkind = 'p') AS is_partitioned,
       r.relations AS partitions,
       r.seq_scan, r.seq_tup_read, r.idx_scan, r.idx_tup_fetch,
       r.inserts, r.updates, r.deletes, r.live_rows, r.dead_rows,
       pg_size_pretty(r.total_bytes) AS total_size, r.total_bytes,
       round(100.0 * r.idx_scan / nullif(r.seq_scan + r.idx_scan, 0), 1) AS index_scan_pct,
       CASE greatest(r.seq_tup_read + r.idx_tup_fetch, r.inserts, r.updates, r.deletes)
           WHEN 0 THEN 'idle'
           WHEN r.seq_tup_read + r.idx_tup_fetch THEN 'read'
           WHEN r.inserts THEN 'insert'
           WHEN r.updates THEN 'update'
           ELSE 'delete' END AS dominant_operation,
       CASE
           WHEN r.seq_scan > 50 AND r.live_rows > 10000 AND r.seq_scan > r.idx_scan
               THEN 'mostly sequential scans on a large table: an index may be missing'
           WHEN r.dead_rows > 10000 AND r.dead_rows > r.live_rows / 5
               THEN 'many dead rows: vacuum is falling behind'
       END AS hint,
       r.last_vacuum, r.last_analyze
FROM rolled r
JOIN pg_class c ON c.oid = r.root
JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY r.seq_tup_read + r.idx_tup_fetch + r.inserts + r.updates + r.deletes DESC, c.relname;
