//! The BISMAN ERP's JSONB read receipts (`thread_messages."readBy"`) and
//! reactions (`thread_messages.reactions`), parsed in Rust by exactly the
//! rules of the SQL that normalises them (migration 012 step 3 and the
//! mirror functions of migration 013).
//!
//! PostgreSQL stays the place where normalisation happens. This crate is its
//! executable specification: the differential property test
//! (`tests/differential.rs`) feeds generated entries to both and demands the
//! same answer (and that the SQL never raises an error), and the cargo-fuzz
//! targets in the repository's `fuzz/` folder run these functions on
//! arbitrary bytes.
//!
//! - [`timestamp`]: `bisman_try_timestamp`, strict ISO-8601 or nothing.
//! - [`user_id`]: `bisman_json_user_id`, a positive 32-bit integer or nothing.
//! - [`entries`]: why an entry cannot be normalised
//!   (`bisman_read_entry_problem`, `bisman_reaction_entry_problem`) and the
//!   entries of a reactions column in either shape (`bisman_reaction_entries`).
//! - [`valid`]: the rows a column normalises to (`bisman_valid_reads`,
//!   `bisman_valid_reactions`).
//!
//! One known difference: JSON numbers are held as `serde_json` holds them
//! (i64, u64 or f64), so a user id written with more than about 15
//! significant digits (`1.0000000000000000001`) may be judged integral here
//! while PostgreSQL's exact `numeric` says it is not.

pub mod entries;
pub mod timestamp;
pub mod user_id;
pub mod valid;

pub use entries::{reaction_entries, reaction_entry_problem, read_entry_problem, Problem};
pub use timestamp::try_timestamp;
pub use user_id::json_user_id;
pub use valid::{valid_reactions, valid_reads, ValidReaction, ValidRead};
