//! Idempotent installation of the build and test prerequisites, one progress line per step.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::{run, step};

/// bpf-linker release known to work with this nightly's LLVM.
const BPF_LINKER_VERSION: &str = "0.10.4";

/// cargo-deb release that builds the Debian package (`cargo xtask deb`).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Debian packages the end-to-end tests drive, and what building and checking the Debian
/// package needs (dpkg-shlibdeps and strip; man to render the pages).
const APT_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "nmap",
    "hping3",
    "tcpdump",
    "traceroute",
    "python3-scapy",
    "tmux",
    "dpkg-dev",
    "man-db",
    "crowdsec",
];

/// Debian's crowdsec registers with the Central API while it installs, which fails offline
/// (exit 100), unless this file is non-empty beforehand (its README.Debian). The tests run a
/// LAPI of their own, with its own configuration; the system's is not used.
const CROWDSEC_CAPI: &str = "/etc/crowdsec/online_api_credentials.yaml";

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The nightly toolchain (the eBPF build and cargo-fuzz need it).
pub fn nightly() -> anyhow::Result<()> {
    step("checking the nightly toolchain");
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup is not installed: install it from your distribution or rustup.rs")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        step("installing the nightly toolchain");
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))
            .context("installing the nightly toolchain failed (network?)")?;
    }
    Ok(())
}

/// What building needs: nightly with rust-src, and bpf-linker.
pub fn setup_build() -> anyhow::Result<()> {
    nightly()?;
    let components =
        output(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", "nightly"]))
            .unwrap_or_default();
    if components.lines().any(|l| l.starts_with("rust-src")) {
        step("rust-src for nightly: present");
    } else {
        step("installing rust-src for nightly");
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"])).context(
            "`rustup component add rust-src --toolchain nightly` failed; the eBPF crate needs it for -Z build-std=core",
        )?;
    }
    let linker = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if linker.contains(BPF_LINKER_VERSION) {
        step(&format!("bpf-linker {BPF_LINKER_VERSION}: present"));
    } else {
        step(&format!("installing bpf-linker {BPF_LINKER_VERSION} (about a minute)"));
        run(Command::new("cargo").args(["install", "--locked", &format!("bpf-linker@{BPF_LINKER_VERSION}")]))
            .context("`cargo install bpf-linker` failed")?;
    }
    if !quiet_ok(Command::new("bpf-linker").arg("--version")) {
        bail!("bpf-linker is installed but not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok(())
}

/// cargo-deb, for `cargo xtask deb`.
pub fn cargo_deb() -> anyhow::Result<()> {
    let version = output(Command::new("cargo").args(["deb", "--version"])).unwrap_or_default();
    if version.contains(CARGO_DEB_VERSION) {
        step(&format!("cargo-deb {CARGO_DEB_VERSION}: present"));
        return Ok(());
    }
    step(&format!("installing cargo-deb {CARGO_DEB_VERSION} (a few minutes)"));
    run(Command::new("cargo").args(["install", "--locked", &format!("cargo-deb@{CARGO_DEB_VERSION}")]))
        .context("`cargo install cargo-deb` failed")
}

/// Everything: build prerequisites and the test tools.
pub fn setup() -> anyhow::Result<()> {
    setup_build()?;
    cargo_deb()?;
    step("checking test tools (apt)");
    apt_install(APT_PACKAGES, "the end-to-end tests drive them")
}

/// What `cargo xtask bench --peers` runs besides ipscan: psad (fed by iptables LOG rules) and
/// bpftool (the XDP program's run time).
pub const PEER_PACKAGES: &[&str] = &["psad", "iptables", "bpftool"];

/// Installs those of `packages` that are missing with apt-get (`why`: what needs them).
pub fn apt_install(packages: &[&str], why: &str) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        step(&format!("{}: present", packages.join(" ")));
        return Ok(());
    }
    step(&format!("installing {} with apt-get ({why}; `--no-setup` skips this step)", missing.join(" ")));
    let sudo = |args: &[&str]| {
        // SAFETY: no arguments.
        let mut c = if unsafe { libc::geteuid() } == 0 {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        c.args(&args[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    if missing.contains(&"crowdsec") && std::fs::metadata(CROWDSEC_CAPI).map_or(true, |m| m.len() == 0) {
        step(&format!("writing {CROWDSEC_CAPI} (no Central API registration: the machine may be offline)"));
        std::fs::create_dir_all("/etc/crowdsec").context("creating /etc/crowdsec")?;
        std::fs::write(CROWDSEC_CAPI, "# Written by ipscan's `cargo xtask setup`: no Central API registration.\n")
            .with_context(|| format!("writing {CROWDSEC_CAPI}"))?;
    }
    run(&mut sudo(&["apt-get", "update", "-q"])).context("apt-get update failed")?;
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    run(&mut sudo(&install)).with_context(|| format!("installing {} failed", missing.join(" ")))?;
    Ok(())
}
