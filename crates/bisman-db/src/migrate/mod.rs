//! Numbered SQL migrations embedded in the binary, and the migrator.
//!
//! Why not `sqlx::migrate!`: the P3 migration builds its indexes with
//! `CREATE INDEX CONCURRENTLY` so that an ERP with data keeps writing, which
//! needs each statement sent on its own outside a transaction, and an index
//! left INVALID by an interrupted run rebuilt. sqlx's migrator sends a
//! migration as one query string, which PostgreSQL runs as one implicit
//! transaction, so it cannot do either.
//!
//! A migration is a list of steps. Concurrent steps run first, statement by
//! statement, and are idempotent (`IF NOT EXISTS`, invalid indexes rebuilt);
//! then all transactional steps run in one transaction together with the
//! ledger row, so a migration is recorded exactly when it fully applied, and a
//! failed run can simply be run again.

mod catalog;
mod runner;
mod statements;

use sha2::{Digest, Sha256};

pub use catalog::{BASELINE_VERSION, MIGRATIONS};
pub use runner::{AppliedMigration, MigrationState, MigrationStatus, Migrator, Progress};

/// One step of a migration.
#[derive(Debug)]
pub enum Step {
    /// Plain statements run one by one outside a transaction (index builds).
    Concurrent {
        /// File the step comes from, relative to `migrations/`.
        file: &'static str,
        /// Its SQL.
        sql: &'static str,
    },
    /// SQL run inside the migration's transaction.
    Transactional {
        /// File the step comes from, relative to `migrations/`.
        file: &'static str,
        /// Its SQL.
        sql: &'static str,
    },
}

impl Step {
    /// The step's SQL text.
    pub fn sql(&self) -> &'static str {
        match self {
            Step::Concurrent { sql, .. } | Step::Transactional { sql, .. } => sql,
        }
    }

    /// The file the step comes from.
    pub fn file(&self) -> &'static str {
        match self {
            Step::Concurrent { file, .. } | Step::Transactional { file, .. } => file,
        }
    }
}

/// A numbered migration.
#[derive(Debug)]
pub struct Migration {
    /// Its number; migrations apply in increasing order.
    pub version: i32,
    /// A short snake_case name.
    pub name: &'static str,
    /// What it runs.
    pub steps: &'static [Step],
}

impl Migration {
    /// SHA-256 of all its SQL, recorded when applied: a database whose
    /// recorded checksum differs was migrated by a different binary.
    pub fn checksum(&self) -> String {
        let mut hasher = Sha256::new();
        for step in self.steps {
            hasher.update(step.file().as_bytes());
            hasher.update([0]);
            hasher.update(step.sql().as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// What can go wrong while migrating.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database holds a migration this binary does not know.
    #[error(
        "the database has migration {version} ({name}), which this bisman binary does not know \
         (it knows up to {known}); use a bisman at least as new as the one that migrated it"
    )]
    UnknownMigration {
        /// The unknown version.
        version: i32,
        /// Its recorded name.
        name: String,
        /// The newest version this binary knows.
        known: i32,
    },
    /// An applied migration's SQL differs from this binary's.
    #[error(
        "migration {version} ({name}) was applied from different SQL than this binary carries \
         (recorded checksum {recorded}, expected {expected}); refusing to continue"
    )]
    ChecksumMismatch {
        /// The migration's version.
        version: i32,
        /// Its name.
        name: String,
        /// Checksum recorded in the database.
        recorded: String,
        /// Checksum of this binary's SQL.
        expected: String,
    },
    /// The requested target version does not exist.
    #[error("there is no migration {0}")]
    UnknownTarget(i32),
    /// A step failed.
    #[error("migration {version} ({name}), {file}: {source}")]
    Step {
        /// The migration's version.
        version: i32,
        /// Its name.
        name: &'static str,
        /// The step's file.
        file: &'static str,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// A concurrent step is malformed (a bug in this binary).
    #[error("migration {file}: {reason}")]
    Malformed {
        /// The step's file.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Any other database error.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_names_are_snake_case() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "{} out of order", m.version);
            last = m.version;
            assert!(m
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            assert!(!m.steps.is_empty());
            let prefix = format!("{:03}_", m.version);
            assert!(
                m.steps.iter().all(|s| s.file().starts_with(&prefix)),
                "{}",
                m.name
            );
        }
        assert!(MIGRATIONS.iter().any(|m| m.version == BASELINE_VERSION));
    }

    #[test]
    fn concurrent_steps_split_cleanly() {
        for m in MIGRATIONS {
            for step in m.steps {
                if let Step::Concurrent { sql, .. } = step {
                    let parts = statements::split(sql).unwrap();
                    assert!(parts
                        .iter()
                        .all(|p| statements::concurrent_index_name(p).is_some()));
                }
            }
        }
    }
}
