//! The `ipscan` command (the command line is `ipscan::cli`).

fn main() -> std::process::ExitCode {
    ipscan::cli::main()
}
