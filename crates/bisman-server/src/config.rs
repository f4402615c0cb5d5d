//! Configuration of `bisman serve`: one typed struct, each field a flag with
//! an environment variable. The README's configuration table lists them.

/// Options of `bisman serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "BISMAN_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Seed a demo tenant (idempotent) and print a walk-through.
    #[arg(long, env = "BISMAN_DEMO")]
    pub demo: bool,
}
