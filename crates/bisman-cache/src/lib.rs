//! Session and permission caches (see the crate README).
