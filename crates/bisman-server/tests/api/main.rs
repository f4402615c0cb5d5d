//! In-process HTTP tests of every route (`tower::ServiceExt::oneshot`),
//! against a real PostgreSQL (a database per test) and, where a test says
//! so, a real Redis: happy paths, each 4xx, tenant isolation, permission
//! denial, bad input, and the maintenance scheduler.

mod common;

mod admin;
mod approvals_usage;
mod auth;
mod bad_input;
mod isolation;
mod messaging;
mod ops_health;
mod ops_page;
mod permissions;
mod scheduler;
