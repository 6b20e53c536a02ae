//! `cargo xtask deb [--check]`: the Debian package (cargo-deb, metadata in ipscan-user's
//! Cargo.toml), and a check of what it installs, in a scratch root, without installing it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, bail, ensure};

use crate::{cargo, is_root, privileged, run, setup, step, workspace_root};

/// The commands of `ipscan`, each with a manual page of its own.
const COMMANDS: &[&str] = &["run", "replay", "block", "allow", "top", "stats", "check"];

/// Where the package puts things (`dpkg-deb -c` must list each).
const PATHS: &[&str] = &[
    "./usr/sbin/ipscan",
    "./usr/lib/systemd/system/ipscan.service",
    "./etc/ipscan/ipscan.conf",
    "./usr/share/ipscan/ossec/ipscan-block.sh",
    "./usr/share/ipscan/ossec/ipscan_decoders.xml",
    "./usr/share/ipscan/ossec/ipscan_rules.xml",
    "./usr/share/ipscan/ossec/ipscan_json_rules.xml",
    "./usr/share/ipscan/ossec/README.md",
    "./usr/share/man/man8/ipscan.8.gz",
    "./usr/share/man/man8/ipscan-block-add.8.gz",
    "./usr/share/bash-completion/completions/ipscan",
    "./usr/share/zsh/vendor-completions/_ipscan",
    "./usr/share/fish/vendor_completions.d/ipscan.fish",
    "./usr/share/doc/ipscan/README.md",
    "./usr/share/doc/ipscan/CHANGELOG.md",
    "./usr/share/doc/ipscan/copyright",
];

/// The capture the check replays with the packaged configuration.
const CAPTURE: &str = "tests/data/nmap-sS-v4.pcap";

pub fn deb(check: bool) -> anyhow::Result<()> {
    let deb = build()?;
    if check {
        self::check(&deb)?;
    }
    println!("{}", deb.display());
    Ok(())
}

/// Builds the release binary, its manual pages and completions, then the package; returns the
/// path of the .deb.
pub fn build() -> anyhow::Result<PathBuf> {
    setup::setup_build()?;
    setup::cargo_deb()?;
    let bin = crate::build(true)?;
    // cargo-deb resolves "target/release/..." assets to the build's target directory.
    let assets = workspace_root().join("target/release/deb-assets");
    if assets.exists() {
        fs::remove_dir_all(&assets).with_context(|| format!("cannot remove {}", assets.display()))?;
    }
    step("writing the manual pages and completions (ipscan generate)");
    let man = assets.join("man");
    run(Command::new(&bin).arg("generate").arg("man").arg(&man).stdout(Stdio::null()))?;
    for page in fs::read_dir(&man).with_context(|| format!("cannot list {}", man.display()))? {
        // -n: no name or time stamp in the header, so the same pages make the same bytes.
        run(Command::new("gzip").args(["-9nf"]).arg(page?.path()))?;
    }
    run(Command::new(&bin).arg("generate").arg("completions").arg(assets.join("completions")).stdout(Stdio::null()))?;
    step("building the package (cargo deb)");
    let out = cargo()
        .args(["deb", "-p", "ipscan-user", "--no-build"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo deb")?;
    if !out.status.success() {
        bail!("cargo deb failed: {}", out.status);
    }
    // cargo-deb prints the package's path last.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout.lines().rev().find(|l| l.trim_end().ends_with(".deb")).map(|l| PathBuf::from(l.trim()));
    match deb {
        Some(deb) if deb.is_file() => Ok(deb),
        _ => bail!("cargo deb printed no package path: {stdout}"),
    }
}

fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    Ok(String::from_utf8_lossy(&output(cmd)?.stdout).into_owned())
}

/// Unpacks `deb` into a scratch root under target/ and checks what a machine would get: the
/// metadata and maintainer scripts, every file, the binary's help, the manual pages as `man`
/// renders them, the completions, the unit under `systemd-analyze verify`, and that the packaged
/// configuration keeps the default behaviour on a capture.
pub fn check(deb: &Path) -> anyhow::Result<()> {
    step(&format!("checking {}", deb.display()));
    let scratch = workspace_root().join("target/deb-check");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    let root = scratch.join("root");
    let control = scratch.join("control");
    fs::create_dir_all(&root)?;

    // Metadata: `dpkg-deb -I`, then the control archive itself.
    let info = stdout(Command::new("dpkg-deb").arg("-I").arg(deb))?;
    let field = |name: &str| {
        info.lines().find_map(|l| l.trim_start().strip_prefix(&format!("{name}: "))).unwrap_or("").to_owned()
    };
    ensure!(field("Package") == "ipscan", "Package: {}", field("Package"));
    ensure!(field("Section") == "net", "Section: {}", field("Section"));
    let depends = field("Depends");
    for package in ["libc6", "adduser", "procps"] {
        ensure!(depends.contains(package), "Depends: {depends} (no {package})");
    }
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control))?;
    let conffiles = fs::read_to_string(control.join("conffiles")).context("no conffiles")?;
    ensure!(conffiles.lines().any(|l| l == "/etc/ipscan/ipscan.conf"), "conffiles: {conffiles}");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let text = fs::read_to_string(&path).with_context(|| format!("no {script}"))?;
        run(Command::new("sh").arg("-n").arg(&path)).with_context(|| format!("{script} is not valid sh"))?;
        // Installing starts nothing (a chroot or a machine being set up has no daemon to start).
        ensure!(!text.contains("_dh_action=start") && !text.contains("invoke start"), "{script} starts ipscan");
    }
    let postinst = fs::read_to_string(control.join("postinst"))?;
    ensure!(postinst.contains("adduser --system") && !postinst.contains("#DEBHELPER#"), "postinst: {postinst}");

    // Files.
    let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    let listed: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().nth(5)).collect();
    for path in PATHS {
        ensure!(listed.contains(path), "{path} is not in the package:\n{listing}");
    }
    for command in COMMANDS {
        let page = format!("./usr/share/man/man8/ipscan-{command}.8.gz");
        ensure!(listed.contains(&page.as_str()), "{page} is not in the package");
    }
    ensure!(!listed.iter().any(|p| p.contains("generate")), "a page or file for `generate`:\n{listing}");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    let bin = root.join("usr/sbin/ipscan");

    // The binary.
    let help = stdout(Command::new(&bin).arg("--help"))?;
    for command in COMMANDS {
        ensure!(help.lines().any(|l| l.trim_start().starts_with(command)), "`ipscan --help` lacks {command}:\n{help}");
    }
    ensure!(!help.contains("generate"), "`ipscan --help` offers generate:\n{help}");
    let run_help = stdout(Command::new(&bin).args(["run", "--help"]))?;
    ensure!(run_help.contains("--config"), "`ipscan run --help`:\n{run_help}");

    // Manual pages, rendered by man-db as `man ipscan` would, without a warning.
    let pages = root.join("usr/share/man/man8");
    let mut top = String::new();
    for entry in fs::read_dir(&pages)? {
        let page = entry?.path();
        let out = output(
            Command::new("man").args(["--warnings", "-l"]).arg(&page).env("MANWIDTH", "100").env("MANPAGER", "cat"),
        )?;
        let warnings = String::from_utf8_lossy(&out.stderr);
        ensure!(warnings.trim().is_empty(), "man {}: {warnings}", page.display());
        ensure!(!out.stdout.is_empty(), "man {} rendered nothing", page.display());
        if page.ends_with("ipscan.8.gz") {
            top = String::from_utf8_lossy(&out.stdout).into_owned();
        }
    }
    for command in COMMANDS {
        ensure!(top.contains(&format!("ipscan-{command}(8)")), "ipscan(8) does not name ipscan-{command}(8):\n{top}");
    }
    ensure!(top.contains("/etc/ipscan/ipscan.conf"), "ipscan(8) has no FILES section:\n{top}");

    // Completions: bash's parses; each offers the commands.
    let completions = [
        "usr/share/bash-completion/completions/ipscan",
        "usr/share/zsh/vendor-completions/_ipscan",
        "usr/share/fish/vendor_completions.d/ipscan.fish",
    ];
    for file in completions {
        let text = fs::read_to_string(root.join(file)).with_context(|| format!("cannot read {file}"))?;
        ensure!(COMMANDS.iter().all(|c| text.contains(c)) && !text.contains("generate"), "{file}");
    }
    run(Command::new("bash").arg("-n").arg(root.join(completions[0])))?;

    // The unit: it runs the packaged binary with the packaged configuration, and systemd accepts
    // it. `systemd-analyze verify` checks that ExecStart's binary exists, and it does only in the
    // scratch root: a copy points there.
    let unit_text = fs::read_to_string(root.join("usr/lib/systemd/system/ipscan.service"))?;
    let exec = unit_text.lines().find_map(|l| l.strip_prefix("ExecStart=")).context("no ExecStart")?;
    let words: Vec<&str> = exec.split_whitespace().collect();
    ensure!(words.first() == Some(&"/usr/sbin/ipscan"), "ExecStart: {exec}");
    let config = words.windows(2).find(|w| w[0] == "--config").map(|w| w[1]).context("ExecStart has no --config")?;
    ensure!(root.join(config.trim_start_matches('/')).is_file(), "{config} is not in the package");
    for option in words.iter().filter(|w| w.starts_with("--")) {
        ensure!(run_help.contains(option), "ExecStart option {option} unknown to `ipscan run`");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_ok() {
        let copy = scratch.join("ipscan.service");
        fs::write(&copy, unit_text.replace("=/usr/sbin/ipscan ", &format!("={} ", bin.display())))?;
        let out = output(Command::new("systemd-analyze").arg("verify").arg(&copy))?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(err.trim().is_empty(), "systemd-analyze verify: {err}");
    } else {
        step("systemd-analyze not installed: the unit is not verified");
    }

    // The packaged configuration is the default behaviour: replaying a capture with it writes
    // what replaying without it writes (BPF_PROG_TEST_RUN: root).
    let capture = workspace_root().join(CAPTURE);
    let replay = |config: Option<&Path>| -> anyhow::Result<Vec<u8>> {
        let mut c = privileged(&bin);
        c.env("TZ", "UTC").arg("replay").arg(&capture);
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        Ok(output(&mut c)?.stdout)
    };
    if is_root() || Command::new("sudo").args(["-n", "true"]).status().is_ok_and(|s| s.success()) {
        let with = replay(Some(&root.join("etc/ipscan/ipscan.conf")))?;
        let without = replay(None)?;
        ensure!(!with.is_empty() && with == without, "the packaged configuration changes what is logged");
    } else {
        step("not root: the packaged configuration is not replayed");
    }
    step("package: metadata, files, --help, man pages, completions and unit check out");
    Ok(())
}
