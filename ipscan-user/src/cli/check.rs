//! `ipscan check`: whether this kernel accepts the XDP program, and what verifying it costs.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use crate::kernel::{check, loader};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Fail when the whole program takes the verifier more processed instructions than this.
    #[arg(long, default_value_t = check::DEFAULT_BUDGET)]
    budget: u64,
    /// Fail when a function the kernel verifies on its own takes it more than this.
    #[arg(long, default_value_t = check::DEFAULT_FUNCTION_BUDGET)]
    function_budget: u64,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the kernel's whole verifier logs (every instruction walked, program by program) to
    /// this file, for a bug report. Verification is then much slower.
    #[arg(long, value_name = "FILE")]
    verifier_log: Option<PathBuf>,
}

pub(super) fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if !loader::has_bpf_privilege() {
        return Err(loader::privilege_error().into());
    }
    let _ = loader::raise_memlock();
    let (report, logs) = check::check(args.budget, args.function_budget, args.verifier_log.is_some())?;
    if let Some(path) = &args.verifier_log {
        let text: String = logs.iter().map(|(name, log)| format!("==> {name}\n{log}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", check::render(&report));
    }
    Ok(if report.within_budget() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
