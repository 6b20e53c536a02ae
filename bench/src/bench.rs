//! `cargo xtask bench`: ipscan's cost as ratios against baselines measured in the same run.
//!
//! Nothing here asserts an absolute time. Every number is set against an empty XDP program
//! (`baseline_pass`, `baseline_drop` from bench/ebpf) that is loaded, run or attached in exactly
//! the same way in the same run, so the table compares like with like on whatever machine runs
//! it. Sections:
//!
//! 1. per-packet cost: BPF_PROG_TEST_RUN, nanoseconds per run (where steady enough, the
//!    thread's CPU time over a million runs, finer than the kernel's whole nanoseconds; see
//!    [`run_ns`]), with floor rows
//!    (one hash lookup, one array read, one clock helper call) for what a design can reach;
//! 2. throughput: packets per second received on a veth with the program attached in native
//!    mode, fed by the project's live-frames generator (`generator_tx`) from the peer namespace;
//! 3. state exhaustion: a 1,000,000-source SYN flood while a real `nmap -sS` runs, against the
//!    `ipscan run` daemon: was the scan detected, did kernel memory or the daemon grow;
//! 4. time to block: scanner packets passed after the threshold packet, kernel auto-block
//!    against a user-space blocking path;
//! 5. threat feeds: the time to load a million IPv4 and a hundred thousand IPv6 prefixes and to
//!    refresh them, the kernel memory they take, and the per-packet cost with them loaded.
//!
//! Traffic is bounded in packets and time; namespaces come from [`Testbed`] and are removed on
//! drop. Addresses are from 198.18.0.0/15 and 2001:db8::/32 only, but for the threat feeds'
//! prefixes and the senders under or near them (test runs only, never on a wire).

use std::{
    collections::HashSet,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray},
    programs::{ProgramFd, SchedClassifier, Xdp, XdpMode, xdp::XdpLinkId},
};
use ipscan::{
    config::IpNet,
    kernel::{feeds::NewSet, loader, tables::Tables, testrun},
};
use ipscan_common::{Config, EGRESS_PROGRAM_NAME, PROGRAM_NAME, SourceKey, SourceState, maps, stats};
use ipscan_tests::{
    ATTACKER4, ATTACKER6, Daemon, NetNs, TempDir, Testbed, VICTIM4, VICTIM6, XDP_DROP, XDP_PASS,
    frames::{Frame, L4},
    sh,
};
use serde_json::{Value, json};

use crate::objects as objs;

/// How much work a run does.
#[derive(Clone, Debug)]
pub struct Options {
    /// BPF_PROG_TEST_RUN repetitions per measurement (kernel averages over them).
    pub repeat: u32,
    /// Measurements per kind; the median is reported.
    pub rounds: usize,
    /// Distinct sources for the "SYN from a new source" row (one test run each).
    pub new_sources: u32,
    /// Packets per throughput measurement.
    pub tput_packets: u64,
    /// Throughput measurements per configuration; the median is reported.
    pub tput_rounds: usize,
    /// Upper bound on one throughput measurement's duration.
    pub tput_max: Duration,
    /// Distinct sources (and packets) of the state-exhaustion flood.
    pub flood_sources: u64,
    /// Upper bound on the state-exhaustion flood's duration.
    pub flood_max: Duration,
    /// Ports the concurrent nmap scans.
    pub nmap_ports: &'static str,
    /// Prefixes of the IPv4 and of the IPv6 threat feed, and the rounds that load them afresh.
    pub feed_v4: usize,
    pub feed_v6: usize,
    pub feed_rounds: usize,
}

impl Options {
    /// The full benchmark (a few minutes).
    pub fn full() -> Self {
        Self {
            repeat: 1_000_000,
            rounds: 15,
            new_sources: 100_000,
            tput_packets: 2_000_000,
            tput_rounds: 5,
            tput_max: Duration::from_secs(10),
            flood_sources: 1_000_000,
            flood_max: Duration::from_secs(60),
            nmap_ports: "1-200",
            feed_v4: 1_000_000,
            feed_v6: 100_000,
            feed_rounds: 5,
        }
    }

    /// A few-second version for CI: every row is produced, none is meaningful.
    pub fn smoke() -> Self {
        Self {
            repeat: 10_000,
            rounds: 2,
            new_sources: 2_000,
            tput_packets: 20_000,
            tput_rounds: 1,
            tput_max: Duration::from_secs(2),
            flood_sources: 20_000,
            flood_max: Duration::from_secs(20),
            nmap_ports: "1-30",
            feed_v4: 10_000,
            feed_v6: 1_000,
            feed_rounds: 2,
        }
    }
}

/// Pass/miss rule of a row.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// ratio <= x
    AtMost(f64),
    /// ratio >= x
    AtLeast(f64),
    /// Reported only.
    Info,
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::AtMost(x) => format!("<= {x:.2}x"),
            Target::AtLeast(x) => format!(">= {x:.2}x"),
            Target::Info => "-".into(),
        }
    }

    fn json(self) -> Value {
        match self {
            Target::AtMost(x) => json!({"max_ratio": x}),
            Target::AtLeast(x) => json!({"min_ratio": x}),
            Target::Info => Value::Null,
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub section: &'static str,
    pub what: String,
    /// None: not measurable yet ("n/a").
    pub value: Option<f64>,
    pub unit: &'static str,
    /// The baseline measured in the same run, and its name.
    pub baseline: Option<(f64, &'static str)>,
    pub target: Target,
    /// The median of per-round ratios (each round runs ipscan and its baseline back to back):
    /// steadier than the ratio of the medians when the machine's speed drifts between rounds.
    pub paired: Option<f64>,
    /// A detection row's ratio to its floor row (the median of per-round ratios) and the floor
    /// row's id: how far the row is from the least its packet's map work costs.
    pub to_floor: Option<(f64, &'static str)>,
    pub note: String,
    /// Raw figures behind the row.
    pub detail: Value,
}

impl Row {
    /// A row with no value ("n/a"): what could not be measured here, and why.
    pub(crate) fn unmeasured(id: &str, section: &'static str, what: String, why: &str) -> Self {
        Row {
            id: id.into(),
            section,
            what,
            value: None,
            unit: "",
            baseline: None,
            target: Target::Info,
            paired: None,
            to_floor: None,
            note: why.into(),
            detail: json!({"reason": why}),
        }
    }

    fn ratio(&self) -> Option<f64> {
        if self.paired.is_some() {
            return self.paired;
        }
        match (self.value, self.baseline) {
            (Some(v), Some((b, _))) if b > 0.0 => Some(v / b),
            _ => None,
        }
    }

    fn status(&self) -> &'static str {
        let Some(v) = self.value else {
            return "n/a";
        };
        let r = self.ratio().unwrap_or(v);
        match self.target {
            Target::AtMost(x) if r <= x => "pass",
            Target::AtLeast(x) if r >= x => "pass",
            Target::AtMost(_) | Target::AtLeast(_) => "miss",
            Target::Info => "info",
        }
    }
}

/// Panics with the error on failure (bench helpers follow the tests' rule 11).
fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The median of `a[i] / b[i]`: each round's figure against the baseline run next to it.
fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "one baseline sample per round");
    let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y.max(1.0)).collect();
    median(&mut r)
}

// ---------------------------------------------------------------------------------------------
// Programs

/// Loads one of the benchmark's own objects and its XDP program.
fn load_object(object: &[u8], name: &'static str, vary_source: Option<u8>) -> Ebpf {
    let mut l = EbpfLoader::new();
    if let Some(v) = &vary_source {
        l.override_global(objs::GENERATOR_VARY_SOURCE, v, true);
    }
    let mut ebpf = ok(l.load(object), name);
    let prog: &mut Xdp = ok(ebpf.program_mut(name).unwrap_or_else(|| panic!("no program {name}")).try_into(), name);
    ok(prog.load(), name);
    ebpf
}

/// The real program as `ipscan run` loads it (kernel clock, default config).
fn load_ipscan() -> Ebpf {
    let mut ebpf = ok(loader::load(&loader::LoadOptions::default()), "load ipscan");
    ok(loader::write_config(&mut ebpf, &Config::default()), "config");
    ebpf
}

/// ipscan with a policy that auto-blocks SYN scanners for an hour.
fn load_ipscan_autoblocking() -> Ebpf {
    let mut ebpf = ok(loader::load(&loader::LoadOptions::default()), "load ipscan");
    let mut cfg = Config::default();
    cfg.detection_mut(ipscan_common::Detection::SynScan).block_ns = 3_600_000_000_000;
    cfg.flags |= ipscan_common::config::global_flags::AUTOBLOCKS;
    ok(loader::write_config(&mut ebpf, &cfg), "config");
    ebpf
}

/// ipscan with tripwire ports and addresses configured, none of them a benchmark frame's: what
/// looking probes up in TRIPWIRE and TRIPADDR4/6 adds.
fn load_ipscan_tripwired() -> Ebpf {
    let mut ebpf = ok(loader::load(&loader::LoadOptions::default()), "load ipscan");
    let text = "tripwire tcp 23,445,3389\ntripwire udp 161,1900\ntripwire addr 198.51.100.250, 2001:db8:ffff::250\n";
    let settings = ok(ipscan::config::Settings::parse(text, std::path::Path::new("bench.conf")), "tripwire config");
    let k = ok(ipscan::config::kernel::KernelSettings::from_settings(&settings, &[]), "kernel settings");
    ok(k.apply(&mut ebpf), "tripwires");
    ebpf
}

/// ipscan from a configuration file's text (the scanners not primed).
fn load_ipscan_with(text: &str, what: &str) -> Ebpf {
    let mut ebpf = ok(loader::load(&loader::LoadOptions::default()), "load ipscan");
    let settings = ok(ipscan::config::Settings::parse(text, std::path::Path::new("bench.conf")), what);
    let k = ok(ipscan::config::kernel::KernelSettings::from_settings(&settings, &[]), "kernel settings");
    ok(k.apply(&mut ebpf), what);
    ebpf
}

/// [`load_ipscan`] with one address blocked by hand (`ipscan block add`, as the OSSEC active
/// response does), not the sender of any benchmark frame: the blocklist then has entries.
fn load_ipscan_manual_block() -> (Ebpf, ipscan::kernel::tables::Tables) {
    let mut ebpf = load_ipscan();
    let mut tables = ok(ipscan::kernel::tables::Tables::from_ebpf(&mut ebpf), "block tables");
    let net = ipscan::config::IpNet::host("192.0.2.1".parse().expect("address"));
    ok(tables.block(&net, ipscan_common::BlockEntry::default()), "block");
    let mut cfg = Config::default();
    cfg.flags |= tables.presence_flags();
    assert_ne!(cfg.flags & ipscan_common::config::global_flags::BLOCKLIST, 0, "the blocklist flag");
    ok(loader::write_config(&mut ebpf, &cfg), "config");
    (ebpf, tables)
}

/// [`load_ipscan_autoblocking`] with `src` already auto-blocked by the kernel itself (ten probes
/// to distinct ports through BPF_PROG_TEST_RUN).
fn load_ipscan_blocked(src: Ipv4Addr) -> Ebpf {
    let ebpf = load_ipscan_autoblocking();
    let fd = prog_fd(&ebpf, PROGRAM_NAME);
    let verdicts: Vec<u32> = (1..=10).map(|port| run_ns(&fd, &syn4(src, port), 1).0).collect();
    assert_eq!(verdicts[9], XDP_DROP, "the tenth port did not auto-block the source: {verdicts:?}");
    ebpf
}

fn prog_fd(ebpf: &Ebpf, name: &str) -> ProgramFd {
    let prog: &Xdp = ok(ebpf.program(name).unwrap_or_else(|| panic!("no program {name}")).try_into(), name);
    ok(ok(prog.fd(), name).try_clone(), "dup program fd")
}

/// The egress program's fd (a TC classifier).
fn egress_fd(ebpf: &Ebpf) -> ProgramFd {
    let prog: &SchedClassifier =
        ok(ebpf.program(EGRESS_PROGRAM_NAME).expect("no egress program").try_into(), EGRESS_PROGRAM_NAME);
    ok(ok(prog.fd(), EGRESS_PROGRAM_NAME).try_clone(), "dup program fd")
}

fn stat(ebpf: &Ebpf, slot: u32) -> u64 {
    let map = ebpf.map(maps::STATS).expect("STATS");
    let arr: PerCpuArray<_, u64> = ok(PerCpuArray::try_from(map), "STATS");
    ok(arr.get(&slot, 0), "STATS slot").iter().sum()
}

// ---------------------------------------------------------------------------------------------
// Frames

fn a4(s: &str) -> Ipv4Addr {
    ok(s.parse(), "address")
}

fn a6(s: &str) -> Ipv6Addr {
    ok(s.parse(), "address")
}

/// An untagged IPv4 frame to the victim, with its header checksum: the throughput section's
/// frames go on to the victim's IP stack.
fn v4(src: Ipv4Addr, l4: &L4, payload: usize) -> Vec<u8> {
    Frame { payload, df: true, ipv4_checksum: true, ..Default::default() }.v4(src, a4(VICTIM4), l4)
}

fn v6(src: Ipv6Addr, l4: &L4, payload: usize) -> Vec<u8> {
    Frame { payload, ..Default::default() }.v6(src, a6(VICTIM6), l4)
}

/// An established connection's segment: ACK with 100 bytes of data.
fn ack4() -> Vec<u8> {
    v4(a4(ATTACKER4), &L4::tcp(40000, 443, 0x10), 100)
}

/// The victim's reset refusing the scanner's SYN to `port` (what the egress program counts).
fn reset4(port: u16) -> Vec<u8> {
    Frame { df: true, ipv4_checksum: true, ..Default::default() }.v4(a4(VICTIM4), a4(SCANNER4), &L4::reset(port, 40000))
}

/// The victim's own established segment: ACK with 100 bytes of data, to the attacker.
fn ack4_sent() -> Vec<u8> {
    Frame { payload: 100, df: true, ipv4_checksum: true, ..Default::default() }.v4(
        a4(VICTIM4),
        a4(ATTACKER4),
        &L4::tcp(443, 40000, 0x10),
    )
}

fn ack6() -> Vec<u8> {
    v6(a6(ATTACKER6), &L4::tcp(40000, 443, 0x10), 100)
}

/// nmap -sS's probe (SYN + MSS option).
fn syn4(src: Ipv4Addr, dport: u16) -> Vec<u8> {
    v4(src, &L4::syn(40000, dport), 0)
}

fn syn6(src: Ipv6Addr, dport: u16) -> Vec<u8> {
    v6(src, &L4::syn(40000, dport), 0)
}

// ---------------------------------------------------------------------------------------------
// Network namespaces

/// Moves the calling thread into a network namespace until dropped.
struct InNetNs {
    home: fs::File,
}

impl InNetNs {
    fn enter(ns: &NetNs) -> Self {
        let home = ok(fs::File::open("/proc/thread-self/ns/net"), "open own netns");
        let target = ok(fs::File::open(ns.path()), "open netns");
        // SAFETY: setns(2) on valid descriptors; CLONE_NEWNET affects only this thread.
        let rc = unsafe { libc::setns(target.as_fd().as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {}: {}", ns.path(), std::io::Error::last_os_error());
        Self { home }
    }
}

impl Drop for InNetNs {
    fn drop(&mut self) {
        // SAFETY: as above, back to the namespace we came from.
        let rc = unsafe { libc::setns(self.home.as_fd().as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns back: {}", std::io::Error::last_os_error());
    }
}

/// The interface's receive counter as the kernel reports it inside `ns` (`ip -s link`). On a
/// veth with XDP it counts every frame the driver handed to the XDP program, whatever the verdict.
fn rx_packets(ns: &NetNs, iface: &str) -> u64 {
    let out = sh(Command::new("ip").args(["-j", "-s", "-n", &ns.name, "link", "show", "dev", iface]));
    let v: Value = ok(serde_json::from_slice(&out.stdout), "ip -j output");
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap_or_else(|| panic!("no rx packets in {v}"))
}

/// Attaches a loaded XDP program to the victim's interface in native mode.
fn attach(bed: &Testbed, ebpf: &mut Ebpf, name: &str) -> XdpLinkId {
    let _ns = InNetNs::enter(&bed.victim);
    let idx = loader::if_index(&bed.victim_if).expect("victim interface");
    let prog: &mut Xdp = ok(ebpf.program_mut(name).expect("program").try_into(), name);
    ok(prog.attach_to_if_index(idx, XdpMode::Driver), "attach native")
}

fn detach(ebpf: &mut Ebpf, name: &str, link: XdpLinkId) {
    let prog: &mut Xdp = ok(ebpf.program_mut(name).expect("program").try_into(), name);
    ok(prog.detach(link), "detach");
}

/// Sends `packets` copies of `frame` out of the attacker's veth with the generator, in test
/// runs of `chunk` frames, stopping early at `deadline` or when `more` says so. Returns the
/// number sent and the seconds it took. The caller must be in the attacker's namespace.
fn generate(
    gen_fd: &ProgramFd,
    ifindex: u32,
    frame: &[u8],
    packets: u64,
    deadline: Instant,
    more: &mut dyn FnMut(u64) -> bool,
) -> (u64, f64) {
    const CHUNK: u64 = 100_000;
    // Frames per batch (the kernel's default); a veth peer ring holds 256.
    const BATCH: u32 = 64;
    let start = Instant::now();
    let mut sent = 0;
    while (sent < packets || more(sent)) && Instant::now() < deadline {
        let n = if sent < packets { CHUNK.min(packets - sent) } else { CHUNK };
        match testrun::run_live(gen_fd, frame, ifindex, n as u32, BATCH) {
            // A signal stopped the run between batches: an unknown part of the chunk went out
            // (the receiver's counters say what arrived), so it is sent again, within the deadline.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => {
                let r = ok(r, "live-frames test run");
                assert_eq!(r.verdict, 0, "live-frames run returned {r:?}");
            }
        }
        sent += n;
    }
    (sent, start.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// 1. Per-packet cost

/// CPU time this thread has used, in nanoseconds. A test run's loop runs in the calling thread
/// (in the kernel), so this times it, less only what the thread was not running.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID): {}", std::io::Error::last_os_error());
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// One test run: the result and the thread's CPU time. A run that a signal cut short (EINTR:
/// the kernel stops between repetitions) is run again whole, a few times at most.
fn timed_run(fd: &ProgramFd, frame: &[u8], repeat: u32) -> (testrun::RunResult, u64) {
    let mut tries = 0;
    loop {
        let t0 = thread_cpu_ns();
        match testrun::run(fd, frame, repeat) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && tries < 3 => tries += 1,
            r => return (ok(r, "BPF_PROG_TEST_RUN"), thread_cpu_ns() - t0),
        }
    }
}

/// How a run of `repeat` test runs is timed ([`run_ns`]): the test run's fixed cost, its spread,
/// and whether the thread's CPU time less that cost is used (else the kernel's figure).
#[derive(Clone, Copy, Debug)]
struct Timing {
    fixed_ns: f64,
    spread_ns: f64,
    cpu_time: bool,
}

static TIMING: std::sync::OnceLock<Timing> = std::sync::OnceLock::new();

/// What a test run with `repeat` above 1 costs besides its runs: the kernel switches the XDP
/// dispatcher to the program before the loop and back after it, outside the kernel's timer but
/// inside the thread's CPU time (0.2-0.35 ms on the AMD machine; 15-25 ms, varying more than the
/// loop itself, on the Intel one). Measured once, on first use, over 21 runs with repeat=2, less
/// their two runs as the kernel timed them: the median is taken out of every figure, and the
/// thread's CPU time is used only where the spread (the 3rd to the 19th of the 21) over
/// `repeat` runs is under half a nanosecond, less than the kernel's own rounding.
fn timing(fd: &ProgramFd, frame: &[u8], repeat: u32) -> Timing {
    *TIMING.get_or_init(|| {
        let mut v: Vec<f64> = (0..21)
            .map(|_| {
                let (r, cpu) = timed_run(fd, frame, 2);
                cpu as f64 - 2.0 * f64::from(r.duration_ns)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        let t = Timing { fixed_ns: v[10].max(0.0), spread_ns: v[18] - v[2], cpu_time: false };
        let t = Timing { cpu_time: t.spread_ns / f64::from(repeat) < 0.5, ..t };
        eprintln!(
            "bench: a test run's fixed cost {:.0} us (spread {:.0} us): per-run times {}",
            t.fixed_ns / 1000.0,
            t.spread_ns / 1000.0,
            if t.cpu_time { "from the thread's CPU time less that cost" } else { "as the kernel reports them" }
        );
        t
    })
}

/// What the per-run times of this run are, for the rows' notes.
fn timing_label() -> &'static str {
    match TIMING.get() {
        Some(t) if t.cpu_time => "thread CPU time",
        _ => "kernel's whole ns",
    }
}

/// Runs `frame` through the program `repeat` times: the verdict and the time per run. The
/// kernel reports a whole number of nanoseconds per run, which against a 21 ns empty program is
/// a step of 5% in a ratio. With `repeat` in the thousands the run is timed by the thread's CPU
/// time instead, less the test run's fixed cost, where that cost is steady enough ([`timing`]),
/// so that a ratio near its target is not decided by rounding. (On the AMD machine it agrees
/// with the kernel's figure to within its rounding: 0.06-0.98 ns above it in 90% of 480 runs
/// compared, 0.51 the median.)
fn run_ns(fd: &ProgramFd, frame: &[u8], repeat: u32) -> (u32, f64) {
    let t = if repeat >= 1000 { Some(timing(fd, frame, repeat)) } else { None };
    let (r, cpu) = timed_run(fd, frame, repeat);
    match t {
        Some(t) if t.cpu_time => (r.verdict, (cpu as f64 - t.fixed_ns).max(0.0) / f64::from(repeat)),
        _ => (r.verdict, f64::from(r.duration_ns)),
    }
}

/// The IPv4 scanner primed into scan mode, and the IPv6 one.
const SCANNER4: &str = "198.18.0.9";
const SCANNER6: &str = "2001:db8::9";
/// The source the kernel auto-blocks before the drop rows, and the one blocked by hand.
const BLOCKED4: &str = "198.18.0.66";
const BY_HAND4: &str = "192.0.2.1";

/// The programs a per-packet round measures, loaded afresh for every round: where a load's maps
/// land in memory moves a row by up to a quarter (the ACK with auto-blocking on took 40.5 ns in
/// about four loads of five on the AMD machine and 48.5 in the fifth, the whole load through,
/// pinned to either CPU), so one load for all rounds would make a row one draw of that.
struct Subjects {
    /// Default configuration, the IPv4 and IPv6 scanners in scan mode.
    ipscan: Ebpf,
    autoblocking: Ebpf,
    /// With [`BY_HAND4`] blocked by hand (the tables are kept with it).
    manual: (Ebpf, ipscan::kernel::tables::Tables),
    /// Auto-blocking, with [`BLOCKED4`] auto-blocked.
    blocked: Ebpf,
    /// Default configuration with tripwires (none of them on the frames' ports or addresses),
    /// the scanners in scan mode.
    tripwired: Ebpf,
    /// Default configuration without the per-target detections (distributed flood and scan):
    /// what they add to a probe, in the same run.
    per_source: Ebpf,
    /// Default configuration with the three sweeps on.
    sweeping: Ebpf,
    /// `set rejected`, [`SCANNER4`] in the rejected probes' mode (for the egress rows).
    rejecting: Ebpf,
    floors: Ebpf,
}

/// Waits for the kernel's deferred work after a load (the previous round's maps, tens of MB,
/// are freed by a kernel worker on one of the same CPUs) before measuring.
fn settle() {
    thread::sleep(Duration::from_millis(200));
}

/// `ebpf` with the IPv4 and IPv6 scanners in scan mode: 20 distinct ports cross both the SYN
/// scan (10) and the port scan (15) thresholds.
fn primed(ebpf: Ebpf) -> Ebpf {
    let fd = prog_fd(&ebpf, PROGRAM_NAME);
    for port in 1..=20 {
        run_ns(&fd, &syn4(a4(SCANNER4), port), 1);
        run_ns(&fd, &syn6(a6(SCANNER6), port), 1);
    }
    assert!(stat(&ebpf, stats::DETECTIONS) >= 4, "priming did not put the scanners in scan mode");
    ebpf
}

/// `ebpf` with [`SCANNER4`] in the rejected probes' mode: the host's resets to ten of its ports.
fn rejected(ebpf: Ebpf) -> Ebpf {
    let fd = egress_fd(&ebpf);
    for port in 1..=10 {
        run_ns(&fd, &reset4(port), 1);
    }
    assert!(stat(&ebpf, stats::DETECTIONS) >= 1, "priming did not put the scanner in the rejected probes' mode");
    ebpf
}

/// Which of the [`Subjects`] a row runs.
#[derive(Clone, Copy)]
enum Subject {
    Ipscan,
    Autoblocking,
    Manual,
    Blocked,
    Tripwired,
    PerSource,
    Sweeping,
    /// The egress program, with the host's rejects counted (`set rejected`).
    Egress,
    /// The egress program under the default configuration (nothing counts rejects).
    EgressOff,
    Floor(&'static str),
}

impl Subjects {
    fn load() -> Self {
        Subjects {
            ipscan: primed(load_ipscan()),
            autoblocking: load_ipscan_autoblocking(),
            manual: load_ipscan_manual_block(),
            blocked: load_ipscan_blocked(a4(BLOCKED4)),
            tripwired: primed(load_ipscan_tripwired()),
            per_source: primed(load_ipscan_with(
                "set distributed_flood false\nset distributed_scan false\n",
                "per-source config",
            )),
            sweeping: primed(load_ipscan_with("set tcp_sweep\nset udp_sweep\nset ping_sweep\n", "sweep config")),
            rejecting: rejected(load_ipscan_with("set rejected\n", "rejected config")),
            floors: load_floors(a4(BLOCKED4)),
        }
    }

    fn fd(&self, s: Subject) -> ProgramFd {
        match s {
            Subject::Ipscan => prog_fd(&self.ipscan, PROGRAM_NAME),
            Subject::Autoblocking => prog_fd(&self.autoblocking, PROGRAM_NAME),
            Subject::Manual => prog_fd(&self.manual.0, PROGRAM_NAME),
            Subject::Blocked => prog_fd(&self.blocked, PROGRAM_NAME),
            Subject::Tripwired => prog_fd(&self.tripwired, PROGRAM_NAME),
            Subject::PerSource => prog_fd(&self.per_source, PROGRAM_NAME),
            Subject::Sweeping => prog_fd(&self.sweeping, PROGRAM_NAME),
            Subject::Egress => egress_fd(&self.rejecting),
            Subject::EgressOff => egress_fd(&self.ipscan),
            Subject::Floor(name) => prog_fd(&self.floors, name),
        }
    }
}

/// Runs one per-packet row (`--profile ID`, an id of [`pass_kinds`], [`drop_kinds`] or
/// [`fresh_kinds`]) on a fresh load for `seconds`, in test runs of a million frames, so that
/// `perf record -a` beside it profiles that row alone. Prints the median time per frame.
pub fn profile(id: &str, seconds: u64) {
    ipscan_tests::require_root();
    // A new-source row: every run from new sources ([`in_round`]), through `fresh_sources`,
    // into one load of ipscan (its PROBATION fills as in the row's rounds).
    if let Some((_, what, frame, _)) = fresh_kinds().into_iter().find(|k| k.0 == id) {
        let ipscan = load_ipscan();
        let into_ipscan = fresh_sources_before(&prog_fd(&ipscan, PROGRAM_NAME));
        let fd = prog_fd(&into_ipscan, objs::FRESH_SOURCES_NAME);
        return time_row(id, what, seconds, |run| run_ns(&fd, &in_round(&frame, run as u16), 1_000_000).1);
    }
    let mut kinds: Vec<_> = pass_kinds().into_iter().map(|k| (k.0, k.1, k.2, k.4)).collect();
    kinds.extend(drop_kinds().into_iter().map(|k| (k.0, k.1, k.2, k.4)));
    let Some((_, what, frame, subject)) = kinds.iter().find(|k| k.0 == id) else {
        let mut ids: Vec<_> = kinds.iter().map(|k| k.0).collect();
        ids.extend(fresh_kinds().map(|k| k.0));
        panic!("no per-packet row {id}; one of {ids:?}");
    };
    let subjects = Subjects::load();
    let fd = subjects.fd(*subject);
    time_row(id, what, seconds, |_| run_ns(&fd, frame, 1_000_000).1);
}

/// [`profile`]'s loop: `run(i)` (the `i`th test run's time per frame) for `seconds` after the
/// machine settles, then the median.
fn time_row(id: &str, what: &str, seconds: u64, mut run: impl FnMut(usize) -> f64) {
    settle();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut times = Vec::new();
    while Instant::now() < end {
        times.push(run(times.len()));
    }
    println!("{id} ({what}): median {:.1} ns over {} runs of 1,000,000", median(&mut times), times.len());
}

/// Runs each kind once between runs of the empty program `base_fd` (on `base_frame`): the
/// kinds' samples, the mean of the empty runs on either side of each, and every empty run.
fn bracketed(
    base_fd: &ProgramFd,
    base_frame: &[u8],
    kinds: &[(&str, Vec<u8>, ProgramFd, u32)],
    repeat: u32,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut before = run_ns(base_fd, base_frame, repeat).1;
    let (mut got, mut brackets, mut base) = (Vec::new(), Vec::new(), vec![before]);
    for (id, frame, fd, want) in kinds {
        let (verdict, ns) = run_ns(fd, frame, repeat);
        assert_eq!(verdict, *want, "{id}: verdict {verdict}");
        let after = run_ns(base_fd, base_frame, repeat).1;
        got.push(ns);
        brackets.push((before + after) / 2.0);
        base.push(after);
        before = after;
    }
    (got, brackets, base)
}

/// The per-packet rows that the program drops, run against the empty XDP_DROP program, and the
/// floors of one lookup.
fn drop_kinds() -> [(&'static str, &'static str, Vec<u8>, Target, Subject); 6] {
    [
        (
            "cost_blocked",
            "packet from an auto-blocked source (dropped)",
            syn4(a4(BLOCKED4), 80),
            Target::AtMost(1.8),
            Subject::Blocked,
        ),
        (
            "cost_blocked_udp",
            "UDP datagram from an auto-blocked source (dropped)",
            v4(a4(BLOCKED4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            Target::AtMost(1.8),
            Subject::Blocked,
        ),
        (
            "cost_blocked_manual",
            "packet from a source blocked by hand (dropped)",
            syn4(a4(BY_HAND4), 80),
            Target::AtMost(2.0),
            Subject::Manual,
        ),
        (
            "floor_hash",
            "floor: one LRU hash lookup of the source (20-byte key)",
            syn4(a4(BLOCKED4), 80),
            Target::Info,
            Subject::Floor("floor_hash"),
        ),
        (
            "floor_array",
            "floor: one array read of the source's slot",
            syn4(a4(BLOCKED4), 80),
            Target::Info,
            Subject::Floor("floor_array"),
        ),
        (
            "floor_clock",
            "floor: one bpf_ktime_get_coarse_ns call",
            syn4(a4(BLOCKED4), 80),
            Target::Info,
            Subject::Floor("floor_clock"),
        ),
    ]
}

/// The per-packet rows run against the empty XDP_PASS program: id, what, frame, target (0.0: a
/// floor row, reported only) and the program that runs it.
type Kind = (&'static str, &'static str, Vec<u8>, f64, Subject);

fn pass_kinds() -> [Kind; 29] {
    let mut malformed = ack4();
    malformed[14] = 0x44; // IHL 4: a 16-byte IPv4 header
    // With auto-blocking on, the fast path looks every packet's source up in AUTOBLOCK first:
    // what a benign packet costs there. With an address blocked by hand, in the blocklist.
    [
        ("cost_tcp_ack_v4", "established TCP ACK, IPv4, 100 B data", ack4(), 1.5, Subject::Ipscan),
        (
            "cost_syn_scan_mode",
            "SYN from a source already in scan mode",
            syn4(a4(SCANNER4), 1000),
            5.0,
            Subject::Ipscan,
        ),
        (
            "cost_udp_v4",
            "UDP datagram, IPv4, 32 B",
            v4(a4(ATTACKER4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            4.5,
            Subject::Ipscan,
        ),
        (
            "cost_icmp_echo_v4",
            "ICMP echo request, IPv4, 56 B",
            v4(a4(ATTACKER4), &L4::Icmp { ty: 8, code: 0 }, 56),
            4.0,
            Subject::Ipscan,
        ),
        ("cost_tcp_ack_v6", "established TCP ACK, IPv6, 100 B data", ack6(), 1.5, Subject::Ipscan),
        (
            "cost_syn_v6_scan_mode",
            "SYN from an IPv6 source in scan mode",
            syn6(a6(SCANNER6), 1000),
            5.0,
            Subject::Ipscan,
        ),
        ("cost_malformed", "malformed frame (IPv4 IHL 4), counted and passed", malformed, 1.5, Subject::Ipscan),
        (
            "cost_tcp_ack_v4_autoblocking",
            "established TCP ACK, IPv4, auto-blocking on",
            ack4(),
            1.5,
            Subject::Autoblocking,
        ),
        (
            "cost_tcp_ack_v6_autoblocking",
            "established TCP ACK, IPv6, auto-blocking on",
            ack6(),
            1.5,
            Subject::Autoblocking,
        ),
        (
            "cost_tcp_ack_v4_manual_block",
            "established TCP ACK, IPv4, another address blocked by hand",
            ack4(),
            1.5,
            Subject::Manual,
        ),
        (
            "cost_tcp_ack_v6_manual_block",
            "established TCP ACK, IPv6, another address blocked by hand",
            ack6(),
            1.5,
            Subject::Manual,
        ),
        (
            "cost_syn_scan_mode_tripwires",
            "SYN from a source in scan mode, tripwires configured (not this port)",
            syn4(a4(SCANNER4), 1000),
            5.0,
            Subject::Tripwired,
        ),
        (
            "cost_udp_v4_tripwires",
            "UDP datagram, IPv4, 32 B, tripwires configured (not this port)",
            v4(a4(ATTACKER4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            4.5,
            Subject::Tripwired,
        ),
        (
            "cost_syn_scan_mode_per_source",
            "SYN from a source in scan mode, distributed flood and scan off",
            syn4(a4(SCANNER4), 1000),
            5.0,
            Subject::PerSource,
        ),
        (
            "cost_udp_v4_per_source",
            "UDP datagram, IPv4, 32 B, distributed flood and scan off",
            v4(a4(ATTACKER4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            4.5,
            Subject::PerSource,
        ),
        (
            "cost_icmp_echo_v4_per_source",
            "ICMP echo request, IPv4, 56 B, distributed flood and scan off",
            v4(a4(ATTACKER4), &L4::Icmp { ty: 8, code: 0 }, 56),
            4.0,
            Subject::PerSource,
        ),
        (
            "cost_syn_scan_mode_sweeps",
            "SYN from a source in scan mode, sweeps on",
            syn4(a4(SCANNER4), 1000),
            5.0,
            Subject::Sweeping,
        ),
        (
            "cost_udp_v4_sweeps",
            "UDP datagram, IPv4, 32 B, sweeps on",
            v4(a4(ATTACKER4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            4.5,
            Subject::Sweeping,
        ),
        ("cost_egress_off", "egress: the host's ACK, nothing counts rejects", ack4_sent(), 1.5, Subject::EgressOff),
        ("cost_egress_ack", "egress: the host's ACK, set rejected", ack4_sent(), 1.5, Subject::Egress),
        (
            "cost_egress_reset",
            "egress: the host's reset to a source in rejected mode, set rejected",
            reset4(5),
            4.5,
            Subject::Egress,
        ),
        // The floors of the detection rows above (bench/ebpf/src/bin/floor.rs): the same frame
        // parsed in full, and one lookup and one update of its first detection's entry.
        (
            "floor_detect_syn",
            "floor: SYN parsed, one SOURCES-shaped entry looked up and updated",
            syn4(a4(SCANNER4), 1000),
            0.0,
            Subject::Floor("floor_detect"),
        ),
        (
            "floor_detect_syn_v6",
            "floor: IPv6 SYN parsed, one SOURCES-shaped entry looked up and updated",
            syn6(a6(SCANNER6), 1000),
            0.0,
            Subject::Floor("floor_detect"),
        ),
        (
            "floor_detect_udp",
            "floor: UDP datagram parsed, one SOURCES-shaped entry looked up and updated",
            v4(a4(ATTACKER4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            0.0,
            Subject::Floor("floor_detect"),
        ),
        (
            "floor_detect_echo",
            "floor: ICMP echo request parsed, one SOURCES-shaped entry looked up and updated",
            v4(a4(ATTACKER4), &L4::Icmp { ty: 8, code: 0 }, 56),
            0.0,
            Subject::Floor("floor_detect"),
        ),
        // The same frames' floors under the default configuration, for a program whose
        // detections share their state: the source's entry and the target's probation slot.
        (
            "floor_shared_syn",
            "floor: SYN parsed, the source's entry and the target's probation slot",
            syn4(a4(SCANNER4), 1000),
            0.0,
            Subject::Floor("floor_shared"),
        ),
        (
            "floor_shared_syn_v6",
            "floor: IPv6 SYN parsed, the source's entry and the target's probation slot",
            syn6(a6(SCANNER6), 1000),
            0.0,
            Subject::Floor("floor_shared"),
        ),
        (
            "floor_shared_udp",
            "floor: UDP datagram parsed, the source's entry and the target's probation slot",
            v4(a4(ATTACKER4), &L4::Udp { sport: 40000, dport: 53 }, 32),
            0.0,
            Subject::Floor("floor_shared"),
        ),
        (
            "floor_shared_echo",
            "floor: ICMP echo request parsed, the source's entry and the target's probation slot",
            v4(a4(ATTACKER4), &L4::Icmp { ty: 8, code: 0 }, 56),
            0.0,
            Subject::Floor("floor_shared"),
        ),
    ]
}

fn per_packet(o: &Options, rows: &mut Vec<Row>) {
    const S: &str = "per-packet cost";
    let pass = load_object(objs::BASELINE_PASS, objs::BASELINE_PASS_NAME, None);
    let drop = load_object(objs::BASELINE_DROP, objs::BASELINE_DROP_NAME, None);
    let pass_fd = prog_fd(&pass, objs::BASELINE_PASS_NAME);
    let drop_fd = prog_fd(&drop, objs::BASELINE_DROP_NAME);
    // How runs are timed, settled before anything heavy is loaded.
    timing(&pass_fd, &ack4(), o.repeat);

    let kinds = pass_kinds();
    // A source the kernel auto-blocked: its packets are dropped at the AUTOBLOCK lookup, before
    // any protocol is looked at. Next to it, the floors: what one ingredient costs alone.
    let syn = syn4(a4(BLOCKED4), 80);
    let drops = drop_kinds();

    // Every round loads the programs afresh ([`Subjects`]) and runs each kind between two runs
    // of the empty program, its ratio to their mean (on a shared machine the speed moves within
    // a round, which lasts seconds), so drift hits all of them alike.
    let mut base = Vec::new();
    let mut base_drop = Vec::new();
    let mut samples = vec![Vec::new(); kinds.len()];
    let mut brackets = vec![Vec::new(); kinds.len()];
    let mut got = vec![Vec::new(); drops.len()];
    let mut drop_brackets = vec![Vec::new(); drops.len()];
    for _ in 0..o.rounds {
        let subjects = Subjects::load();
        settle();
        // The egress program lets every frame go (TC_ACT_OK, 0).
        let verdict = |s: Subject| if matches!(s, Subject::Egress | Subject::EgressOff) { 0 } else { XDP_PASS };
        let run: Vec<_> = kinds.iter().map(|k| (k.0, k.2.clone(), subjects.fd(k.4), verdict(k.4))).collect();
        let (s, b, all) = bracketed(&pass_fd, &ack4(), &run, o.repeat);
        let run: Vec<_> = drops.iter().map(|k| (k.0, k.2.clone(), subjects.fd(k.4), XDP_DROP)).collect();
        let (g, db, all_drop) = bracketed(&drop_fd, &syn, &run, o.repeat);
        for i in 0..kinds.len() {
            samples[i].push(s[i]);
            brackets[i].push(b[i]);
        }
        for i in 0..drops.len() {
            got[i].push(g[i]);
            drop_brackets[i].push(db[i]);
        }
        base.extend(all);
        base_drop.extend(all_drop);
    }
    let base_ns = median(&mut base.clone());
    let base_drop_ns = median(&mut base_drop.clone());
    let note = format!(
        "{} rounds of BPF_PROG_TEST_RUN repeat={} ({}), each on a fresh load, medians; ratio: median of the per-round ratios, each to the empty runs on either side",
        o.rounds,
        o.repeat,
        timing_label()
    );
    rows.push(Row {
        id: "cost_baseline_pass".into(),
        section: S,
        what: "baseline: empty XDP_PASS program".into(),
        value: Some(base_ns),
        unit: "ns",
        baseline: None,
        target: Target::Info,
        paired: None,
        to_floor: None,
        note: note.clone(),
        detail: json!({"samples_ns": base}),
    });
    rows.push(Row {
        id: "cost_baseline_drop".into(),
        section: S,
        what: "baseline: empty XDP_DROP program".into(),
        value: Some(base_drop_ns),
        unit: "ns",
        baseline: None,
        target: Target::Info,
        paired: None,
        to_floor: None,
        note: note.clone(),
        detail: json!({"samples_ns": base_drop}),
    });
    for (i, (id, what, _, max, _)) in kinds.iter().enumerate() {
        let baseline = (base_ns, "empty XDP_PASS");
        // A floor row has no target (0.0); a detection row its ratio to its floor's.
        let target = if *max > 0.0 { Target::AtMost(*max) } else { Target::Info };
        let mut row = bracketed_row(id, what, (&samples[i], &brackets[i]), baseline, target, &note);
        if let Some(floor) = floor_of(id)
            && let Some(f) = kinds.iter().position(|k| k.0 == floor)
        {
            row.to_floor = Some((paired_ratio(&samples[i], &samples[f]), floor));
        }
        rows.push(row);
    }
    {
        let ipscan = load_ipscan();
        rows.push(new_source_row(o, &pass_fd, &prog_fd(&ipscan, PROGRAM_NAME), base_ns));
    }
    for (id, what, frame, max) in fresh_kinds() {
        rows.extend(fresh_sources_row(o, &pass_fd, (id, what, &frame, max), false));
    }
    // Benign traffic from many sources while the kernel auto-blocks: each packet's source is
    // looked up in AUTOBLOCK and is not there.
    let ack = v6(a6("2001:db8:f::1"), &L4::tcp(40000, 443, 0x10), 100);
    rows.extend(fresh_sources_row(
        o,
        &pass_fd,
        ("cost_ack_fresh_sources_autoblocking", "established TCP ACK", &ack, 1.5),
        true,
    ));

    for (i, (id, what, _, target, _)) in drops.into_iter().enumerate() {
        let baseline = (base_drop_ns, "empty XDP_DROP");
        rows.push(bracketed_row(id, what, (&got[i], &drop_brackets[i]), baseline, target, &note));
    }
}

/// New sources of each kind that a spoofed flood sends: every one is counted on probation
/// (SYN: port scan and SYN scan; UDP: UDP scan and UDP flood; echo: ping flood). Id, what, the
/// frame ([`in_round`] gives it its sources), target.
fn fresh_kinds() -> [(&'static str, &'static str, Vec<u8>, f64); 3] {
    [
        ("cost_syn_fresh_sources", "SYN", syn6(a6("2001:db8:f::1"), 80), 6.0),
        (
            "cost_udp_fresh_sources",
            "UDP datagram (32 B)",
            v6(a6("2001:db8:f::1"), &L4::Udp { sport: 40000, dport: 53 }, 32),
            6.0,
        ),
        (
            "cost_echo_fresh_sources",
            "ICMPv6 echo request (56 B)",
            v6(a6("2001:db8:f::1"), &L4::Icmp { ty: 128, code: 0 }, 56),
            6.0,
        ),
    ]
}

/// The id of a new-source row's floor row (`floor_probation_syn` for `cost_syn_fresh_sources`).
fn floor_label(id: &str) -> &'static str {
    match id {
        "cost_syn_fresh_sources" => "floor_probation_syn",
        "cost_udp_fresh_sources" => "floor_probation_udp",
        _ => "floor_probation_echo",
    }
}

/// The floor row of a per-packet detection row: the same frame, parsed, and one entry looked up
/// and updated ([`Subject::Floor`] `floor_detect`).
fn floor_of(id: &str) -> Option<&'static str> {
    Some(match id {
        "cost_syn_scan_mode"
        | "cost_syn_scan_mode_tripwires"
        | "cost_syn_scan_mode_per_source"
        | "cost_syn_scan_mode_sweeps" => "floor_detect_syn",
        "cost_syn_v6_scan_mode" => "floor_detect_syn_v6",
        "cost_udp_v4" | "cost_udp_v4_tripwires" | "cost_udp_v4_per_source" | "cost_udp_v4_sweeps" => "floor_detect_udp",
        "cost_icmp_echo_v4" | "cost_icmp_echo_v4_per_source" => "floor_detect_echo",
        _ => return None,
    })
}

/// A per-packet row from [`bracketed`] runs: its samples and the mean of the empty runs on
/// either side of each, the ratio the median of their quotients.
fn bracketed_row(
    id: &str,
    what: &str,
    (samples, brackets): (&[f64], &[f64]),
    baseline: (f64, &'static str),
    target: Target,
    note: &str,
) -> Row {
    Row {
        id: id.into(),
        section: "per-packet cost",
        what: what.into(),
        value: Some(median(&mut samples.to_vec())),
        unit: "ns",
        baseline: Some(baseline),
        target,
        paired: Some(paired_ratio(samples, brackets)),
        to_floor: None,
        note: note.into(),
        detail: json!({"samples_ns": samples, "baseline_samples_ns": brackets}),
    }
}

/// The floor programs, with `src` in both of their tables.
fn load_floors(src: Ipv4Addr) -> Ebpf {
    let mut ebpf = ok(EbpfLoader::new().load(objs::FLOOR), "floor object");
    for name in ["floor_hash", "floor_array", "floor_clock", "floor_detect", "floor_shared", "floor_probation"] {
        let prog: &mut Xdp = ok(ebpf.program_mut(name).unwrap_or_else(|| panic!("no program {name}")).try_into(), name);
        ok(prog.load(), name);
    }
    let a = u32::from_le_bytes(src.octets());
    let entry = ipscan_common::BlockEntry { added_ns: u64::from(a), ..Default::default() };
    let mut hash: BpfHashMap<_, ipscan_common::AddrKey, ipscan_common::BlockEntry> =
        ok(BpfHashMap::try_from(ebpf.map_mut("FLOOR_HASH").expect("FLOOR_HASH")), "FLOOR_HASH");
    ok(hash.insert(ipscan_common::AddrKey::v4(src.octets()), entry, 0), "FLOOR_HASH insert");
    let mut arr: aya::maps::Array<_, ipscan_common::BlockEntry> =
        ok(aya::maps::Array::try_from(ebpf.map_mut("FLOOR_ARRAY").expect("FLOOR_ARRAY")), "FLOOR_ARRAY");
    ok(arr.set(ipscan_bench_common::floor_slot(a), entry, 0), "FLOOR_ARRAY set");
    ebpf
}

/// `fresh_sources` (a new IPv6 source per run, then a tail call) in front of `next`.
fn fresh_sources_before(next: &ProgramFd) -> Ebpf {
    let mut ebpf = load_object(objs::FRESH_SOURCES, objs::FRESH_SOURCES_NAME, None);
    let map = ebpf.map_mut(objs::FRESH_SOURCES_NEXT).expect("NEXT");
    let mut next_map: aya::maps::ProgramArray<_> = ok(aya::maps::ProgramArray::try_from(map), "NEXT");
    ok(next_map.set(0, next, 0), "NEXT slot 0");
    ebpf
}

/// An untagged IPv6 frame whose source has `round` as its fourth group: each test run starts
/// from the frame as given, so without it every round would replay the sources of the first,
/// and a second packet from a source within its window admits it to SOURCES (the floods count
/// packets), which is not what a new source costs.
fn in_round(frame: &[u8], round: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[28..30].copy_from_slice(&round.to_be_bytes());
    f
}

/// `what` (a frame of `frame`'s kind) from a new source, `repeat` of them per run:
/// `fresh_sources` gives every test run a new IPv6 source and tail-calls a fresh ipscan (default
/// configuration, or auto-blocking SYN scanners); the same wrapper around the empty program,
/// interleaved, is subtracted, and the empty program's own run added back.
fn fresh_sources_row(
    o: &Options,
    pass_fd: &ProgramFd,
    (id, what, frame, max): (&'static str, &str, &[u8], f64),
    autoblocking: bool,
) -> Vec<Row> {
    let into_empty = fresh_sources_before(pass_fd);
    let wrap_empty = prog_fd(&into_empty, objs::FRESH_SOURCES_NAME);
    let (mut with_ipscan, mut with_empty, mut base, mut samples) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The floor: the same new sources, each parsed and kept in one array slot (`floor_probation`).
    let (mut with_floor, mut floor_samples) = (Vec::new(), Vec::new());
    let mut sources = 0;
    for round in 0..o.rounds {
        // A fresh load each round, as for the other rows (see [`Subjects`]).
        let ipscan = if autoblocking { load_ipscan_autoblocking() } else { load_ipscan() };
        let into_ipscan = fresh_sources_before(&prog_fd(&ipscan, PROGRAM_NAME));
        let wrap_ipscan = prog_fd(&into_ipscan, objs::FRESH_SOURCES_NAME);
        let floors = load_floors(a4(BLOCKED4));
        let into_floor = fresh_sources_before(&prog_fd(&floors, "floor_probation"));
        let wrap_floor = prog_fd(&into_floor, objs::FRESH_SOURCES_NAME);
        settle();
        let frame = in_round(frame, round as u16);
        let b = run_ns(pass_fd, &ack4(), o.repeat).1;
        let (verdict, w) = run_ns(&wrap_ipscan, &frame, o.repeat);
        assert_eq!(verdict, XDP_PASS, "ipscan behind fresh_sources: verdict {verdict}");
        let (verdict, e) = run_ns(&wrap_empty, &frame, o.repeat);
        assert_eq!(verdict, XDP_PASS, "the empty program behind fresh_sources: verdict {verdict}");
        let (verdict, f) = run_ns(&wrap_floor, &frame, o.repeat);
        assert_eq!(verdict, XDP_PASS, "floor_probation behind fresh_sources: verdict {verdict}");
        with_floor.push(f);
        floor_samples.push(b + (f - e).max(0.0));
        with_ipscan.push(w);
        with_empty.push(e);
        base.push(b);
        samples.push(b + (w - e).max(0.0));
        sources += stat(&ipscan, stats::PACKETS);
        // One packet per source: none may have been admitted, or the row measured admissions.
        // (Their one target is: the distributed flood counts every packet there.)
        let admitted = {
            let m: BpfHashMap<_, SourceKey, SourceState> =
                ok(BpfHashMap::try_from(ipscan.map(maps::SOURCES).expect("SOURCES")), "SOURCES");
            m.keys().filter_map(Result::ok).filter(|k| !k.detection().is_some_and(|d| d.per_target())).count()
        };
        assert_eq!(admitted, 0, "{id}: sources admitted to SOURCES, so not all were new");
    }
    assert!(sources >= u64::from(o.repeat) * o.rounds as u64, "ipscan ran {sources} times");
    let paired = paired_ratio(&samples, &base);
    let row = Row {
        id: id.into(),
        section: "per-packet cost",
        what: format!(
            "{what} from a new source, {} new IPv6 sources in a row{}",
            o.repeat,
            if autoblocking { ", auto-blocking on" } else { "" }
        ),
        value: Some(median(&mut samples.clone())),
        unit: "ns",
        baseline: Some((median(&mut base.clone()), "empty XDP_PASS")),
        target: Target::AtMost(max),
        paired: Some(paired),
        to_floor: (!autoblocking).then(|| (paired_ratio(&samples, &floor_samples), floor_label(id))),
        note: format!(
            "median of {} rounds of BPF_PROG_TEST_RUN repeat={} ({}): empty + (fresh_sources->ipscan - fresh_sources->empty)",
            o.rounds,
            o.repeat,
            timing_label()
        ),
        detail: json!({
            "samples_ns": samples,
            "fresh_sources_ipscan_ns": with_ipscan,
            "fresh_sources_empty_ns": with_empty,
            "fresh_sources_floor_probation_ns": with_floor,
            "floor_samples_ns": floor_samples,
            "baseline_samples_ns": base,
            "ipscan_runs": sources,
        }),
    };
    if autoblocking {
        return vec![row];
    }
    let floor = Row {
        id: floor_label(id).into(),
        section: "per-packet cost",
        what: format!("floor: {what} from a new source, parsed, one array slot read and written"),
        value: Some(median(&mut floor_samples.clone())),
        unit: "ns",
        baseline: Some((median(&mut base.clone()), "empty XDP_PASS")),
        target: Target::Info,
        paired: Some(paired_ratio(&floor_samples, &base)),
        to_floor: None,
        note: format!(
            "median of {} rounds of BPF_PROG_TEST_RUN repeat={}: empty + (fresh_sources->floor_probation - fresh_sources->empty)",
            o.rounds, o.repeat
        ),
        detail: json!({"samples_ns": floor_samples, "baseline_samples_ns": base}),
    };
    vec![row, floor]
}

/// "SYN from a new source, one test run each" (info): each source gets its own run with
/// repeat=1, alternating with the empty program run the same way. A single run's kernel figure
/// carries a fixed overhead (the clock reads and BH toggling around one run) that repeat=1M
/// amortises, so the row reports
///   cost = baseline(repeat=1M) + [median ipscan(repeat=1) - median baseline(repeat=1)],
/// i.e. ipscan's extra time per new source on top of the empty program's amortised cost.
/// The SOURCES LRU fills after 32,768 sources (two entries per raw SYN), so with more sources
/// than that most runs also evict.
fn new_source_row(o: &Options, pass_fd: &ProgramFd, fd: &ProgramFd, base_ns: f64) -> Row {
    let mut ip = Vec::with_capacity(o.new_sources as usize);
    let mut bp = Vec::with_capacity(o.new_sources as usize);
    let mut wall_ip = Vec::with_capacity(o.new_sources as usize);
    let mut wall_bp = Vec::with_capacity(o.new_sources as usize);
    for i in 0..o.new_sources {
        // 198.19.0.0/16 plus the high bits in the destination port keep every frame distinct.
        let src = Ipv4Addr::new(198, 19, (i >> 8) as u8, i as u8);
        let frame = syn4(src, 1 + (i >> 16) as u16);
        let t = Instant::now();
        bp.push(run_ns(pass_fd, &frame, 1).1);
        wall_bp.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        ip.push(run_ns(fd, &frame, 1).1);
        wall_ip.push(t.elapsed().as_nanos() as f64);
    }
    let (mi, mb) = (median(&mut ip), median(&mut bp));
    let (wi, wb) = (median(&mut wall_ip), median(&mut wall_bp));
    Row {
        id: "cost_syn_new_source".into(),
        section: "per-packet cost",
        what: "SYN from a new source, one test run each (caches cold after each syscall)".into(),
        value: Some(base_ns + (mi - mb).max(0.0)),
        unit: "ns",
        baseline: Some((base_ns, "empty XDP_PASS")),
        target: Target::Info,
        paired: None,
        to_floor: None,
        note: format!("{} sources, repeat=1 each: baseline(1M) + median(ipscan) - median(empty)", o.new_sources),
        detail: json!({
            "sources": o.new_sources,
            "median_repeat1_ipscan_ns": mi,
            "median_repeat1_empty_ns": mb,
            "median_wall_per_call_ipscan_ns": wi,
            "median_wall_per_call_empty_ns": wb,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Throughput

/// One throughput measurement's figures.
#[derive(Clone, Copy, Debug)]
struct Tput {
    /// Frames received by the victim's interface per second of generator time.
    pps: f64,
    sent: u64,
    rx: u64,
    /// ipscan's own STATS packets counter (ipscan only).
    xdp_packets: Option<u64>,
    /// ipscan's STATS dropped counter (ipscan only).
    xdp_dropped: Option<u64>,
}

struct Traffic {
    id: &'static str,
    what: &'static str,
    frame: Vec<u8>,
    /// Generator source rewriting (0, 4, 6).
    vary: u8,
    min_ratio: f64,
    /// How ipscan is configured ([`Victim::Ipscan`]: the default).
    ipscan: Victim,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Victim {
    Pass,
    Drop,
    Ipscan,
    /// ipscan with the generator's source already auto-blocked.
    IpscanBlocked,
    /// ipscan auto-blocking SYN scanners, primed by the flood itself until every source of
    /// the scan flood has crossed the threshold.
    IpscanAutoblocking,
    /// ipscan with one address (not the generator's) blocked by hand.
    IpscanManualBlock,
    /// One of the floor programs (by name).
    Floor(&'static str),
}

fn measure(
    bed: &Testbed,
    o: &Options,
    victim: Victim,
    baselines: &mut (Ebpf, Ebpf),
    gen_fd: &ProgramFd,
    frame: &[u8],
) -> Tput {
    let mut ipscan = match victim {
        Victim::Ipscan => Some(load_ipscan()),
        Victim::IpscanBlocked => Some(load_ipscan_blocked(a4(ATTACKER4))),
        Victim::IpscanAutoblocking => Some(load_ipscan_autoblocking()),
        // The block stays in the program's map when the tables' file descriptors close.
        Victim::IpscanManualBlock => Some(load_ipscan_manual_block().0),
        _ => None,
    };
    let mut floor = match victim {
        Victim::Floor(name) => Some(load_object(objs::FLOOR, name, None)),
        _ => None,
    };
    let is_ipscan = ipscan.is_some();
    let (ebpf, name) = match victim {
        Victim::Floor(name) => (floor.as_mut().expect("loaded"), name),
        Victim::Pass => (&mut baselines.0, objs::BASELINE_PASS_NAME),
        Victim::Drop => (&mut baselines.1, objs::BASELINE_DROP_NAME),
        Victim::Ipscan | Victim::IpscanBlocked | Victim::IpscanAutoblocking | Victim::IpscanManualBlock => {
            (ipscan.as_mut().expect("loaded"), PROGRAM_NAME)
        }
    };
    let link = attach(bed, ebpf, name);
    let (sent, secs, rx, xdp_packets) = {
        let _ns = InNetNs::enter(&bed.attacker);
        let ifindex = loader::if_index(&bed.attacker_if).expect("attacker interface");
        // Warm-up: caches, page pools, the veth's NAPI; for the scan flood, twelve probes of
        // every source (the threshold is ten ports).
        let warm = match victim {
            Victim::IpscanAutoblocking => 12 * u64::from(objs::GENERATOR_SCAN_SOURCES),
            _ => 10_000.min(o.tput_packets),
        };
        generate(gen_fd, ifindex, frame, warm, Instant::now() + o.tput_max, &mut |_| false);
        thread::sleep(Duration::from_millis(20));
        let rx0 = rx_packets(&bed.victim, &bed.victim_if);
        let st0 = is_ipscan.then(|| (stat(ebpf, stats::PACKETS), stat(ebpf, stats::DROPPED)));
        let (sent, secs) =
            generate(gen_fd, ifindex, frame, o.tput_packets, Instant::now() + o.tput_max, &mut |_| false);
        let rx = rx_packets(&bed.victim, &bed.victim_if) - rx0;
        let xdp = st0.map(|(p0, d0)| (stat(ebpf, stats::PACKETS) - p0, stat(ebpf, stats::DROPPED) - d0));
        (sent, secs, rx, xdp)
    };
    detach(ebpf, name, link);
    Tput {
        pps: rx as f64 / secs,
        sent,
        rx,
        xdp_packets: xdp_packets.map(|x| x.0),
        xdp_dropped: xdp_packets.map(|x| x.1),
    }
}

fn throughput(o: &Options, rows: &mut Vec<Row>) {
    const S: &str = THROUGHPUT;
    let bed = Testbed::new();
    let traffics = [
        Traffic {
            id: "tput_benign_v4",
            what: "benign IPv4 TCP ACK, one flow",
            frame: ack4(),
            vary: 0,
            min_ratio: 0.9,
            ipscan: Victim::Ipscan,
        },
        Traffic {
            id: "tput_benign_v6",
            what: "benign IPv6 TCP ACK, one flow",
            frame: ack6(),
            vary: 0,
            min_ratio: 0.9,
            ipscan: Victim::Ipscan,
        },
        // Benign traffic from many clients while ipscan auto-blocks scanners: every packet's
        // source is looked up in AUTOBLOCK (and is not there).
        Traffic {
            id: "tput_benign_many_autoblocking",
            what: "benign IPv4 TCP ACK, 65,536 rotating sources, auto-blocking on",
            frame: v4(a4("198.19.0.0"), &L4::tcp(40000, 443, 0x10), 100),
            vary: 4,
            min_ratio: 0.9,
            ipscan: Victim::IpscanAutoblocking,
        },
        // The same with an address blocked by hand: every packet's source is looked up in the
        // blocklist (an LPM lookup).
        Traffic {
            id: "tput_benign_many_manual_block",
            what: "benign IPv4 TCP ACK, 65,536 rotating sources, another address blocked by hand",
            frame: v4(a4("198.19.0.0"), &L4::tcp(40000, 443, 0x10), 100),
            vary: 4,
            min_ratio: 0.9,
            ipscan: Victim::IpscanManualBlock,
        },
        Traffic {
            id: "tput_syn_flood_v4",
            what: "SYN flood, 65,536 rotating IPv4 sources",
            frame: syn4(a4("198.19.0.0"), 80),
            vary: 4,
            min_ratio: 0.85,
            ipscan: Victim::Ipscan,
        },
    ];
    let mut baselines = (
        load_object(objs::BASELINE_PASS, objs::BASELINE_PASS_NAME, None),
        load_object(objs::BASELINE_DROP, objs::BASELINE_DROP_NAME, None),
    );
    for t in &traffics {
        let gen_ebpf = load_object(objs::GENERATOR_TX, objs::GENERATOR_TX_NAME, Some(t.vary));
        let gen_fd = prog_fd(&gen_ebpf, objs::GENERATOR_TX_NAME);
        let mut m: [Vec<Tput>; 3] = Default::default();
        for _ in 0..o.tput_rounds {
            for (i, v) in [Victim::Pass, Victim::Drop, t.ipscan].into_iter().enumerate() {
                m[i].push(measure(&bed, o, v, &mut baselines, &gen_fd, &t.frame));
            }
        }
        let pps = |v: &[Tput]| v.iter().map(|x| x.pps).collect::<Vec<_>>();
        let med = |v: &[Tput]| median(&mut pps(v));
        let (pass, drop, ips) = (med(&m[0]), med(&m[1]), med(&m[2]));
        let detail = |v: &[Tput]| {
            v.iter()
                .map(|x| json!({"pps": x.pps, "sent": x.sent, "rx_packets": x.rx, "xdp_stats_packets": x.xdp_packets, "xdp_stats_dropped": x.xdp_dropped}))
                .collect::<Vec<_>>()
        };
        let note =
            format!("median of {} x {} frames; ratio: median of the per-round ratios", o.tput_rounds, o.tput_packets);
        rows.push(Row {
            id: format!("{}_empty_pass", t.id),
            section: S,
            what: format!("{}: empty XDP_PASS", t.what),
            value: Some(pass),
            unit: "pps",
            baseline: None,
            target: Target::Info,
            paired: None,
            to_floor: None,
            note: note.clone(),
            detail: json!(detail(&m[0])),
        });
        rows.push(Row {
            id: format!("{}_empty_drop", t.id),
            section: S,
            what: format!("{}: empty XDP_DROP", t.what),
            value: Some(drop),
            unit: "pps",
            baseline: Some((pass, "empty XDP_PASS")),
            target: Target::Info,
            paired: Some(paired_ratio(&pps(&m[1]), &pps(&m[0]))),
            to_floor: None,
            note: note.clone(),
            detail: json!(detail(&m[1])),
        });
        rows.push(Row {
            id: t.id.into(),
            section: S,
            what: format!("{}: ipscan", t.what),
            value: Some(ips),
            unit: "pps",
            baseline: Some((pass, "empty XDP_PASS")),
            target: Target::AtLeast(t.min_ratio),
            paired: Some(paired_ratio(&pps(&m[2]), &pps(&m[0]))),
            to_floor: None,
            note,
            detail: json!(detail(&m[2])),
        });
    }
    // A SYN flood from one source that ipscan has auto-blocked, against the empty XDP_DROP.
    let gen_ebpf = load_object(objs::GENERATOR_TX, objs::GENERATOR_TX_NAME, Some(0));
    let one = Flood {
        id: "tput_syn_flood_autoblock",
        what: "SYN flood from one source, ipscan auto-blocking it",
        victim: Victim::IpscanBlocked,
        frame: syn4(a4(ATTACKER4), 80),
        note: format!("median of {} x {} frames; ratio: median of the per-round ratios", o.tput_rounds, o.tput_packets),
        target: Target::AtLeast(0.9),
    };
    rows.push(one.row(&bed, o, &mut baselines, &prog_fd(&gen_ebpf, objs::GENERATOR_TX_NAME)));

    // A random-source SYN scan flood (16,384 sources, each probing ever new ports) against a
    // policy that auto-blocks SYN scanners: each source is blocked on its tenth port, and from
    // then on its packets are dropped on the fast path. Measured after every source has sent
    // twelve probes, against the empty XDP_DROP.
    let gen_ebpf = load_object(objs::GENERATOR_TX, objs::GENERATOR_TX_NAME, Some(objs::GENERATOR_SCAN_FLOOD));
    let many = Flood {
        id: "tput_scan_flood_autoblock",
        what: "random-source SYN scan flood (16,384 sources), ipscan auto-blocking them",
        victim: Victim::IpscanAutoblocking,
        frame: syn4(a4("198.19.0.0"), 1),
        note: format!(
            "median of {} x {} frames after 12 x 16,384 priming frames; ratio: median of the per-round ratios",
            o.tput_rounds, o.tput_packets
        ),
        target: Target::AtLeast(0.8),
    };
    rows.push(many.row(&bed, o, &mut baselines, &prog_fd(&gen_ebpf, objs::GENERATOR_TX_NAME)));

    // Floors for that flood: one read of the source's slot per frame, then a drop, from tables
    // of AUTOBLOCK's layout and size, of one cache line per slot, and of an eighth the slots.
    // What separates them is how much memory 16,384 sources spread over (see floor.rs).
    for (name, what) in [
        ("floor_flood_72", "floor for that flood: one read of a 72-byte slot of 65,536 (AUTOBLOCK's layout, 4.7 MB)"),
        ("floor_flood_64", "floor for that flood: one read of a 64-byte slot of 65,536 (4 MB)"),
        ("floor_flood_dense", "floor for that flood: one read of a 64-byte slot of 8,192 (512 KB)"),
    ] {
        let floor = Flood {
            id: name,
            what,
            victim: Victim::Floor(name),
            frame: syn4(a4("198.19.0.0"), 1),
            note: format!(
                "median of {} x {} frames; ratio: median of the per-round ratios",
                o.tput_rounds, o.tput_packets
            ),
            target: Target::Info,
        };
        rows.push(floor.row(&bed, o, &mut baselines, &prog_fd(&gen_ebpf, objs::GENERATOR_TX_NAME)));
    }
}

const THROUGHPUT: &str = "throughput (veth, native XDP)";

/// A flood that ipscan (or a floor program) drops, measured against the empty XDP_DROP.
struct Flood {
    id: &'static str,
    what: &'static str,
    victim: Victim,
    frame: Vec<u8>,
    note: String,
    target: Target,
}

impl Flood {
    fn row(self, bed: &Testbed, o: &Options, baselines: &mut (Ebpf, Ebpf), gen_fd: &ProgramFd) -> Row {
        let (mut drop, mut ips) = (Vec::new(), Vec::new());
        for _ in 0..o.tput_rounds {
            drop.push(measure(bed, o, Victim::Drop, baselines, gen_fd, &self.frame));
            ips.push(measure(bed, o, self.victim, baselines, gen_fd, &self.frame));
        }
        let pps = |v: &[Tput]| v.iter().map(|x| x.pps).collect::<Vec<_>>();
        Row {
            id: self.id.into(),
            section: THROUGHPUT,
            what: self.what.into(),
            value: Some(median(&mut pps(&ips))),
            unit: "pps",
            baseline: Some((median(&mut pps(&drop)), "empty XDP_DROP")),
            target: self.target,
            paired: Some(paired_ratio(&pps(&ips), &pps(&drop))),
            to_floor: None,
            note: self.note,
            detail: json!({
                "measured": ips.iter().map(|x| json!({"pps": x.pps, "sent": x.sent, "xdp_stats_packets": x.xdp_packets, "xdp_stats_dropped": x.xdp_dropped})).collect::<Vec<_>>(),
                "drop_pps": drop.iter().map(|x| x.pps).collect::<Vec<_>>(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. State exhaustion

/// A BPF map held by a process, from /proc/PID/fdinfo.
#[derive(Debug)]
struct MapFd {
    id: u32,
    name: String,
    max_entries: u64,
    memlock: u64,
}

fn process_maps(pid: u32) -> Vec<MapFd> {
    let mut out = Vec::new();
    let dir = format!("/proc/{pid}/fd");
    for e in ok(fs::read_dir(&dir), &dir).flatten() {
        let is_map = fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:bpf-map");
        if !is_map {
            continue;
        }
        let info =
            fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy())).unwrap_or_default();
        let field = |k: &str| {
            info.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
        };
        let id = field("map_id:") as u32;
        let name = MapData::from_id(id)
            .and_then(|m| m.info())
            .ok()
            .and_then(|i| i.name_as_str().map(str::to_owned))
            .unwrap_or_default();
        // The same map may be open twice; count it once.
        if out.iter().any(|m: &MapFd| m.id == id) {
            continue;
        }
        out.push(MapFd { id, name, max_entries: field("max_entries:"), memlock: field("memlock:") });
    }
    out
}

fn vm_rss_bytes(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn map_entries(id: u32) -> u64 {
    let map = Map::LruHashMap(ok(MapData::from_id(id), "SOURCES by id"));
    let m: BpfHashMap<_, SourceKey, SourceState> = ok(BpfHashMap::try_from(map), "SOURCES");
    m.keys().count() as u64
}

fn state_exhaustion(o: &Options, rows: &mut Vec<Row>) {
    const S: &str = "state exhaustion";
    let bed = Testbed::new();
    let dir = TempDir::new();
    let daemon = Daemon::start(&bed.victim, &bed.victim_if, &dir, &[]);
    let pid = daemon.pid();
    let maps0 = process_maps(pid);
    let sources = maps0
        .iter()
        .find(|m| m.name == maps::SOURCES)
        .unwrap_or_else(|| panic!("the daemon holds no SOURCES map: {maps0:?}"));
    let (sources_id, bound) = (sources.id, sources.max_entries);
    let mem0: u64 = maps0.iter().map(|m| m.memlock).sum();
    let rss0 = vm_rss_bytes(pid);

    // Distinct IPv6 sources: 2001:db8:5ca1::/48 with the CPU and a 32-bit counter in the low bits.
    let gen_ebpf = load_object(objs::GENERATOR_TX, objs::GENERATOR_TX_NAME, Some(6));
    let gen_fd = prog_fd(&gen_ebpf, objs::GENERATOR_TX_NAME);
    let frame = syn6(a6("2001:db8:5ca1::"), 80);
    let mut nmap = bed
        .attacker
        .cmd("timeout")
        .args([
            "-s",
            "INT",
            "120",
            "nmap",
            "-sS",
            "-n",
            "-Pn",
            "-T4",
            "--max-retries",
            "2",
            "-p",
            o.nmap_ports,
            VICTIM4,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start nmap: {e}"));
    let started = Instant::now();
    // Flood until both the source budget is spent and nmap has finished (bounded in time).
    let (sent, secs) = {
        let _ns = InNetNs::enter(&bed.attacker);
        let ifindex = loader::if_index(&bed.attacker_if).expect("attacker interface");
        let mut nmap_running = |_sent: u64| matches!(nmap.try_wait(), Ok(None));
        generate(&gen_fd, ifindex, &frame, o.flood_sources, started + o.flood_max, &mut nmap_running)
    };
    let nmap_status = nmap.wait().ok();
    let nmap_secs = started.elapsed().as_secs_f64();
    let detected = daemon.wait_log_quiet(Duration::from_secs(5), |l| {
        l.contains("SYN scan detected") && l.contains(&format!("from {ATTACKER4} "))
    });
    let maps1 = process_maps(pid);
    let mem1: u64 = maps1.iter().map(|m| m.memlock).sum();
    let rss1 = vm_rss_bytes(pid);
    let entries = map_entries(sources_id);
    drop(daemon);

    let flood_note = format!(
        "{sent} SYNs from {} IPv6 sources in {secs:.1} s while `nmap -sS -p {}` ran ({})",
        sent.min(1 << 32),
        o.nmap_ports,
        nmap_status.map_or("not waited".into(), |s| s.to_string())
    );
    rows.push(Row {
        id: "exhaust_scan_detected".into(),
        section: S,
        what: "nmap -sS during the flood: detection lines logged".into(),
        value: Some(detected as f64),
        unit: "lines",
        baseline: None,
        target: Target::AtLeast(1.0),
        paired: None,
        to_floor: None,
        note: flood_note.clone(),
        detail: json!({"flood_packets": sent, "flood_secs": secs, "nmap_secs": nmap_secs}),
    });
    rows.push(Row {
        id: "exhaust_sources_entries".into(),
        section: S,
        what: "SOURCES entries after the flood".into(),
        value: Some(entries as f64),
        unit: "entries",
        baseline: Some((bound as f64, "max_entries")),
        target: Target::AtMost(1.0),
        paired: None,
        to_floor: None,
        note: "LRU hash: a flood evicts cold entries, never grows".into(),
        detail: json!({"max_entries": bound}),
    });
    rows.push(Row {
        id: "exhaust_map_memory".into(),
        section: S,
        what: "kernel map memory (memlock, all maps) after the flood".into(),
        value: Some(mem1 as f64),
        unit: "bytes",
        baseline: Some((mem0 as f64, "before the flood")),
        target: Target::AtMost(1.0),
        paired: None,
        to_floor: None,
        note: "from /proc/PID/fdinfo of the daemon's map descriptors".into(),
        detail: json!(
            maps1
                .iter()
                .map(|m| json!({"name": m.name, "max_entries": m.max_entries, "memlock": m.memlock}))
                .collect::<Vec<_>>()
        ),
    });
    rows.push(Row {
        id: "exhaust_daemon_rss".into(),
        section: S,
        what: "daemon RSS after the flood".into(),
        value: Some(rss1 as f64),
        unit: "bytes",
        baseline: Some((rss0 as f64, "before the flood")),
        target: Target::Info,
        paired: None,
        to_floor: None,
        note: "VmRSS of `ipscan run`".into(),
        detail: Value::Null,
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Threat feeds

const FEEDS: &str = "threat feeds";

/// A deterministic stream of pseudo-random words (splitmix64): every run imports the same feeds.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = self.0;
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One prefix as a blocklist feed lists it. IPv4: 60% hosts, 25% /24s, 10% /25../31 and 5%
/// /16../23, in 1.0.0.0-223.255.255.255 outside 10/8, 127/8 and 198.18.0.0/15 (the bench's own
/// senders). IPv6: in 2000::/3 outside 2001:db8::/32, 40% /48s, 20% /32../47, 20% /56s, 10% /64s
/// and 10% hosts; none shorter than /32, which would reach into every IPv6 bucket of
/// BLOCKCOUNTS and have every IPv6 packet looked up.
fn feed_prefix(mix: &mut Mix, v6: bool) -> IpNet {
    let bench4 = u32::from(a4(ATTACKER4)) >> 17;
    loop {
        let pick = mix.below(100);
        let net = if v6 {
            let len = match pick {
                0..40 => 48,
                40..60 => 32 + mix.below(16) as u8,
                60..80 => 56,
                80..90 => 64,
                _ => 128,
            };
            let a = (u128::from(mix.next()) << 64 | u128::from(mix.next())) >> 3 | 1 << 125;
            (a >> 96 != 0x2001_0db8).then(|| IpNet::new(Ipv6Addr::from(a).into(), len))
        } else {
            let len = match pick {
                0..60 => 32,
                60..85 => 24,
                85..95 => 25 + mix.below(7) as u8,
                _ => 16 + mix.below(8) as u8,
            };
            let a = mix.next() as u32;
            let first = a >> 24;
            let public = !matches!(first, 0 | 10 | 127 | 224..) && a >> 17 != bench4;
            public.then(|| IpNet::new(Ipv4Addr::from(a).into(), len))
        };
        if let Some(net) = net.flatten() {
            return net;
        }
    }
}

/// A [`feed_prefix`] that `seen` does not hold yet (now it does).
fn new_prefix(mix: &mut Mix, seen: &mut HashSet<IpNet>, v6: bool) -> IpNet {
    loop {
        let net = feed_prefix(mix, v6);
        if seen.insert(net) {
            return net;
        }
    }
}

/// Whether a prefix of `nets` covers `a`.
fn covered(nets: &HashSet<IpNet>, a: IpAddr) -> bool {
    let host = if a.is_ipv4() { 32 } else { 128 };
    (0..=host).any(|len| IpNet::new(a, len).is_some_and(|n| nets.contains(&n)))
}

/// `a` with its bits past the first `keep` taken from `r`.
fn with_tail(a: IpAddr, keep: u32, r: u64) -> IpAddr {
    match a {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) & !(u32::MAX >> keep) | r as u32 & u32::MAX >> keep).into(),
        IpAddr::V6(a) => {
            let r = u128::from(r) << 64 | u128::from(r.rotate_left(32));
            Ipv6Addr::from(u128::from(a) & !(u128::MAX >> keep) | r & u128::MAX >> keep).into()
        }
    }
}

/// One family's feed as a round imports it.
struct FamilyFeed {
    /// The set's name.
    name: &'static str,
    nets: Vec<IpNet>,
    /// The daily refresh: every hundredth prefix replaced by a new one.
    refreshed: Vec<IpNet>,
    /// A sender under a prefix of both versions (dropped).
    listed: IpAddr,
    /// A sender in the BLOCKCOUNTS bucket of a listed prefix (its IPv4 /16, its IPv6 /32) that
    /// no prefix of either version covers: the program looks it up in the feed trie and misses.
    near: IpAddr,
}

impl FamilyFeed {
    fn generate(mix: &mut Mix, n: usize, v6: bool) -> Self {
        assert!(n >= 2, "a feed of {n} prefixes");
        let mut seen = HashSet::with_capacity(n + n / 100 + 1);
        let nets: Vec<IpNet> = (0..n).map(|_| new_prefix(mix, &mut seen, v6)).collect();
        let refreshed = nets
            .iter()
            .enumerate()
            .map(|(i, net)| if i % 100 == 0 { new_prefix(mix, &mut seen, v6) } else { *net })
            .collect();
        // `seen` holds both versions. Index 1 is kept by the refresh.
        let keep = if v6 { 32 } else { 16 };
        let near = nets[1..]
            .iter()
            .flat_map(|net| (0..64).map(move |_| net.addr()))
            .map(|a| with_tail(a, keep, mix.next()))
            .find(|a| !covered(&seen, *a))
            .expect("an address near the feed that it does not list");
        Self { name: if v6 { "bench6" } else { "bench4" }, listed: nets[1].addr(), near, nets, refreshed }
    }
}

/// Time a step took: wall, and the thread's user and system CPU time (its own code, and the
/// kernel's map calls), in seconds.
#[derive(Clone, Copy, Debug, Default)]
struct Took {
    wall: f64,
    user: f64,
    sys: f64,
}

/// The calling thread's user and system CPU time, in seconds.
fn thread_times() -> (f64, f64) {
    // SAFETY: rusage is plain integers, for which zero is a value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills one rusage, which `u` is.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    assert_eq!(r, 0, "getrusage(RUSAGE_THREAD): {}", std::io::Error::last_os_error());
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_utime), secs(u.ru_stime))
}

/// Runs `f`: the time it took.
fn timed(f: impl FnOnce()) -> Took {
    let ((user0, sys0), t) = (thread_times(), Instant::now());
    f();
    let wall = t.elapsed().as_secs_f64();
    let (user1, sys1) = thread_times();
    Took { wall, user: user1 - user0, sys: sys1 - sys0 }
}

/// Makes the set `name` hold `nets`, as `ipscan block import FILE --set NAME` does.
fn import(tables: &mut Tables, name: &str, nets: &[IpNet]) -> Took {
    let (feeds, counts) = ok(tables.feeds_mut(), "feeds");
    let set = NewSet { name, nets, expires_ns: 0, source: "bench", loaded_unix_ns: 0 };
    timed(|| {
        ok(feeds.import(counts, &set), name);
    })
}

/// `n` with thousands separated by commas.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The kernel's unreclaimable slab memory (`SUnreclaim` of /proc/meminfo), in bytes.
fn slab_unreclaimable() -> u64 {
    let s = ok(fs::read_to_string("/proc/meminfo"), "/proc/meminfo");
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("SUnreclaim:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kb.expect("SUnreclaim in /proc/meminfo") * 1024
}

/// Waits for the kernel to free a round's tries (a worker frees them node by node after the
/// last descriptor closes), so that the next round's slab figure starts from rest: until
/// `SUnreclaim` moves by less than 1 MB in 200 ms, 10 s at most.
fn wait_freed() {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before = slab_unreclaimable();
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        let now = slab_unreclaimable();
        if now.abs_diff(before) < 1 << 20 {
            return;
        }
        before = now;
    }
}

/// The memlock of this process's feed tries, as /proc/self/fdinfo reports it.
fn feed_memlock() -> u64 {
    let names = [maps::FEED4_A, maps::FEED4_B, maps::FEED6_A, maps::FEED6_B];
    process_maps(std::process::id()).iter().filter(|m| names.contains(&m.name.as_str())).map(|m| m.memlock).sum()
}

/// Drops of the set `name` in FEEDDROPS.
fn feed_drops(tables: &Tables, name: &str) -> u64 {
    let feeds = tables.feeds().expect("feeds");
    feeds.sets().iter().find(|s| s.name == name).map_or(0, |s| s.packets)
}

/// A round's figures.
#[derive(Default)]
struct FeedRound {
    /// The load of each family's set, a read of the live tries back (which every import makes
    /// first), then each set's refresh.
    load: [Took; 2],
    read: Took,
    refresh: [Took; 2],
    /// Kernel memory the two sets took: the slab figure's growth, and the tries' memlock
    /// before and after.
    slab: i64,
    memlock: [u64; 2],
}

/// The threat feeds: each round loads ipscan afresh, imports the IPv4 set then the IPv6 set
/// (timed), reads the kernel memory they took, times a read of the tries back, refreshes both
/// sets (timed), and runs the packets between runs of the empty programs, as the per-packet
/// section does.
///
/// Memory: the growth of `SUnreclaim` (the slab, where the trie nodes are allocated) over the
/// two imports, the median of the rounds. The tries' memlock in fdinfo is the kernel's own
/// figure (map_mem_usage), but for an LPM trie it is the prefix count times one node's size
/// (a node's header, key and value): it leaves out the intermediate nodes the trie adds where
/// prefixes branch and the slab's rounding, so it is reported alongside, not as the measure.
/// The slab figure is the whole machine's; over hundreds of MB its noise is small, and the
/// rounds show it.
fn threat_feeds(o: &Options, rows: &mut Vec<Row>) {
    let mut mix = Mix(0x5eed_f33d);
    let feeds = [FamilyFeed::generate(&mut mix, o.feed_v4, false), FamilyFeed::generate(&mut mix, o.feed_v6, true)];
    let empty_pass = load_object(objs::BASELINE_PASS, objs::BASELINE_PASS_NAME, None);
    let empty_drop = load_object(objs::BASELINE_DROP, objs::BASELINE_DROP_NAME, None);
    let pass_fd = prog_fd(&empty_pass, objs::BASELINE_PASS_NAME);
    let drop_fd = prog_fd(&empty_drop, objs::BASELINE_DROP_NAME);
    timing(&pass_fd, &ack4(), o.repeat);
    let frame = |src: IpAddr, l4: &L4, payload: usize| match src {
        IpAddr::V4(a) => v4(a, l4, payload),
        IpAddr::V6(a) => v6(a, l4, payload),
    };
    let ack = L4::tcp(40000, 443, 0x10);
    let benign: Vec<(String, String, Vec<u8>)> = feeds
        .iter()
        .zip(["v4", "v6"])
        .map(|(f, v)| {
            let what = format!("established TCP ACK, IP{v}, near the feed's prefixes but under none");
            (format!("cost_tcp_ack_{v}_feed_near"), what, frame(f.near, &ack, 100))
        })
        .collect();
    let listed: Vec<(String, String, Vec<u8>)> = feeds
        .iter()
        .zip(["v4", "v6"])
        .map(|(f, v)| {
            let what = format!("SYN from a source the IP{v} feed lists (dropped)");
            (format!("cost_feed_drop_{v}"), what, frame(f.listed, &L4::syn(40000, 80), 0))
        })
        .collect();
    let (mut rounds, mut base, mut base_drop) = (Vec::new(), Vec::new(), Vec::new());
    let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut brackets = samples.clone();
    for _ in 0..o.feed_rounds {
        let mut ebpf = load_ipscan();
        let mut tables = ok(Tables::from_ebpf(&mut ebpf), "tables");
        settle();
        let mut r = FeedRound::default();
        let (slab0, memlock0) = (slab_unreclaimable(), feed_memlock());
        for (i, f) in feeds.iter().enumerate() {
            r.load[i] = import(&mut tables, f.name, &f.nets);
        }
        r.slab = slab_unreclaimable() as i64 - slab0 as i64;
        r.memlock = [memlock0, feed_memlock()];
        let feeds_now = tables.feeds().expect("feeds");
        r.read = timed(|| {
            ok(feeds_now.prefixes(feeds[0].name), "read back");
        });
        for (i, f) in feeds.iter().enumerate() {
            r.refresh[i] = import(&mut tables, f.name, &f.refreshed);
        }
        let mut cfg = Config::default();
        cfg.flags |= tables.presence_flags();
        assert_ne!(cfg.flags & ipscan_common::config::global_flags::BLOCKLIST, 0, "the blocklist flag");
        ok(loader::write_config(&mut ebpf, &cfg), "config");
        // Each sender's bucket is counted, so the program makes the LPM lookup.
        let counts = tables.counts().expect("BLOCKCOUNTS");
        for f in &feeds {
            for a in [f.listed, f.near] {
                let (family, w0) = match a {
                    IpAddr::V4(a) => (ipscan_common::FAMILY_V4, a.octets()),
                    IpAddr::V6(a) => (ipscan_common::FAMILY_V6, a.octets()[..4].try_into().expect("4 bytes")),
                };
                let bucket = ipscan_common::block::counts::bucket(family, u32::from_le_bytes(w0));
                assert_ne!(counts.get(bucket), 0, "{a}: its BLOCKCOUNTS bucket is not counted");
            }
        }
        settle();
        // The program's descriptors made here close with the block, so the tries are freed with
        // `ebpf` below and the next round's slab figure starts from rest.
        let ((s, b, all), (g, gb, all_drop)) = {
            let fd = prog_fd(&ebpf, PROGRAM_NAME);
            (
                bracketed(&pass_fd, &ack4(), &on(&benign, &fd, XDP_PASS), o.repeat),
                bracketed(&drop_fd, &listed[0].2, &on(&listed, &fd, XDP_DROP), o.repeat),
            )
        };
        for (i, (x, y)) in s.iter().chain(&g).zip(b.iter().chain(&gb)).enumerate() {
            samples[i].push(*x);
            brackets[i].push(*y);
        }
        base.extend(all);
        base_drop.extend(all_drop);
        // The drops were the feeds' own: each set counted its sender's runs.
        for f in &feeds {
            let n = feed_drops(&tables, f.name);
            assert!(n >= u64::from(o.repeat), "set {}: {n} drops, {} runs", f.name, o.repeat);
        }
        assert!(stat(&ebpf, stats::BLOCKED) >= 2 * u64::from(o.repeat), "STATS blocked");
        rounds.push(r);
        drop((tables, ebpf));
        wait_freed();
    }
    rows.extend(feed_rows(o, &feeds, &rounds));
    let note = format!(
        "{} rounds of BPF_PROG_TEST_RUN repeat={} ({}), each on a fresh load with the feeds imported, medians; ratio: median of the per-round ratios, each to the empty runs on either side",
        o.feed_rounds,
        o.repeat,
        timing_label()
    );
    let (base_ns, base_drop_ns) = (median(&mut base), median(&mut base_drop));
    for (i, (id, what, _)) in benign.iter().chain(&listed).enumerate() {
        let baseline = if i < 2 { (base_ns, "empty XDP_PASS") } else { (base_drop_ns, "empty XDP_DROP") };
        // Reported, not judged: the issue sets no target, and the cost is one LPM lookup in a
        // trie of a million prefixes, hit or miss (about 5x already with 11,000).
        let row = bracketed_row(id, what, (&samples[i], &brackets[i]), baseline, Target::Info, &note);
        rows.push(Row { section: FEEDS, ..row });
    }
}

/// `kinds` (id, what, frame) as [`bracketed`] runs them: on `fd`, each expecting `verdict`.
fn on<'a>(
    kinds: &'a [(String, String, Vec<u8>)],
    fd: &ProgramFd,
    verdict: u32,
) -> Vec<(&'a str, Vec<u8>, ProgramFd, u32)> {
    kinds.iter().map(|k| (k.0.as_str(), k.2.clone(), ok(fd.try_clone(), "dup program fd"), verdict)).collect()
}

/// The load, refresh and memory rows of [`threat_feeds`].
fn feed_rows(o: &Options, feeds: &[FamilyFeed; 2], rounds: &[FeedRound]) -> Vec<Row> {
    let took = |ts: Vec<Took>| {
        let wall: Vec<f64> = ts.iter().map(|t| t.wall).collect();
        let detail = json!({
            "wall_s": wall,
            "user_s": ts.iter().map(|t| t.user).collect::<Vec<_>>(),
            "sys_s": ts.iter().map(|t| t.sys).collect::<Vec<_>>(),
        });
        (median(&mut wall.clone()), detail)
    };
    let info = |id: String, what: String, (value, detail): (f64, Value), unit, note: String| Row {
        id,
        section: FEEDS,
        what,
        value: Some(value),
        unit,
        baseline: None,
        target: Target::Info,
        paired: None,
        to_floor: None,
        note,
        detail,
    };
    let mut rows = Vec::new();
    let how = format!(
        "median of {} rounds, each into a fresh ipscan; wall time of `Feeds::import` (detail: the thread's user and system CPU time)",
        o.feed_rounds
    );
    for (i, (f, v)) in feeds.iter().zip(["v4", "v6"]).enumerate() {
        let n = f.nets.len();
        let what = format!("load {} IP{v} prefixes (a new set; the IPv6 one after the IPv4 one)", thousands(n));
        rows.push(info(
            format!("feed_load_{v}"),
            what,
            took(rounds.iter().map(|r| r.load[i]).collect()),
            "s",
            how.clone(),
        ));
        let what = format!("refresh them with 1% changed ({} out, as many in)", thousands(n.div_ceil(100)));
        rows.push(info(
            format!("feed_refresh_{v}"),
            what,
            took(rounds.iter().map(|r| r.refresh[i]).collect()),
            "s",
            how.clone(),
        ));
    }
    let n = feeds.iter().map(|f| f.nets.len()).sum::<usize>();
    let what =
        format!("read the live tries back ({} prefixes), as an import does for its set's families", thousands(n));
    let note = format!("median of {} rounds, wall time of `Feeds::prefixes` after the loads", o.feed_rounds);
    rows.push(info("feed_read".into(), what, took(rounds.iter().map(|r| r.read).collect()), "s", note));
    let prefixes = n as f64;
    let slab: Vec<f64> = rounds.iter().map(|r| r.slab as f64).collect();
    let memlock: Vec<[u64; 2]> = rounds.iter().map(|r| r.memlock).collect();
    let slab_med = median(&mut slab.clone());
    let detail = json!({"sunreclaim_growth_bytes": slab, "feed_tries_memlock_bytes": memlock, "prefixes": prefixes});
    let note = format!(
        "growth of SUnreclaim (/proc/meminfo) over the two loads, median of {} rounds; both tries of each family hold every prefix",
        o.feed_rounds
    );
    rows.push(info(
        "feed_kernel_memory".into(),
        "kernel memory of the loaded feeds (slab growth)".into(),
        (slab_med, detail.clone()),
        "bytes",
        note.clone(),
    ));
    rows.push(info(
        "feed_memory_per_prefix".into(),
        "the same per prefix".into(),
        (slab_med / prefixes, detail),
        "B/prefix",
        note,
    ));
    let m = memlock.last().map_or(0.0, |[before, after]| after.saturating_sub(*before) as f64);
    rows.push(info(
        "feed_memlock".into(),
        "the feed tries' memlock growth (fdinfo: the kernel's estimate)".into(),
        (m, json!({"per_prefix": m / prefixes, "before_after_bytes": memlock})),
        "bytes",
        "sum over FEED4_A/B and FEED6_A/B of /proc/self/fdinfo memlock: entries x one node's size, without the trie's intermediate nodes".into(),
    ));
    rows
}

// ---------------------------------------------------------------------------------------------
// Machine, table, JSON

pub(crate) fn machine() -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        cpuinfo.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
    };
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "cpu": field("model name"),
        "cores": thread::available_parallelism().map_or(0, |n| n.get()),
        "virtualized": field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor")),
        "kernel": kernel.trim(),
        "date": date,
    })
}

fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "ns" => format!("{v:.1} ns"),
        "pps" => format!("{:.3} Mpps", v / 1e6),
        "bytes" if v >= 1e6 => format!("{:.1} MB", v / 1e6),
        "bytes" => format!("{:.1} kB", v / 1e3),
        "s" => format!("{v:.2} s"),
        _ => format!("{v:.0} {unit}"),
    }
}

/// The aligned text table.
pub fn table(machine: &Value, rows: &[Row]) -> String {
    let mut out = format!(
        "machine: {} ({} cores{}), kernel {}, {}\n",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        if machine["virtualized"] == true { ", virtualized" } else { "" },
        machine["kernel"].as_str().unwrap_or("?"),
        machine["date"].as_str().unwrap_or("?"),
    );
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.what.clone(),
                r.value.map_or("n/a".into(), |v| fmt_value(v, r.unit)),
                r.baseline.map_or("-".into(), |(b, n)| format!("{} ({n})", fmt_value(b, r.unit))),
                r.ratio().map_or("-".into(), |x| fmt_ratio(x, r.target)),
                r.target.text(),
                r.status().into(),
                r.to_floor.map_or("-".into(), |(x, _)| format!("{x:.2}x")),
            ]
        })
        .collect();
    let head = ["row", "value", "baseline (same run)", "ratio", "target", "result", "to floor"];
    let mut w = head.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, x) in c.iter().enumerate() {
            let pad = w[i] - x.chars().count();
            if i == 1 || i == 3 || i == 6 {
                s.push_str(&" ".repeat(pad));
                s.push_str(x);
            } else {
                s.push_str(x);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut section = "";
    for (r, c) in rows.iter().zip(&cells) {
        if r.section != section {
            section = r.section;
            out.push_str(&format!("\n{section}\n"));
            out.push_str(&line(&head.map(str::to_owned)));
        }
        out.push_str(&line(c));
    }
    out
}

/// A ratio to two places, or three where two would print the target itself (a "1.50x" that
/// misses 1.50x).
fn fmt_ratio(x: f64, target: Target) -> String {
    let two = format!("{x:.2}");
    match target {
        Target::AtMost(t) | Target::AtLeast(t) if two == format!("{t:.2}") && x != t => format!("{x:.3}x"),
        _ => format!("{two}x"),
    }
}

/// The JSON document written to `--json`.
pub fn to_json(machine: &Value, o: &Options, smoke: bool, rows: &[Row]) -> Value {
    json!({
        "machine": machine,
        "smoke": smoke,
        "test_run_timing": TIMING.get().map(|t| json!({
            "fixed_cost_ns": t.fixed_ns,
            "fixed_cost_spread_ns": t.spread_ns,
            "per_run_from": if t.cpu_time { "thread CPU time less the fixed cost" } else { "the kernel's whole ns" },
        })),
        "options": {
            "repeat": o.repeat,
            "rounds": o.rounds,
            "new_sources": o.new_sources,
            "throughput_packets": o.tput_packets,
            "throughput_rounds": o.tput_rounds,
            "flood_sources": o.flood_sources,
            "feed_v4": o.feed_v4,
            "feed_v6": o.feed_v6,
            "feed_rounds": o.feed_rounds,
        },
        "rows": rows.iter().map(|r| json!({
            "id": r.id,
            "section": r.section,
            "what": r.what,
            "value": r.value,
            "unit": r.unit,
            "baseline": r.baseline.map(|b| b.0),
            "baseline_name": r.baseline.map(|b| b.1),
            "ratio": r.ratio(),
            "to_floor": r.to_floor.map(|(x, floor)| json!({"ratio": x, "floor": floor})),
            "target": r.target.json(),
            "status": r.status(),
            "note": r.note,
            "detail": r.detail,
        })).collect::<Vec<_>>(),
    })
}

/// Runs every section; prints the table to stdout and writes the JSON to `json_path`.
/// The benchmark's sections, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    PerPacket,
    Throughput,
    Exhaustion,
    Block,
    Feeds,
}

impl Section {
    /// For a section whose traffic comes from the live-frames generator, the id of the one row
    /// it reports when the kernel refuses that mode ([`not_measured`]).
    fn generator_row(self) -> Option<&'static str> {
        match self {
            Section::Throughput => Some("tput_not_measured"),
            Section::Exhaustion => Some("exhaust_not_measured"),
            Section::PerPacket | Section::Block | Section::Feeds => None,
        }
    }
}

/// Whether the kernel runs XDP programs on live frames (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18):
/// one frame through the empty XDP_PASS program on `lo`. The error says why not.
pub fn live_frames() -> Result<(), String> {
    let pass = load_object(objs::BASELINE_PASS, objs::BASELINE_PASS_NAME, None);
    let fd = prog_fd(&pass, objs::BASELINE_PASS_NAME);
    let lo = loader::if_index("lo").ok_or("no loopback interface")?;
    testrun::run_live(&fd, &ack4(), lo, 1, 1)
        .map(drop)
        .map_err(|e| format!("the kernel refuses XDP test runs on live frames (BPF_F_TEST_XDP_LIVE_FRAMES): {e}"))
}

/// The row a section reports instead of its own when its traffic generator cannot run.
fn not_measured(id: &str, what: &str, why: &str) -> Row {
    Row::unmeasured(id, "not measured", format!("{what}: not measured"), why)
}

/// Runs the sections in `only` (all when empty), prints the table and writes the JSON.
pub fn run(smoke: bool, only: &[Section], rounds: Option<u32>, json_path: &Path) -> Value {
    ipscan_tests::require_root();
    let mut o = if smoke { Options::smoke() } else { Options::full() };
    if let Some(r) = rounds {
        o.rounds = r as usize;
    }
    let machine = machine();
    let mut rows = Vec::new();
    // The throughput and state-exhaustion sections send their traffic with the live-frames
    // generator; a kernel may refuse that mode (Linux 6.18.44-fc-v1300 answers EPERM).
    let live = live_frames();
    let mut machine = machine;
    machine["live_frames_refused"] = json!(live.as_ref().err());
    type Measure = fn(&Options, &mut Vec<Row>);
    let sections: [(Section, &str, Measure); 5] = [
        (Section::PerPacket, "per-packet cost (BPF_PROG_TEST_RUN)", per_packet),
        (Section::Throughput, "throughput on a veth pair", throughput),
        (Section::Exhaustion, "state exhaustion (flood + nmap -sS against `ipscan run`)", state_exhaustion),
        (Section::Block, "time to block", time_to_block),
        (Section::Feeds, "threat feeds (a big set loaded, refreshed, and in the way of packets)", threat_feeds),
    ];
    for (section, what, measure) in sections {
        if only.is_empty() || only.contains(&section) {
            eprintln!("bench: {what}");
            if let (Some(id), Err(e)) = (section.generator_row(), &live) {
                eprintln!("bench: {what}: not measured: {e}");
                rows.push(not_measured(id, what, e));
                continue;
            }
            measure(&o, &mut rows);
        }
    }
    print!("{}", table(&machine, &rows));
    let doc = to_json(&machine, &o, smoke, &rows);
    if let Some(dir) = json_path.parent() {
        ok(fs::create_dir_all(dir), "mkdir for the JSON file");
    }
    ok(fs::write(json_path, ok(serde_json::to_string_pretty(&doc), "JSON")), "write JSON");
    println!("\nwrote {}", json_path.display());
    doc
}

// ---------------------------------------------------------------------------------------------
// 4. Time to block

/// Makes a value movable to the reader thread. The aya map handles hold only fds and mmaps of
/// ring-buffer pages, which are safe to use from one other thread at a time.
struct SendCell<T>(T);
// SAFETY: see above; each cell is used by exactly one thread after the move.
unsafe impl<T> Send for SendCell<T> {}

/// Scanner packets that pass after the threshold packet: in the kernel path (auto-block on the
/// threshold packet), and in a user-space path (a thread that waits on the ring buffer like a
/// daemon, and blocks the source when the detection arrives, like an active response).
fn time_to_block(o: &Options, rows: &mut Vec<Row>) {
    const S: &str = "blocking";
    const PROBES: u16 = 3000;
    let trials = o.rounds.max(3);
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    for t in 0..trials {
        // Kernel: the policy is in CONFIG; nothing else runs.
        let scanner = Ipv4Addr::new(198, 18, 10, t as u8 + 1);
        let ebpf = load_ipscan_autoblocking();
        let fd = prog_fd(&ebpf, PROGRAM_NAME);
        let passed =
            (1..=PROBES).map(|port| run_ns(&fd, &syn4(scanner, port), 1).0).skip(9).filter(|v| *v == XDP_PASS).count();
        kernel.push(passed as f64);

        // User space: no policy in the kernel; a reader thread adds the block.
        let mut ebpf = load_ipscan();
        let fd = prog_fd(&ebpf, PROGRAM_NAME);
        let ring = ok(aya::maps::RingBuf::try_from(ebpf.take_map(maps::EVENTS).expect("EVENTS")), "EVENTS");
        // The block goes in as `ipscan block add` puts it (BLOCK4 and its BLOCKCOUNTS bucket).
        let tables = ok(ipscan::kernel::tables::Tables::from_ebpf(&mut ebpf), "block tables");
        let config: aya::maps::Array<MapData, Config> =
            ok(aya::maps::Array::try_from(ebpf.take_map(maps::CONFIG).expect("CONFIG")), "CONFIG");
        let cell = SendCell((ring, tables, config));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done2 = done.clone();
        let reader = thread::spawn(move || {
            // The whole cell moves in (a closure would capture only its fields, which are not Send).
            let cell = cell;
            let SendCell((mut ring, mut tables, mut config)) = cell;
            let mut pfd = libc::pollfd { fd: ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                while let Some(item) = ring.next() {
                    let Some(ev) = ipscan::kernel::events::decode(&item) else { continue };
                    if ev.kind() == Some(ipscan_common::EventKind::Detected) {
                        let src = Ipv4Addr::new(ev.key.addr[0], ev.key.addr[1], ev.key.addr[2], ev.key.addr[3]);
                        let net = ipscan::config::IpNet::host(src.into());
                        ok(tables.block(&net, ipscan_common::BlockEntry::manual(0, 0)), "block");
                        let mut c = ok(config.get(&0, 0), "CONFIG");
                        c.flags |= ipscan_common::config::global_flags::BLOCKLIST;
                        ok(config.set(0, c, 0), "CONFIG");
                        done2.store(true, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        let scanner = Ipv4Addr::new(198, 18, 11, t as u8 + 1);
        let mut passed = 0;
        for port in 1..=PROBES {
            let v = run_ns(&fd, &syn4(scanner, port), 1).0;
            if port >= 10 && v == XDP_PASS {
                passed += 1;
            }
            if done.load(std::sync::atomic::Ordering::SeqCst) && v == XDP_DROP {
                break;
            }
        }
        let _ = reader.join();
        user.push(passed as f64);
        drop(ebpf);
    }
    let note = format!("median of {trials} trials; probes sent back to back with BPF_PROG_TEST_RUN");
    rows.push(Row {
        id: "time_to_block".into(),
        section: S,
        what: "scanner packets passed after the threshold packet, kernel auto-block".into(),
        value: Some(median(&mut kernel.clone())),
        unit: "packets",
        baseline: None,
        target: Target::AtMost(0.0),
        paired: None,
        to_floor: None,
        note: note.clone(),
        detail: json!({"trials": kernel}),
    });
    rows.push(Row {
        id: "time_to_block_userspace".into(),
        section: S,
        what: "the same through a user-space blocking path (ring buffer -> block)".into(),
        value: Some(median(&mut user.clone())),
        unit: "packets",
        baseline: None,
        target: Target::Info,
        paired: None,
        to_floor: None,
        note,
        detail: json!({"trials": user}),
    });
}

/// Default JSON path: target/bench/bench.json in the workspace.
pub fn default_json_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/bench.json")
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ratios_print_a_third_place_only_where_two_would_print_the_target() {
        assert_eq!(fmt_ratio(1.5004, Target::AtMost(1.5)), "1.500x");
        assert_eq!(fmt_ratio(1.4979, Target::AtMost(1.5)), "1.498x");
        assert_eq!(fmt_ratio(1.5, Target::AtMost(1.5)), "1.50x");
        assert_eq!(fmt_ratio(1.4849, Target::AtMost(1.5)), "1.48x");
        assert_eq!(fmt_ratio(0.8951, Target::AtLeast(0.9)), "0.895x");
        assert_eq!(fmt_ratio(1.5004, Target::Info), "1.50x");
    }
}
