//! `cargo xtask fuzz`: seeds the corpora, builds the cargo-fuzz targets of `fuzz/` and runs each
//! for a bounded time. A crash fails with the path of the input that caused it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::SystemTime,
};

use anyhow::{Context as _, bail};

use crate::{run, step, workspace_root};

/// cargo-fuzz release known to build on this project's nightly.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target in `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: [&str; 3] = ["parse", "rules", "config"];

/// Installs cargo-fuzz unless this version is already there.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let have = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if have.contains(CARGO_FUZZ_VERSION) {
        step(&format!("cargo-fuzz {CARGO_FUZZ_VERSION}: present"));
        return Ok(());
    }
    step(&format!("installing cargo-fuzz {CARGO_FUZZ_VERSION} (a few minutes)"));
    run(Command::new("cargo").args(["install", "--locked", &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}")]))
        .context("`cargo install cargo-fuzz` failed")
}

/// `cargo +nightly fuzz SUBCOMMAND` run from the workspace root.
fn cargo_fuzz(sub: &str) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(workspace_root()).args(["+nightly", "fuzz", sub]);
    // No sanitizer: the code under test is safe Rust but for two small `unsafe` blocks of
    // ipscan-common (volatile word stores, an unaligned read); overflow checks and debug
    // assertions (cargo-fuzz's default) are what catch its bugs. Without ASan the build is
    // shorter, which keeps the bounded run of `cargo xtask test` within its budget.
    c.args(["--sanitizer", "none"]);
    c
}

/// Seeds, build, then each target for `seconds`. `target`: only that one.
pub fn fuzz(seconds: u64, target: Option<&str>) -> anyhow::Result<()> {
    let targets: Vec<&str> = match target {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("unknown fuzz target {t:?}: expected one of {}", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    crate::setup::nightly()?;
    ensure_cargo_fuzz()?;
    let root = workspace_root();
    let (frames, made) = seeds::write(&root)?;
    step(&format!(
        "fuzz seeds: {frames} frames of tests/data/*.pcap and {made} variants made from them, config seeds of fuzz/seeds/config"
    ));
    step("building the fuzz targets (nightly)");
    run(&mut cargo_fuzz("build")).context("building the fuzz targets failed")?;
    for t in targets {
        step(&format!("fuzzing {t} for {seconds} s"));
        let artifacts = root.join("fuzz/artifacts").join(t);
        let started = SystemTime::now();
        let status = cargo_fuzz("run")
            .arg(t)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // One slow input is a bug too (a loop without a bound); libFuzzer's default is 20 min.
            .arg("-timeout=10")
            .arg("-print_final_stats=1")
            .status()
            .with_context(|| format!("cannot start cargo fuzz run {t}"))?;
        if !status.success() {
            let found = new_files(&artifacts, started);
            if found.is_empty() {
                bail!("fuzz target {t} failed ({status}); no new input in {}", artifacts.display());
            }
            let list: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "fuzz target {t} failed ({status}) on {}; reproduce with `cargo +nightly fuzz run -s none {t} {}`",
                list.join(", "),
                list[0]
            );
        }
    }
    Ok(())
}

/// Files in `dir` modified at or after `since`.
fn new_files(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m >= since))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Seed corpora: every frame of the real-tool captures in `tests/data`, variants made from them
/// for the headers those captures lack, and the committed config seeds.
mod seeds {
    use std::{fs, path::Path};

    use anyhow::{Context as _, bail};

    /// The Ethernet frames of a classic pcap file (either byte order, micro- or nanosecond).
    pub fn pcap_frames(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
        let Some(magic) = data.get(..4) else {
            bail!("shorter than a pcap header");
        };
        let le = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
            _ => bail!("not a classic pcap file"),
        };
        let u32_at = |off: usize| -> Option<u32> {
            let b: [u8; 4] = data.get(off..off + 4)?.try_into().ok()?;
            Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
        };
        if u32_at(20) != Some(1) {
            bail!("link type is not Ethernet");
        }
        let mut frames = Vec::new();
        let mut off = 24;
        while let Some(incl) = u32_at(off + 8) {
            let start = off + 16;
            let end = start + incl as usize;
            let Some(frame) = data.get(start..end) else {
                bail!("record at byte {off} runs past the end");
            };
            frames.push(frame.to_vec());
            off = end;
        }
        Ok(frames)
    }

    fn be16(b: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([b[i], b[i + 1]])
    }

    /// The frame with an 802.1Q tag (or 802.1ad + 802.1Q) after the MAC addresses.
    fn vlan(frame: &[u8], qinq: bool) -> Vec<u8> {
        let mut f = frame[..12].to_vec();
        if qinq {
            f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64]);
        }
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0xc8]);
        f.extend_from_slice(&frame[12..]);
        f
    }

    /// An ICMP port unreachable from the victim quoting an IPv4 frame's IP header and 8 bytes.
    fn unreachable(frame: &[u8]) -> Option<Vec<u8>> {
        if frame.len() < 34 || be16(frame, 12) != 0x0800 {
            return None;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip.first()? & 0x0f) * 4;
        let quoted = ip.get(..ihl + 8)?;
        let total = 20 + 8 + quoted.len();
        let mut f = frame[6..12].to_vec();
        f.extend_from_slice(&frame[..6]);
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0x00]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
        f.extend_from_slice(&ip[16..20]);
        f.extend_from_slice(&ip[12..16]);
        f.extend_from_slice(&[3, 3, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(quoted);
        Some(f)
    }

    /// An IPv6 frame with a hop-by-hop header, a destination-options header and a fragment
    /// header (first fragment, or a later one) in front of its transport header.
    fn ipv6_ext(frame: &[u8], later: bool) -> Option<Vec<u8>> {
        if frame.len() < 54 || be16(frame, 12) != 0x86dd {
            return None;
        }
        let next = frame[20];
        let payload = be16(frame, 18);
        let mut f = frame[..54].to_vec();
        f[20] = 0; // hop-by-hop
        f[18..20].copy_from_slice(&(payload + 24).to_be_bytes());
        f.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // -> destination options, PadN
        f.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // -> fragment
        let offset: u16 = if later { 185 << 3 } else { 1 }; // M flag on the first fragment
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&offset.to_be_bytes());
        f.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        f.extend_from_slice(&frame[54..]);
        Some(f)
    }

    /// An IPv4 frame marked as a first fragment (MF) or as a later one (offset 185).
    fn ipv4_fragment(frame: &[u8], later: bool) -> Option<Vec<u8>> {
        if frame.len() < 34 || be16(frame, 12) != 0x0800 {
            return None;
        }
        let mut f = frame.to_vec();
        let flags: u16 = if later { 185 } else { 0x2000 };
        f[20..22].copy_from_slice(&flags.to_be_bytes());
        Some(f)
    }

    fn write_dir(dir: &Path, files: impl IntoIterator<Item = (String, Vec<u8>)>) -> anyhow::Result<usize> {
        fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let mut n = 0;
        for (name, bytes) in files {
            let path = dir.join(name);
            fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes `fuzz/corpus/{parse,config}/seed-*` (idempotent: fixed names, same bytes).
    /// Returns (frames from captures, variants made from them).
    pub fn write(root: &Path) -> anyhow::Result<(usize, usize)> {
        let data = root.join("tests/data");
        let mut pcaps: Vec<_> = fs::read_dir(&data)
            .with_context(|| format!("read {}", data.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
            .collect();
        pcaps.sort();
        let mut frames = Vec::new();
        let mut variants = Vec::new();
        for pcap in &pcaps {
            let name = pcap.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let bytes = fs::read(pcap).with_context(|| format!("read {}", pcap.display()))?;
            let list = pcap_frames(&bytes).with_context(|| format!("{}", pcap.display()))?;
            for (i, f) in list.iter().enumerate() {
                frames.push((format!("seed-{name}-{i:03}"), f.clone()));
            }
            // The captures hold no VLAN tags, extension headers, fragments or ICMP errors:
            // make them from the first frames of each capture.
            for (i, f) in list.iter().take(3).enumerate() {
                variants.push((format!("seed-{name}-{i:03}-vlan"), vlan(f, false)));
                variants.push((format!("seed-{name}-{i:03}-qinq"), vlan(f, true)));
                let made = [
                    ("unreach", unreachable(f)),
                    ("ext", ipv6_ext(f, false)),
                    ("ext-later", ipv6_ext(f, true)),
                    ("mf", ipv4_fragment(f, false)),
                    ("later", ipv4_fragment(f, true)),
                ];
                for (kind, v) in made {
                    if let Some(v) = v {
                        variants.push((format!("seed-{name}-{i:03}-{kind}"), v));
                    }
                }
            }
        }
        let corpus = root.join("fuzz/corpus");
        let nframes = write_dir(&corpus.join("parse"), frames)?;
        let nvariants = write_dir(&corpus.join("parse"), variants)?;
        let seeds = root.join("fuzz/seeds/config");
        let mut configs = Vec::new();
        for e in fs::read_dir(&seeds).with_context(|| format!("read {}", seeds.display()))? {
            let path = e.with_context(|| format!("read {}", seeds.display()))?.path();
            let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            configs
                .push((format!("seed-{name}"), fs::read(&path).with_context(|| format!("read {}", path.display()))?));
        }
        write_dir(&corpus.join("config"), configs)?;
        Ok((nframes, nvariants))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_the_test_captures() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let bytes = fs::read(root.join("tests/data/nmap-sS-v6.pcap")).expect("capture");
            let frames = pcap_frames(&bytes).expect("pcap");
            assert_eq!(frames.len(), 41);
            assert!(frames.iter().all(|f| be16(f, 12) == 0x86dd));
            let ext = ipv6_ext(&frames[0], false).expect("v6");
            assert_eq!(ext.len(), frames[0].len() + 24);
            assert_eq!(be16(&ext, 18), be16(&frames[0], 18) + 24);
            assert!(pcap_frames(b"not a capture").is_err());
        }

        #[test]
        fn unreachable_quotes_the_probe() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let bytes = fs::read(root.join("tests/data/nmap-sU-v4.pcap")).expect("capture");
            let frames = pcap_frames(&bytes).expect("pcap");
            assert!(unreachable(&frames[0]).is_none(), "the capture starts with ARP");
            let probe = frames.iter().find(|f| be16(f, 12) == 0x0800).expect("an IPv4 probe");
            let f = unreachable(probe).expect("v4");
            assert_eq!(be16(&f, 16) as usize, f.len() - 14, "IP total length");
            assert_eq!((f[23], f[34], f[35]), (1, 3, 3), "ICMP port unreachable");
            assert_eq!(&f[42..], &probe[14..14 + 28], "quotes the IP header and 8 bytes");
        }
    }
}
