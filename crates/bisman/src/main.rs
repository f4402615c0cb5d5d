//! The `bisman` binary. Everything lives in the library; see `bisman::cli`.

fn main() -> std::process::ExitCode {
    bisman::cli::main()
}
