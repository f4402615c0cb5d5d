//! Moving `thread_messages."readBy"` and `reactions` (JSONB) into
//! `message_reads` and `message_reactions` on a live database.
//!
//! This module owns the Rust side of `migrate_readby_to_normalized` /
//! `migrate_reactions_to_normalized` (migration `012`): it drives them in
//! batches of message ids with a checkpoint (`bisman_normalize_progress`, in
//! the same transaction as each batch), installs the mirror triggers of
//! migration `013` so that JSONB written while it runs (and until the
//! application stops writing JSONB) reaches the tables too, and compares
//! JSONB and tables ([`verify`]). It never modifies the JSONB columns;
//! malformed entries go to `normalization_quarantine` with the reason.

mod run;
mod verify;

use std::fmt;
use std::str::FromStr;

pub use run::{mirror, normalize, unmirror, NormalizeOptions, NormalizeReport};
pub use verify::{verify, Difference, VerifyReport};

/// Which JSONB column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `"readBy"` into `message_reads`.
    Reads,
    /// `reactions` into `message_reactions`.
    Reactions,
}

impl Kind {
    /// Both kinds.
    pub const ALL: [Kind; 2] = [Kind::Reads, Kind::Reactions];

    /// `reads` or `reactions`, as the SQL side spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reads => "reads",
            Kind::Reactions => "reactions",
        }
    }

    fn function(self) -> &'static str {
        match self {
            Kind::Reads => "migrate_readby_to_normalized",
            Kind::Reactions => "migrate_reactions_to_normalized",
        }
    }

    fn trigger(self) -> &'static str {
        match self {
            Kind::Reads => "bisman_mirror_reads",
            Kind::Reactions => "bisman_mirror_reactions",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Kind::Reads => "\"readBy\"",
            Kind::Reactions => "reactions",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = NormalizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reads" => Ok(Kind::Reads),
            "reactions" => Ok(Kind::Reactions),
            other => Err(NormalizeError::Invalid(format!(
                "unknown kind {other:?}: expected reads or reactions"
            ))),
        }
    }
}

/// What can go wrong while normalising.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// A lock was not granted in time, even after retries.
    #[error("{0}")]
    Locked(String),
    /// The database refused something.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<crate::lifecycle::LifecycleError> for NormalizeError {
    fn from(e: crate::lifecycle::LifecycleError) -> Self {
        match e {
            crate::lifecycle::LifecycleError::Database(e) => Self::Database(e),
            other => Self::Locked(other.to_string()),
        }
    }
}
