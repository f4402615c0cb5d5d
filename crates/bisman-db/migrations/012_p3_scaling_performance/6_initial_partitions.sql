-- P3 step 6: the spec's initial months, and rows from an ERP that had already
-- run the spec's unpartitioned DDL for message_reads / message_reactions.
--
-- Months: 3 past + the current + 11 ahead (15) for messages (and their reads
-- and reactions) and usage events; 3 past + the current + 2 ahead (6) for
-- audit logs. Rows outside them land in each table's default partition.
SELECT b.base_table,
       (SELECT count(*) FROM bisman_ensure_partitions(b.base_table,
            (bisman_utc_month() - make_interval(months => b.past_months))::date,
            b.past_months + 1 + b.premake_months)) AS months
FROM bisman_partitioned_tables b
WHERE b.follows IS NULL;

DO $$
BEGIN
    IF to_regclass('message_reads_unpartitioned') IS NOT NULL THEN
        INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id, read_at)
        SELECT m.tenant_id, r.message_id, m."createdAt", m."threadId", r.user_id, r.read_at
        FROM message_reads_unpartitioned r JOIN thread_messages m ON m.id = r.message_id
        ON CONFLICT (message_id, user_id, message_created_at, tenant_id) DO NOTHING;
    END IF;
    IF to_regclass('message_reactions_unpartitioned') IS NOT NULL THEN
        INSERT INTO message_reactions (tenant_id, message_id, message_created_at, thread_id, user_id, emoji, created_at)
        SELECT m.tenant_id, r.message_id, m."createdAt", m."threadId", r.user_id, r.emoji, r.created_at
        FROM message_reactions_unpartitioned r JOIN thread_messages m ON m.id = r.message_id
        ON CONFLICT (message_id, user_id, emoji, message_created_at, tenant_id) DO NOTHING;
    END IF;
END $$;
