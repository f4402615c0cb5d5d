-- Thread messages as the ERP stores them today: camelCase columns (the ERP
-- uses Prisma), naive timestamps holding UTC, and read receipts and reactions
-- kept as JSONB arrays on the message row:
--   "readBy":   [{"userId": 123, "readAt": "2024-12-04T10:00:00Z"}, ...]
--   reactions:  [{"userId": 123, "emoji": "👍", "createdAt": "..."}, ...]
CREATE TABLE IF NOT EXISTS thread_messages (
    id            TEXT PRIMARY KEY,
    tenant_id     UUID NOT NULL,
    "threadId"    TEXT NOT NULL REFERENCES threads(id),
    "senderId"    INTEGER NOT NULL,
    content       TEXT NOT NULL,
    reactions     JSONB NOT NULL DEFAULT '[]'::jsonb,
    "readBy"      JSONB NOT NULL DEFAULT '[]'::jsonb,
    "isDeleted"   BOOLEAN NOT NULL DEFAULT false,
    "createdAt"   TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "updatedAt"   TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
