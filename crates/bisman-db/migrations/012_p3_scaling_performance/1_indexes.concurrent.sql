-- P3 step 1: the spec's indexes on the live tables.
--
-- Built CONCURRENTLY so that an ERP with data keeps writing while they build.
-- The migrator runs each statement on its own, outside a transaction, and
-- drops and rebuilds an index that an interrupted earlier run left INVALID.
-- Only plain statements separated by semicolons belong in this file.

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_thread_messages_thread_created
    ON thread_messages ("threadId", "createdAt" DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_thread_messages_thread_not_deleted
    ON thread_messages ("threadId", "createdAt" DESC) WHERE "isDeleted" = false;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_thread_messages_sender_created
    ON thread_messages ("senderId", "createdAt" DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_thread_messages_reactions_gin
    ON thread_messages USING GIN (reactions);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_thread_messages_readby_gin
    ON thread_messages USING GIN ("readBy");
-- The target of the composite foreign keys from message_reads and
-- message_reactions (see step 2): (id, "createdAt", tenant_id) is what the
-- partitioned twin's primary key will be.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS thread_messages_id_created_tenant_key
    ON thread_messages (id, "createdAt", tenant_id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_client_usage_events_composite
    ON client_usage_events (tenant_id, event_type, user_id, occurred_at DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_client_usage_events_type_date
    ON client_usage_events (event_type, occurred_at DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_client_usage_events_user_date
    ON client_usage_events (user_id, occurred_at DESC);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_user_sessions_user_active
    ON user_sessions (user_id, expires_at) WHERE is_active AND revoked_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_user_sessions_expires
    ON user_sessions (expires_at);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_approvals_expense_status
    ON approvals (expense_id, status);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_approvals_approver_pending
    ON approvals (approver_id, created_at) WHERE status = 'PENDING';
