//! `cargo xtask`: set-up, build, run, test, bench and packaging orchestration. No product logic
//! here.

mod deb;
mod fuzz;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (idempotent): nightly rust-src, bpf-linker,
    /// cargo-deb, apt packages for the end-to-end tests and the package check.
    Setup,
    /// Build the eBPF object and the `ipscan` binary.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build and run `ipscan run ARGS...` (as root; with no --iface, the default route's NIC).
    Run {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
        /// Skip the set-up step (the toolchain's rust-src and bpf-linker already installed).
        #[arg(long)]
        no_setup: bool,
        /// Arguments for `ipscan run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run every test: host unit tests, then the root-only kernel and
    /// end-to-end tests one at a time, then the Debian package's check (`deb --check`).
    Test {
        /// Only run tests whose name contains this filter.
        filter: Option<String>,
        /// Skip the set-up step (tools already installed).
        #[arg(long)]
        no_setup: bool,
        /// Skip the bounded fuzzing run (also skipped when a filter is given).
        #[arg(long)]
        no_fuzz: bool,
        /// Skip building and checking the Debian package (also skipped when a filter is given).
        #[arg(long)]
        no_deb: bool,
    },
    /// Run the cargo-fuzz targets of fuzz/ (parse, rules, config), each for a bounded time,
    /// after writing their seed corpora (installs cargo-fuzz if missing). A crash fails with
    /// the path of the input.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Only this target (parse, rules or config).
        target: Option<String>,
    },
    /// Set up, build and run the benchmark (as root): per-packet cost, throughput on a veth
    /// pair and state exhaustion, as ratios against empty XDP programs measured in the same run.
    /// Prints a table and writes it as JSON.
    Bench {
        /// A few-second run (tiny repeats and floods) that only checks every row is produced.
        #[arg(long)]
        smoke: bool,
        /// Where to write the JSON (default: target/bench/bench.json in the workspace).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Skip the set-up step (tools already installed).
        #[arg(long)]
        no_setup: bool,
        /// Run only these sections, comma-separated: per-packet, throughput, exhaustion, block,
        /// feeds.
        #[arg(long)]
        only: Option<String>,
        /// Instead: ipscan against psad and a tcpdump capture on the same traffic (needs the
        /// psad package; JSON default: target/bench/peers.json).
        #[arg(long, conflicts_with = "only")]
        peers: bool,
        /// Rounds of the per-packet section (default 15): fewer for a quick comparison.
        #[arg(long)]
        rounds: Option<u32>,
    },
    /// Build the Debian package (release binary, unit, /etc/ipscan/ipscan.conf, OSSEC files,
    /// manual pages and completions; installs cargo-deb if missing) and print its path.
    Deb {
        /// Then check it: unpack it into a scratch root under target/deb-check and check the
        /// metadata, the files, `ipscan --help`, `man` on every page, the completions and
        /// `systemd-analyze verify` on the unit (installs nothing on this machine).
        #[arg(long)]
        check: bool,
    },
    /// Check the format (rustfmt), then run clippy on the host crates and on the eBPF crates
    /// (ipscan's and the bench's) for the BPF target.
    Clippy,
    /// Run `ipscan check` and the replay golden tests on this machine's kernel and on Debian's
    /// other kernels (6.1, 6.12), each booted under QEMU with virtme-ng (as root; installs
    /// QEMU, virtme-ng and the kernel packages under target/vm), then print a table.
    Vm {
        /// Only this kernel (repeat for several): 6.1 or 6.12.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Skip installing QEMU and virtme-ng (already there).
        #[arg(long)]
        no_setup: bool,
    },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// Runs a command, failing with its description if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: no arguments.
    unsafe { libc::geteuid() == 0 }
}

/// Prefixes `sudo -E` when not root: only the commands that need privilege get it.
fn privileged(program: &Path) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(program);
        c
    }
}

fn build(release: bool) -> anyhow::Result<PathBuf> {
    step("building the eBPF object and ipscan");
    let mut c = cargo();
    c.args(["build", "-p", "ipscan-user"]);
    if release {
        c.arg("--release");
    }
    run(&mut c)?;
    Ok(workspace_root().join("target").join(if release { "release" } else { "debug" }).join("ipscan"))
}

/// One progress line per step.
pub fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Builds the test binaries of `packages` and returns their paths.
fn test_binaries(packages: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut c = cargo();
    c.arg("test");
    for p in packages {
        c.args(["-p", p]);
    }
    let out = c
        .args(["--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests of {} failed", packages.join(", "));
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact"
            && v["profile"]["test"] == true
            && let Some(exe) = v["executable"].as_str()
        {
            bins.push(PathBuf::from(exe));
        }
    }
    Ok(bins)
}

/// Seconds per fuzz target in `cargo xtask test` (three targets: about a minute in all, plus
/// the build).
const TEST_FUZZ_SECONDS: u64 = 20;

fn test(filter: Option<String>, no_setup: bool, no_fuzz: bool, no_deb: bool) -> anyhow::Result<()> {
    if !no_setup {
        setup::setup()?;
    }
    let bin = build(false)?;
    step("host unit tests (ipscan-common, ipscan-user, xtask)");
    let mut c = cargo();
    c.args(["test", "-p", "ipscan-common", "-p", "ipscan-user", "-p", "xtask"]);
    if let Some(f) = &filter {
        c.arg(f);
    }
    run(&mut c)?;
    if no_fuzz || filter.is_some() {
        step("fuzzing: skipped");
    } else {
        fuzz::fuzz(TEST_FUZZ_SECONDS, None)?;
    }
    step("kernel and end-to-end tests, then the bench's (root, one at a time)");
    // Every test file runs even after a failure, so one report shows all of them. The bench's
    // smoke run (bench/tests/smoke.rs) checks that every row of `cargo xtask bench` is produced.
    let mut failed = Vec::new();
    for test_bin in test_binaries(&["ipscan-tests", "ipscan-bench"])? {
        let mut c = privileged(&test_bin);
        c.env("IPSCAN_BIN", &bin).arg("--test-threads=1");
        if let Some(f) = &filter {
            c.arg(f);
        }
        if let Err(e) = run(&mut c) {
            eprintln!("==> FAILED: {e}");
            failed.push(test_bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        }
    }
    if no_deb || filter.is_some() {
        step("Debian package: skipped");
    } else if let Err(e) = deb::deb(true) {
        eprintln!("==> FAILED: {e:#}");
        failed.push("the Debian package (cargo xtask deb --check)".into());
    }
    if !failed.is_empty() {
        bail!("failing test files: {}", failed.join(", "));
    }
    Ok(())
}

fn bench(
    smoke: bool,
    json: Option<PathBuf>,
    no_setup: bool,
    only: Option<String>,
    peers: bool,
    rounds: Option<u32>,
) -> anyhow::Result<()> {
    if !no_setup {
        setup::setup()?;
        if peers {
            setup::apt_install(setup::PEER_PACKAGES, "the peers the bench runs ipscan against")?;
        }
    }
    // The peers are compared on CPU time with the daemon as users run it: the release build.
    let bin = build(peers)?;
    step("building ipscan-bench and the benchmark's eBPF objects");
    run(cargo().args(["build", "-p", "ipscan-bench"]))?;
    let bench = workspace_root().join("target/debug/ipscan-bench");
    // A relative --json is relative to where xtask was started (cargo runs it from there).
    let json = match json {
        Some(p) => std::env::current_dir().context("current directory")?.join(p),
        None => workspace_root().join(if peers { "target/bench/peers.json" } else { "target/bench/bench.json" }),
    };
    step(&format!("running the benchmark{} (root)", if smoke { " (smoke)" } else { "" }));
    let mut c = privileged(&bench);
    c.env("IPSCAN_BIN", &bin).arg("--json").arg(&json);
    if smoke {
        c.arg("--smoke");
    }
    if let Some(only) = only {
        c.arg("--only").arg(only);
    }
    if peers {
        c.arg("--peers");
    }
    if let Some(r) = rounds {
        c.arg("--rounds").arg(r.to_string());
    }
    run(&mut c)
}

fn clippy() -> anyhow::Result<()> {
    step("format: cargo fmt --check (workspace and fuzz targets, rustfmt.toml)");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(workspace_root().join("fuzz")).args(["fmt", "--check"]))?;
    step("clippy: host crates");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "ipscan-ebpf",
        "--exclude",
        "ipscan-bench-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("clippy: ipscan-ebpf and ipscan-bench-ebpf for bpfel-unknown-none");
    // The rustup proxy, not $CARGO (the stable toolchain's own cargo knows no `+nightly`).
    run(Command::new("cargo").current_dir(workspace_root()).args([
        "+nightly",
        "clippy",
        "-p",
        "ipscan-ebpf",
        "-p",
        "ipscan-bench-ebpf",
        "-Z",
        "build-std=core",
        "--target",
        "bpfel-unknown-none",
        "--",
        "-D",
        "warnings",
    ]))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Build { release } => build(release).map(|_| ()),
        Cmd::Run { release, no_setup, args } => {
            if !no_setup {
                setup::setup_build()?;
            }
            let bin = build(release)?;
            step(&format!("running {} run {}", bin.display(), args.join(" ")));
            let mut c = privileged(&bin);
            c.arg("run").args(&args);
            run(&mut c)
        }
        Cmd::Test { filter, no_setup, no_fuzz, no_deb } => test(filter, no_setup, no_fuzz, no_deb),
        Cmd::Fuzz { seconds, target } => fuzz::fuzz(seconds, target.as_deref()),
        Cmd::Bench { smoke, json, no_setup, only, peers, rounds } => bench(smoke, json, no_setup, only, peers, rounds),
        Cmd::Deb { check } => deb::deb(check),
        Cmd::Clippy => clippy(),
        Cmd::Vm { kernels, no_setup } => vm::vm(&kernels, no_setup),
    }
}
