//! The `ipscan` command line: the clap definitions of each command beside what it does, one
//! module per command (`run`, `replay`, `tables` for block/allow/stats, `top`, `check`), and
//! `generate` (manual pages and completions for packages), which is not part of it.

mod check;
mod generate;
mod replay;
mod run;
mod tables;
pub mod top;

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::kernel::{loader, pins};

/// Kernel-accelerated network scan detector and blocker (XDP), iplog-compatible logs.
#[derive(Parser, Debug)]
#[command(name = "ipscan", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Attach to interfaces and log detections until SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// Run a capture's frames through the XDP program on the capture's clock and log what
    /// `ipscan run` would have logged for that traffic.
    Replay(replay::ReplayArgs),
    /// Show or change the blocklist of running daemons (pinned maps).
    Block(tables::BlockArgs),
    /// Show or change the allowlist of running daemons (pinned maps).
    Allow(tables::AllowArgs),
    /// Live view of sources in a scan or flood mode, blocks and packet rates, from the running
    /// daemons' pinned maps; q, Esc or Ctrl-C quits.
    Top(top::TopArgs),
    /// Show the kernel's counters and map occupancy of running daemons (pinned maps).
    Stats(tables::StatsArgs),
    /// Check that this kernel accepts the XDP program (loaded, not attached), and show what
    /// verifying it costs, function by function; fails when refused or above the budget.
    Check(check::CheckArgs),
}

/// Where the running daemons are, for the commands that read or change their maps.
#[derive(clap::Args, Clone, Debug)]
pub struct Daemons {
    /// Interface whose daemon to act on (repeat for several). Default: every interface that has
    /// pinned ipscan state.
    #[arg(long = "iface", short = 'i', global = true)]
    pub ifaces: Vec<String>,
    /// Root of the daemons' pinned maps.
    #[arg(long, global = true, default_value = pins::DEFAULT_PIN_ROOT)]
    pub pin_root: PathBuf,
    /// Directory of the daemons' lock files.
    #[arg(long, global = true, default_value = pins::LOCK_DIR, hide = true)]
    pub lock_dir: PathBuf,
}

impl Daemons {
    /// The interfaces asked for (every one with pinned state when none is), each checked to
    /// have its pin directory.
    pub fn ifaces(&self) -> Result<Vec<String>, pins::PinError> {
        pins::with_state(&self.pin_root, &self.ifaces)
    }

    /// The pin directory of `iface`.
    pub fn dir(&self, iface: &str) -> PathBuf {
        pins::iface_dir(&self.pin_root, iface)
    }

    /// Whether a daemon runs on `iface`.
    pub fn running(&self, iface: &str) -> bool {
        pins::daemon_running(&self.lock_dir, iface)
    }
}

/// The clap definition of the whole command line (for generated manual pages and completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command line; errors are one line on standard error.
pub fn main() -> ExitCode {
    // `ipscan generate ...` has a parser of its own, so that neither --help nor the completions
    // it writes offer it.
    let result = if std::env::args_os().nth(1).is_some_and(|a| a == generate::NAME) {
        generate::generate(std::env::args_os().skip(1)).map(|()| ExitCode::SUCCESS)
    } else {
        dispatch(Cli::parse())
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ipscan: {}", loader::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => replay::replay(args).map(|()| ExitCode::SUCCESS),
        Command::Block(args) => tables::block(args).map(|()| ExitCode::SUCCESS),
        Command::Allow(args) => tables::allow(args).map(|()| ExitCode::SUCCESS),
        Command::Top(args) => top::command(args).map(|()| ExitCode::SUCCESS),
        Command::Stats(args) => tables::stats(args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => check::check(args),
    }
}
