//! The migrations embedded in the binary, in order.

use super::{Migration, Step};

macro_rules! sql {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $file)),
        )
    };
}

macro_rules! tx {
    ($file:literal) => {{
        let (file, sql) = sql!($file);
        Step::Transactional { file, sql }
    }};
}

macro_rules! concurrent {
    ($file:literal) => {{
        let (file, sql) = sql!($file);
        Step::Concurrent { file, sql }
    }};
}

/// Every migration this binary knows, oldest first.
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tenants",
        steps: &[tx!("001_tenants.sql")],
    },
    Migration {
        version: 2,
        name: "users_and_super_admins",
        steps: &[tx!("002_users_and_super_admins.sql")],
    },
    Migration {
        version: 3,
        name: "modules_and_pages",
        steps: &[tx!("003_modules_and_pages.sql")],
    },
    Migration {
        version: 4,
        name: "roles_and_permissions",
        steps: &[tx!("004_roles_and_permissions.sql")],
    },
    Migration {
        version: 5,
        name: "user_sessions",
        steps: &[tx!("005_user_sessions.sql")],
    },
    Migration {
        version: 6,
        name: "threads",
        steps: &[tx!("006_threads.sql")],
    },
    Migration {
        version: 7,
        name: "thread_messages",
        steps: &[tx!("007_thread_messages.sql")],
    },
    Migration {
        version: 8,
        name: "client_usage_events",
        steps: &[tx!("008_client_usage_events.sql")],
    },
    Migration {
        version: 9,
        name: "expenses_and_approvals",
        steps: &[tx!("009_expenses_and_approvals.sql")],
    },
    Migration {
        version: 10,
        name: "audit_logs",
        steps: &[tx!("010_audit_logs.sql")],
    },
    Migration {
        version: 11,
        name: "module_catalogue",
        steps: &[tx!("011_module_catalogue.sql")],
    },
    Migration {
        version: 12,
        name: "p3_scaling_performance",
        steps: &[
            concurrent!("012_p3_scaling_performance/1_indexes.concurrent.sql"),
            tx!("012_p3_scaling_performance/2_partitioning.sql"),
            tx!("012_p3_scaling_performance/3_normalized_reads_reactions.sql"),
            tx!("012_p3_scaling_performance/4_permission_cache.sql"),
            tx!("012_p3_scaling_performance/5_monitoring.sql"),
            tx!("012_p3_scaling_performance/6_initial_partitions.sql"),
        ],
    },
    Migration {
        version: 13,
        name: "partition_lifecycle",
        steps: &[tx!("013_partition_lifecycle.sql")],
    },
    Migration {
        version: 14,
        name: "cache_invalidation_journal",
        steps: &[tx!("014_cache_invalidation_journal.sql")],
    },
    Migration {
        version: 15,
        name: "service",
        steps: &[tx!("015_service.sql")],
    },
    Migration {
        version: 16,
        name: "lifecycle_under_concurrency",
        steps: &[tx!("016_lifecycle_under_concurrency.sql")],
    },
];

/// The last baseline (pre-P3) migration: what an existing ERP database holds.
pub const BASELINE_VERSION: i32 = 11;
