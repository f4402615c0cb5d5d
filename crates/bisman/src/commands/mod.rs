//! One module per subcommand: its `Args` (clap) and its `run`.

pub mod bench;
pub mod cache;
pub mod loadtest;
pub mod migrate;
pub mod normalize;
pub mod partitions;
pub mod serve;
