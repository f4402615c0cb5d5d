//! Authentication: password hashing, the authenticated caller extracted
//! from `Authorization: Bearer <token>`, and login rate limiting.
//!
//! Tokens are parsed into [`bisman_cache::SessionToken`] (whose `Debug` is
//! redacted) at once and only their hash travels further; nothing here logs
//! a token or a password.

mod caller;
mod client;
pub mod login;
pub mod password;
mod rate_limit;

pub use caller::Caller;
pub use client::ClientAddr;
pub use rate_limit::LoginLimiter;
