//! `cargo xtask vm`: the verifier check (`ipscan check`) and the replay golden tests on other
//! kernels, each booted under QEMU with this machine's userspace (virtme-ng), as kernel
//! developers test and as aya's CI does with its own QEMU runner.
//!
//! The kernels are Debian's packages, downloaded with apt and unpacked under `target/vm/`
//! (never installed). QEMU runs in software emulation (`--disable-kvm`): a guest boots in about
//! half a minute. The guest sees the host's files read-only and writes its results into a
//! directory shared with the host (`--rwdir`). The namespace suite stays on the host.

use std::{
    cmp::Ordering,
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{cargo, run, step, test_binaries, workspace_root};

/// A kernel to boot: what to call it, and the Debian package that has it (the newest one whose
/// name matches; the package carries `boot/vmlinuz-*` and `lib/modules/*`).
struct Kernel {
    name: &'static str,
    package: fn(&str) -> bool,
}

/// The kernels tested besides the build machine's (the loader's `TESTED_KERNELS` names them
/// for users): Debian 12's, and Debian 13's as bookworm-backports carries it.
const KERNELS: [Kernel; 2] = [
    Kernel { name: "6.1", package: |p| matches_digits(p, "linux-image-6.1.0-", "-amd64") },
    Kernel { name: "6.12", package: |p| matches_digits(p, "linux-image-6.12.", "+deb12-amd64") },
];

/// `prefix`, then digits only, then `suffix`.
fn matches_digits(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|mid| !mid.is_empty() && mid.bytes().all(|b| b.is_ascii_digit()))
}

/// Debian packages the guests need on the host: QEMU, the guest's init (busybox), depmod, and
/// systemd-udevd (without it virtme-ng loses the guest's output and exit code).
const APT_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod", "udev"];

/// The virtme-ng release this was written against (PyPI).
const VIRTME_NG: &str = "virtme-ng==1.42";

/// Longest a guest may take: boot, the check and the replay tests (software emulation).
const GUEST_TIMEOUT: Duration = Duration::from_secs(900);

/// Replay tests that need a live daemon in namespaces with real tools: the host runs them.
const HOST_ONLY_TESTS: &[&str] = &["replay_matches_the_live_daemon"];

/// One kernel's results.
#[derive(Debug)]
struct Outcome {
    kernel: String,
    loads: bool,
    processed: Option<u64>,
    within_budget: bool,
    /// `ipscan run` attached the XDP and egress programs to a veth and detached them.
    attaches: bool,
    refusal: Option<String>,
    replay_passed: usize,
    replay_failed: usize,
    seconds: u64,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.loads && self.within_budget && self.attaches && self.replay_failed == 0 && self.replay_passed > 0
    }
}

/// Compares package names by their digit runs as numbers (`6.1.0-9` before `6.1.0-57`).
fn version_order(a: &str, b: &str) -> Ordering {
    let runs = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()).map(|r| r.parse().unwrap_or(0)).collect()
    };
    runs(a).cmp(&runs(b))
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs QEMU and virtme-ng when missing; returns the `vng` to run.
fn setup() -> anyhow::Result<PathBuf> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        step("QEMU and friends (apt): present");
    } else {
        step(&format!("installing {} (apt)", missing.join(" ")));
        run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if let Some(vng) = find_vng() {
        step(&format!("virtme-ng: {}", vng.display()));
        return Ok(vng);
    }
    step(&format!("installing {VIRTME_NG} (pip)"));
    run(Command::new("python3").args(["-m", "pip", "install", "--quiet", VIRTME_NG]))?;
    find_vng().context("virtme-ng is installed but its `vng` command was not found")
}

/// `vng` on PATH, or where pip puts scripts.
fn find_vng() -> Option<PathBuf> {
    let works = |p: &Path| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    if works(Path::new("vng")) {
        return Some(PathBuf::from("vng"));
    }
    let scripts =
        Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output().ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&scripts.stdout).trim()).join("vng");
    works(&p).then_some(p)
}

/// The newest package for `kernel`, downloaded and unpacked under `dir`; returns its vmlinuz.
fn unpack(kernel: &Kernel, dir: &Path) -> anyhow::Result<PathBuf> {
    let list = output(Command::new("apt-cache").args(["pkgnames", "linux-image-"]))?;
    let package = list
        .lines()
        .map(str::trim)
        .filter(|p| (kernel.package)(p))
        .max_by(|a, b| version_order(a, b))
        .with_context(|| format!("no Debian package for Linux {} (apt-get update?)", kernel.name))?
        .to_owned();
    let root = dir.join(&package);
    let boot = root.join("boot");
    if !boot.is_dir() {
        step(&format!("Linux {}: downloading {package}", kernel.name));
        let debs = dir.join("debs");
        fs::create_dir_all(&debs).with_context(|| format!("mkdir {}", debs.display()))?;
        run(Command::new("apt-get").args(["download", "-q", &package]).current_dir(&debs))?;
        let deb = fs::read_dir(&debs)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_"))))
            .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
        let partial = dir.join(format!("{package}.partial"));
        let _ = fs::remove_dir_all(&partial);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        fs::rename(&partial, &root)?;
        let _ = fs::remove_file(&deb);
    }
    let vmlinuz = fs::read_dir(&boot)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .with_context(|| format!("no vmlinuz in {}", boot.display()))?;
    let release = vmlinuz.file_name().map(|n| n.to_string_lossy()["vmlinuz-".len()..].to_owned()).unwrap_or_default();
    // The guest loads virtio and 9p as modules: their index must exist in the unpacked tree.
    if !root.join("lib/modules").join(&release).join("modules.dep").exists() {
        run(Command::new("depmod").arg("-a").arg("-b").arg(&root).arg(&release))?;
    }
    Ok(vmlinuz)
}

/// The test counts of a libtest run's output.
fn test_counts(text: &str) -> (usize, usize) {
    let Some(line) = text.lines().rev().find(|l| l.starts_with("test result:")) else {
        return (0, 0);
    };
    let n = |word: &str| {
        line.split(';')
            .find(|part| part.trim().ends_with(word))
            .and_then(|part| part.split_whitespace().rev().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (n("passed"), n("failed"))
}

/// Reads what a run left in `out` (the check's JSON and the replay tests' output).
fn outcome(kernel: String, out: &Path, seconds: u64) -> Outcome {
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(&read("check.json")).unwrap_or_default();
    let within_budget = read("check.rc").trim() == "0";
    let (replay_passed, replay_failed) = test_counts(&read("replay.txt"));
    let refusal = match report["refusal"].as_str() {
        Some(r) => Some(r.to_owned()),
        None if report.is_null() => Some(format!("no report: {}", read("check.err").trim())),
        None => None,
    };
    Outcome {
        kernel,
        loads: report["loads"] == true,
        processed: report["processed"].as_u64(),
        within_budget,
        attaches: attached(&read("attach.rc"), &read("attach.err")),
        refusal,
        replay_passed,
        replay_failed,
        seconds,
    }
}

/// The commands a guest (or the host) runs, writing into `out`.
fn script(bin: &Path, replay: &Path, out: &Path) -> String {
    let skips: String = HOST_ONLY_TESTS.iter().map(|t| format!(" --skip {t}")).collect();
    let (bin, replay, out) = (bin.display(), replay.display(), out.display());
    format!(
        "cd {out} && {bin}/ipscan check --json > check.json 2> check.err; echo $? > check.rc; \
         IPSCAN_BIN={bin}/ipscan {replay} --test-threads=1{skips} > replay.txt 2>&1; echo $? > replay.rc; \
         {}",
        attach_script(&bin.to_string())
    )
}

/// `ipscan run` attaching both programs (XDP, and the egress program: TCX from Linux 6.6, a
/// clsact qdisc before) to a veth of a fresh network namespace, until it says so; then SIGINT,
/// which detaches them. Its exit status, stdout and stderr go to attach.rc, .out and .err.
fn attach_script(bin: &str) -> String {
    format!(
        "printf 'counting confirmed\\nset scans_only\\n' > attach.conf; \
         unshare -n sh -c 'ip link add {ATTACH_IF} type veth peer name {ATTACH_IF}p && ip link set {ATTACH_IF} up \
         && ip link set {ATTACH_IF}p up && {{ {bin}/ipscan run -i {ATTACH_IF} -c attach.conf --stdout --no-pin \
         --state-dir state --lock-dir lock > attach.out 2> attach.err & p=$!; i=0; \
         while [ $i -lt 240 ] && ! grep -qs \"counting confirmed\" attach.err && kill -0 $p 2>/dev/null; \
         do sleep 0.5; i=$((i+1)); done; kill -INT $p; wait $p; echo $? > attach.rc; }}'"
    )
}

/// The interface [`attach_script`] makes.
const ATTACH_IF: &str = "ipscanvm0";

/// Whether `ipscan run` attached both programs and detached them on SIGINT ([`attach_script`]).
fn attached(rc: &str, err: &str) -> bool {
    rc.trim() == "0"
        && err.contains(&format!("ipscan: attached to {ATTACH_IF}"))
        && err.contains("counting confirmed: ")
        && err.contains(&format!("ipscan: detached from {ATTACH_IF}"))
}

/// Boots `vmlinuz` and runs `script` in it, its output into `log` (through a pipe: QEMU
/// reopens its standard output and would truncate a file given to it).
fn boot(vng: &Path, vmlinuz: &Path, out: &Path, script: &str, log: &Path) -> anyhow::Result<()> {
    let mut child = Command::new("timeout")
        .arg(GUEST_TIMEOUT.as_secs().to_string())
        .arg(vng)
        .arg("--run")
        .arg(vmlinuz)
        .args(["--disable-kvm", "--cpus", "2", "-m", "1G"])
        .arg(format!("--rwdir={}", out.display()))
        .arg("--exec")
        .arg(format!("mount -t bpf bpf /sys/fs/bpf; {script}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", vng.display()))?;
    let mut text = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut text);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text);
    }
    let status = child.wait()?;
    fs::write(log, &text)?;
    if !status.success() && !out.join("replay.rc").exists() {
        bail!("the guest failed ({status}) before its tests ended; its output is in {}", log.display());
    }
    Ok(())
}

fn table(outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "{:<28} {:<6} {:>10} {:<8} {:<8} {:>14} {:>6}\n",
        "kernel", "loads", "processed", "budget", "attaches", "replay tests", "time"
    );
    for o in outcomes {
        let processed = o.processed.map_or("-".into(), |n| n.to_string());
        s.push_str(&format!(
            "{:<28} {:<6} {:>10} {:<8} {:<8} {:>14} {:>5}s\n",
            o.kernel,
            if o.loads { "yes" } else { "no" },
            processed,
            if o.within_budget { "within" } else { "OVER" },
            if o.attaches { "yes" } else { "NO" },
            format!(
                "{} passed{}",
                o.replay_passed,
                if o.replay_failed > 0 { format!(", {} failed", o.replay_failed) } else { String::new() }
            ),
            o.seconds
        ));
        if let Some(r) = &o.refusal {
            s.push_str(&format!("    refused: {r}\n"));
        }
    }
    s
}

/// Builds, then runs the check and the replay tests on this machine's kernel and in a guest of
/// each of `only` (every listed kernel when empty); fails unless all pass.
pub fn vm(only: &[String], no_setup: bool) -> anyhow::Result<()> {
    let kernels: Vec<&Kernel> =
        KERNELS.iter().filter(|k| only.is_empty() || only.iter().any(|o| o == k.name)).collect();
    if let Some(unknown) = only.iter().find(|o| !KERNELS.iter().any(|k| k.name == o.as_str())) {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        bail!("no kernel {unknown:?} to test; the list is {}", known.join(", "));
    }
    let vng = if no_setup { find_vng().context("vng not found: run without --no-setup")? } else { setup()? };
    step("building ipscan and the replay tests");
    run(cargo().args(["build", "-p", "ipscan-user"]))?;
    let replay = test_binaries(&["ipscan-tests"])?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("replay-")))
        .context("no replay test binary")?;
    let dir = workspace_root().join("target/vm");
    // Copies that a build during the run cannot change under the guests.
    let bin = dir.join("bin");
    fs::create_dir_all(&bin)?;
    fs::copy(workspace_root().join("target/debug/ipscan"), bin.join("ipscan"))?;
    fs::copy(&replay, bin.join("replay"))?;
    let mut outcomes = Vec::new();
    let host = dir.join("out/host");
    let _ = fs::remove_dir_all(&host);
    fs::create_dir_all(&host)?;
    step("this machine's kernel");
    let start = Instant::now();
    run(Command::new("sh").arg("-c").arg(script(&bin, &bin.join("replay"), &host)))?;
    let release = output(Command::new("uname").arg("-r"))?.trim().to_owned();
    outcomes.push(outcome(format!("{release} (host)"), &host, start.elapsed().as_secs()));
    for kernel in kernels {
        let vmlinuz = unpack(kernel, &dir)?;
        let out = dir.join("out").join(kernel.name);
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out)?;
        step(&format!("Linux {}: booting {} (software emulation)", kernel.name, vmlinuz.display()));
        let start = Instant::now();
        boot(&vng, &vmlinuz, &out, &script(&bin, &bin.join("replay"), &out), &out.join("guest.log"))?;
        let release =
            vmlinuz.file_name().map(|n| n.to_string_lossy()["vmlinuz-".len()..].to_owned()).unwrap_or_default();
        outcomes.push(outcome(release, &out, start.elapsed().as_secs()));
    }
    let text = table(&outcomes);
    println!("{text}");
    fs::write(dir.join("vm.txt"), &text)?;
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.ok()).map(|o| o.kernel.as_str()).collect();
    if !failed.is_empty() {
        bail!("failing kernels: {} (results under {})", failed.join(", "), dir.join("out").display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_and_their_order() {
        assert!((KERNELS[0].package)("linux-image-6.1.0-57-amd64"));
        assert!(!(KERNELS[0].package)("linux-image-6.1.0-57-cloud-amd64"));
        assert!(!(KERNELS[0].package)("linux-image-6.1.0-57-amd64-dbg"));
        assert!((KERNELS[1].package)("linux-image-6.12.118+deb12-amd64"));
        assert!(!(KERNELS[1].package)("linux-image-6.12.118+deb12-rt-amd64"));
        assert!(!(KERNELS[1].package)("linux-image-6.12-amd64"));
        assert_eq!(version_order("linux-image-6.1.0-9-amd64", "linux-image-6.1.0-57-amd64"), Ordering::Less);
        assert_eq!(
            version_order("linux-image-6.12.118+deb12-amd64", "linux-image-6.12.99+deb12-amd64"),
            Ordering::Greater
        );
    }

    #[test]
    fn attach_outcome() {
        let err = "ipscan: attached to ipscanvm0 (native mode)\nipscan: ipscanvm0: counting confirmed: the port scan ...\n\
                   ipscan: detached from ipscanvm0\n";
        assert!(attached("0\n", err));
        assert!(!attached("1\n", err));
        assert!(!attached("0\n", "ipscan: attached to ipscanvm0 (native mode)\nipscan: detached from ipscanvm0\n"));
    }

    #[test]
    fn libtest_counts() {
        let out = "running 12 tests\n...\ntest result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; \
                   1 filtered out; finished in 9.1s\n";
        assert_eq!(test_counts(out), (12, 0));
        assert_eq!(test_counts("test result: FAILED. 3 passed; 2 failed; 0 ignored"), (3, 2));
        assert_eq!(test_counts("no tests ran"), (0, 0));
    }
}
