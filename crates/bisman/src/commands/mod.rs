//! One module per subcommand: its `Args` (clap) and its `run`.

pub mod migrate;
pub mod serve;
