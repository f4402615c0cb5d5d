//! SQL, in small named functions. Every function that reads or writes
//! tenant data takes the caller's tenant and filters by it, so an object of
//! another tenant is simply not found. Write functions that belong to a
//! larger change take the caller's transaction.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod messaging;
pub mod ops;
pub mod ops_page;
pub mod usage;
pub mod users;
