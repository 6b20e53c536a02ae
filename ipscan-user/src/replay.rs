//! `ipscan replay`: runs the frames of a pcap or pcapng capture through the real XDP program
//! (BPF_PROG_TEST_RUN) with the capture's timestamps as the detector's clock, and writes the
//! log lines the daemon would have written for that traffic.
//!
//! The program is loaded with the replay clock (it reads the CLOCK map instead of
//! `bpf_ktime_get_coarse_ns`), so windows, thresholds and lapses run on capture time and the same file
//! always gives the same lines. Log stamps are capture time too, shown in the local time zone.
//!
//! Expiries: the tracker is swept on the capture clock before any frame that comes after the
//! earliest instant a mode could have lapsed, and at least once per second of capture time, so
//! every expiry is logged before a later packet can be counted (the kernel never has to report
//! one itself). Expiry lines are stamped with the lapse instant (`last counted packet + window`),
//! not the sweep time: the daemon sweeps once a second and so logs up to a second later, which
//! is the only difference from live output. At the end of the capture the clock is moved past
//! every window and swept once more, so modes still active are logged as if the traffic had
//! stopped there.

use std::{
    borrow::Cow,
    fs::File,
    io::{self, Read, Seek},
    net::IpAddr,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, ProgramFd, SchedClassifier, Xdp},
};
use ipscan_common::{DETECTIONS, EGRESS_PROGRAM_NAME, PROGRAM_NAME, SourceKey, SourceState, maps, stats};
use pcap_file::{
    Endianness, PcapError,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_description::InterfaceDescriptionOption},
};

use crate::{
    clock::WallClock,
    config::Settings,
    kernel::{
        events::decode,
        loader::{self, LoadError, LoadOptions},
        testrun,
    },
    log::{resolve::Plain, sink::Sink, tracker::Tracker},
};

const NS_PER_SEC: u64 = 1_000_000_000;
/// LINKTYPE_ETHERNET: the only link layer the XDP program parses.
const LINKTYPE_ETHERNET: u32 = 1;
/// BPF_PROG_TEST_RUN refuses XDP frames shorter than an Ethernet header (EINVAL).
const MIN_FRAME: usize = 14;
/// Largest frame BPF_PROG_TEST_RUN takes for a program without multi-buffer support: one page
/// less XDP_PACKET_HEADROOM (256) and the skb_shared_info tail (320 on x86-64), as in
/// `bpf_prog_test_run_xdp` (net/bpf/test_run.c, since 5.18). Captures on hosts with GRO hold
/// frames of up to 64 KiB; the program reads headers only and takes the IP payload length from
/// the IP header, so cutting the tail off changes nothing it computes.
const MAX_FRAME: usize = 4096 - 256 - 320;
/// pcapng block magic of a Section Header Block, the first bytes of every pcapng file.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// Classic pcap magics (micro- and nanosecond, both byte orders), as stored on disk.
const PCAP_MAGICS: [u32; 4] = [0xa1b2_c3d4, 0xa1b2_3c4d, 0xd4c3_b2a1, 0x4d3c_b2a1];

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a pcap or pcapng capture", path.display())]
    NotCapture { path: PathBuf },
    #[error("{}: truncated capture (after {frames} frames)", path.display())]
    Truncated { path: PathBuf, frames: u64 },
    #[error("{}: corrupt capture (after {frames} frames): {problem}", path.display())]
    Corrupt { path: PathBuf, frames: u64, problem: String },
    #[error("{}: unsupported link type {linktype}", path.display())]
    LinkType { path: PathBuf, linktype: u32 },
    #[error("{}: frame {frame}: BPF_PROG_TEST_RUN failed: {source}", path.display())]
    TestRun {
        path: PathBuf,
        frame: u64,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Kconfig(#[from] crate::config::kernel::KconfigError),
    #[error("the XDP program has no fd: {source}")]
    Program {
        #[source]
        source: ProgramError,
    },
    #[error("duplicating the program fd: {source}")]
    DupFd {
        #[source]
        source: io::Error,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("writing the log: {source}")]
    Write {
        #[source]
        source: io::Error,
    },
}

/// What a replay did, for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Packet records read from the capture.
    pub frames: u64,
    /// Frames the program could not parse, plus frames too short to run at all.
    pub malformed: u64,
    /// Log lines written (before repeat collapsing).
    pub lines: u64,
    /// Events the ring buffer had no room for (zero unless something is badly wrong: the ring
    /// is drained after every frame).
    pub lost_events: u64,
    /// Frames sent from one of the `--local` addresses, run through the egress program.
    pub sent: u64,
}

/// How a pcapng interface stamps its packets, and what it carries.
#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: u32,
    /// `if_tsresol`: high bit clear, units of 10^-n s; set, units of 2^-n s. Default 6 (µs).
    tsresol: u8,
    /// `if_tsoffset`: seconds added to every timestamp.
    tsoffset: i64,
}

impl Iface {
    fn ts_ns(&self, raw: u64) -> u64 {
        let ns = units_to_ns(raw, self.tsresol);
        ns.saturating_add_signed(self.tsoffset.saturating_mul(NS_PER_SEC as i64))
    }
}

/// Converts a pcapng timestamp in `if_tsresol` units to nanoseconds (saturating).
fn units_to_ns(raw: u64, tsresol: u8) -> u64 {
    let exp = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 != 0 {
        let ns = (u128::from(raw) * u128::from(NS_PER_SEC)) >> exp.min(127);
        u64::try_from(ns).unwrap_or(u64::MAX)
    } else if exp <= 9 {
        raw.saturating_mul(10u64.pow(9 - exp))
    } else {
        // Finer than a nanosecond: 10^(exp-9) exceeds u64 past 10^19, and then every raw
        // value is below one nanosecond.
        10u64.checked_pow(exp - 9).map_or(0, |d| raw / d)
    }
}

enum Format {
    Pcap(PcapReader<File>),
    PcapNg(PcapNgReader<File>),
}

/// An opened, checked capture file.
pub struct Capture {
    path: PathBuf,
    format: Format,
}

impl Capture {
    /// Opens `path` and reads its file header: the errors a user can fix (no such file, not a
    /// capture, wrong link type) come before anything is loaded into the kernel.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let open_err = |source| ReplayError::Open { path: path.to_owned(), source };
        let mut file = File::open(path).map_err(open_err)?;
        let mut magic = [0u8; 4];
        match file.read_exact(&mut magic) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ReplayError::NotCapture { path: path.to_owned() });
            }
            Err(e) => return Err(open_err(e)),
        }
        file.rewind().map_err(open_err)?;
        let truncated_or = |e: PcapError| match e {
            PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                ReplayError::Truncated { path: path.to_owned(), frames: 0 }
            }
            PcapError::IoError(e) => open_err(e),
            _ => ReplayError::NotCapture { path: path.to_owned() },
        };
        let format = if magic == PCAPNG_MAGIC {
            Format::PcapNg(PcapNgReader::new(file).map_err(truncated_or)?)
        } else if PCAP_MAGICS.contains(&u32::from_le_bytes(magic)) {
            let reader = PcapReader::new(file).map_err(truncated_or)?;
            let linktype = u32::from(reader.header().datalink);
            if linktype != LINKTYPE_ETHERNET {
                return Err(ReplayError::LinkType { path: path.to_owned(), linktype });
            }
            Format::Pcap(reader)
        } else {
            return Err(ReplayError::NotCapture { path: path.to_owned() });
        };
        Ok(Self { path: path.to_owned(), format })
    }

    /// Calls `f(timestamp_ns, frame)` for every packet record, in file order. Stops at the first
    /// error, from the file or from `f`. Returns the number of packet records.
    pub fn for_each_frame(
        mut self,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), ReplayError>,
    ) -> Result<u64, ReplayError> {
        let mut frames = 0u64;
        match &mut self.format {
            Format::Pcap(reader) => {
                let nanos = matches!(reader.header().ts_resolution, pcap_file::TsResolution::NanoSecond);
                // Raw records: pcap-file 2.0's checked packets reject `orig_len > snaplen`,
                // which every capture taken with `-s` has.
                loop {
                    let raw = match reader.next_raw_packet() {
                        None => break,
                        Some(Ok(raw)) => raw,
                        Some(Err(e)) => return Err(read_error(&self.path, e, frames)),
                    };
                    let frac = u64::from(raw.ts_frac) * if nanos { 1 } else { 1_000 };
                    let ts = u64::from(raw.ts_sec) * NS_PER_SEC + frac;
                    frames += 1;
                    f(ts, &raw.data)?;
                }
            }
            Format::PcapNg(reader) => {
                let mut endianness = reader.section().endianness;
                let mut ifaces: Vec<Iface> = Vec::new();
                // Simple Packet Blocks carry no timestamp: they get the previous packet's.
                let mut last_ts = 0u64;
                loop {
                    let block = match reader.next_block() {
                        None => break,
                        Some(Ok(b)) => b,
                        Some(Err(e)) => return Err(read_error(&self.path, e, frames)),
                    };
                    let (iface_id, ts_raw, data): (u32, Option<u64>, Cow<'_, [u8]>) = match block {
                        Block::SectionHeader(shb) => {
                            // A new section has its own byte order and interfaces.
                            endianness = shb.endianness;
                            ifaces.clear();
                            continue;
                        }
                        Block::InterfaceDescription(idb) => {
                            let mut iface = Iface { linktype: u32::from(idb.linktype), tsresol: 6, tsoffset: 0 };
                            for opt in &idb.options {
                                match opt {
                                    InterfaceDescriptionOption::IfTsResol(r) => iface.tsresol = *r,
                                    // The option is a signed 64-bit count of seconds.
                                    InterfaceDescriptionOption::IfTsOffset(o) => {
                                        iface.tsoffset = i64::from_ne_bytes(o.to_ne_bytes());
                                    }
                                    _ => {}
                                }
                            }
                            ifaces.push(iface);
                            continue;
                        }
                        // pcap-file 2.0 reads the EPB's two 32-bit timestamp halves into a
                        // Duration of that many nanoseconds, whatever the interface's unit: the
                        // raw count is `as_nanos()`, scaled below with the interface's if_tsresol.
                        Block::EnhancedPacket(epb) => (
                            epb.interface_id,
                            Some(u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX)),
                            epb.data,
                        ),
                        Block::SimplePacket(spb) => (0, None, spb.data),
                        // The obsolete Packet Block: pcap-file reads its high/low halves as one
                        // u64 in the section's byte order, which swaps them in little endian.
                        Block::Packet(pb) => {
                            let ts = match endianness {
                                Endianness::Big => pb.timestamp,
                                Endianness::Little => pb.timestamp.rotate_left(32),
                            };
                            (u32::from(pb.interface_id), Some(ts), pb.data)
                        }
                        _ => continue,
                    };
                    let Some(iface) = ifaces.get(iface_id as usize) else {
                        return Err(ReplayError::Corrupt {
                            path: self.path.clone(),
                            frames,
                            problem: format!("packet on interface {iface_id}, which the capture does not describe"),
                        });
                    };
                    if iface.linktype != LINKTYPE_ETHERNET {
                        return Err(ReplayError::LinkType { path: self.path.clone(), linktype: iface.linktype });
                    }
                    let ts = ts_raw.map_or(last_ts, |raw| iface.ts_ns(raw));
                    last_ts = ts;
                    frames += 1;
                    f(ts, &data)?;
                }
            }
        }
        Ok(frames)
    }
}

fn read_error(path: &Path, e: PcapError, frames: u64) -> ReplayError {
    let path = path.to_owned();
    match e {
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => ReplayError::Truncated { path, frames },
        PcapError::IoError(source) => ReplayError::Open { path, source },
        other => ReplayError::Corrupt { path, frames, problem: other.to_string() },
    }
}

/// The loaded program and the maps replay reads.
struct Detector {
    ebpf: Ebpf,
    prog: ProgramFd,
    /// The egress program, for the frames the host sent.
    egress: ProgramFd,
    events: RingBuf<MapData>,
    sources: BpfHashMap<MapData, SourceKey, SourceState>,
}

impl Detector {
    fn load(settings: &Settings) -> Result<Self, ReplayError> {
        let mut ebpf = loader::load(&LoadOptions { replay_clock: true, ..Default::default() })?;
        // The same CONFIG, RULES and PROMISC the daemon would write for this configuration.
        crate::config::kernel::KernelSettings::load(settings)?.apply(&mut ebpf)?;
        let prog: &Xdp = ebpf
            .program(PROGRAM_NAME)
            .ok_or(LoadError::MissingProgram { name: PROGRAM_NAME })?
            .try_into()
            .map_err(|source| LoadError::ProgramType { name: PROGRAM_NAME, source })?;
        // A clone of the fd, so the Ebpf stays free for set_clock between runs.
        let prog = prog
            .fd()
            .map_err(|source| ReplayError::Program { source })?
            .try_clone()
            .map_err(|source| ReplayError::DupFd { source })?;
        let egress: &SchedClassifier = ebpf
            .program(EGRESS_PROGRAM_NAME)
            .ok_or(LoadError::MissingProgram { name: EGRESS_PROGRAM_NAME })?
            .try_into()
            .map_err(|source| LoadError::ProgramType { name: EGRESS_PROGRAM_NAME, source })?;
        let egress = egress
            .fd()
            .map_err(|source| ReplayError::Program { source })?
            .try_clone()
            .map_err(|source| ReplayError::DupFd { source })?;
        let map_err = |name| move |source| ReplayError::Map { name, source };
        let events = ebpf.take_map(maps::EVENTS).ok_or(LoadError::MissingMap { name: maps::EVENTS })?;
        let events = RingBuf::try_from(events).map_err(map_err(maps::EVENTS))?;
        let sources = ebpf.take_map(maps::SOURCES).ok_or(LoadError::MissingMap { name: maps::SOURCES })?;
        let sources = BpfHashMap::try_from(sources).map_err(map_err(maps::SOURCES))?;
        Ok(Self { ebpf, prog, egress, events, sources })
    }

    /// A STATS slot summed over CPUs.
    fn stat(&self, slot: u32) -> Result<u64, ReplayError> {
        let map = self.ebpf.map(maps::STATS).ok_or(LoadError::MissingMap { name: maps::STATS })?;
        let arr: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| ReplayError::Map { name: maps::STATS, source })?;
        let values = arr.get(&slot, 0).map_err(|source| ReplayError::Map { name: maps::STATS, source })?;
        Ok(values.iter().sum())
    }
}

/// Everything that changes while frames go through.
struct Run<'a> {
    path: &'a Path,
    settings: &'a Settings,
    /// The host's addresses: frames from them are the host's own (`--local`).
    local: &'a [IpAddr],
    sink: &'a mut Sink,
    det: Detector,
    tracker: Tracker,
    wall: WallClock,
    /// The detector's clock: the latest capture timestamp seen (never moves back).
    clock: Option<u64>,
    /// Sweep before the first frame at or after this (the next whole second of capture time).
    next_tick: u64,
    /// Sweep before the first frame after this (the earliest possible lapse).
    next_lapse: Option<u64>,
    stats: ReplayStats,
}

impl Run<'_> {
    fn write(&mut self, at_ns: u64, text: &str) -> Result<(), ReplayError> {
        self.stats.lines += 1;
        self.sink.line(&self.wall.wall(at_ns), text).map_err(|source| ReplayError::Write { source })
    }

    fn sweep(&mut self, now: u64) -> Result<(), ReplayError> {
        let mut doomed = Vec::new();
        let sources = &self.det.sources;
        let lines =
            self.tracker.sweep(now, &self.settings.kernel, &mut Plain, |k| sources.get(k, 0).ok(), |k| doomed.push(*k));
        for k in doomed {
            // Already gone (LRU eviction) is fine: the next packet opens a new window either way.
            let _ = self.det.sources.remove(&k);
        }
        for line in lines {
            self.write(line.at_ns, &line.text)?;
        }
        self.next_lapse = self.tracker.next_lapse(&self.settings.kernel);
        Ok(())
    }

    fn frame(&mut self, ts: u64, data: &[u8]) -> Result<(), ReplayError> {
        // Merged or badly ordered captures can step back a little; the kernel's clock never
        // does, and window arithmetic assumes it.
        let now = self.clock.map_or(ts, |c| c.max(ts));
        if self.clock.is_none() {
            self.next_tick = now;
        }
        self.clock = Some(now);
        if now >= self.next_tick || self.next_lapse.is_some_and(|l| now > l) {
            self.sweep(now)?;
            self.next_tick = (now / NS_PER_SEC + 1) * NS_PER_SEC;
        }
        self.stats.frames += 1;
        if data.len() < MIN_FRAME {
            self.stats.malformed += 1;
            return Ok(());
        }
        loader::set_clock(&mut self.det.ebpf, now)?;
        let data = &data[..data.len().min(MAX_FRAME)];
        let sent = sender(data).is_some_and(|a| self.local.contains(&a));
        self.stats.sent += u64::from(sent);
        let prog = if sent { &self.det.egress } else { &self.det.prog };
        testrun::run(&prog.as_fd(), data, 1).map_err(|source| ReplayError::TestRun {
            path: self.path.to_owned(),
            frame: self.stats.frames,
            source,
        })?;
        let mut events = Vec::new();
        while let Some(item) = self.det.events.next() {
            if let Some(ev) = decode(&item) {
                events.push(ev);
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        for ev in &events {
            if let Some(line) = self.tracker.on_event(ev, &mut Plain) {
                self.write(line.at_ns, &line.text)?;
            }
        }
        self.next_lapse = self.tracker.next_lapse(&self.settings.kernel);
        Ok(())
    }
}

/// The IP source address of an untagged Ethernet frame.
fn sender(frame: &[u8]) -> Option<IpAddr> {
    let ip = frame.get(14..)?;
    match frame.get(12..14)? {
        [0x08, 0x00] => Some(IpAddr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?)),
        [0x86, 0xdd] => Some(IpAddr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?)),
        _ => None,
    }
}

/// Replays the capture at `path` through the programs configured by `settings`, writing log
/// lines to `sink`. Frames sent from one of the `local` addresses (the host's own, in a capture
/// of both directions) go through the egress program, as the host's rejects did; all others
/// through the XDP program.
pub fn replay(path: &Path, settings: &Settings, local: &[IpAddr], sink: &mut Sink) -> Result<ReplayStats, ReplayError> {
    let capture = Capture::open(path)?;
    let det = Detector::load(settings)?;
    let mut tracker = Tracker::new(settings.flags.log_dest);
    tracker.stamp_at_lapse = true;
    tracker.set_config(&settings.kernel);
    tracker.set_escalation(&settings.escalation);
    let mut run = Run {
        path,
        settings,
        local,
        sink,
        det,
        tracker,
        wall: WallClock::epoch(),
        clock: None,
        next_tick: 0,
        next_lapse: None,
        stats: ReplayStats::default(),
    };
    capture.for_each_frame(|ts, data| run.frame(ts, data))?;
    // As if the traffic stopped after the last frame: move the clock past every window so each
    // mode still active lapses, and log it at its lapse instant.
    let end = match run.clock {
        Some(last) => {
            let max_window = DETECTIONS.iter().map(|d| settings.kernel.detection(*d).window_ns).max().unwrap_or(0);
            let end = last.saturating_add(max_window).saturating_add(1);
            run.sweep(end)?;
            end
        }
        None => 0,
    };
    run.sink.finish(&run.wall.wall(end)).map_err(|source| ReplayError::Write { source })?;
    run.stats.malformed += run.det.stat(stats::MALFORMED)?;
    run.stats.lost_events = run.det.stat(stats::LOST_EVENTS)?;
    Ok(run.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamp_units() {
        // Default microseconds, nanoseconds, milliseconds, picoseconds, 2^-10 s, 2^-30 s.
        assert_eq!(units_to_ns(1_795_815_065_977_301, 6), 1_795_815_065_977_301_000);
        assert_eq!(units_to_ns(1_795_815_065_977_301_123, 9), 1_795_815_065_977_301_123);
        assert_eq!(units_to_ns(1_500, 3), 1_500_000_000);
        assert_eq!(units_to_ns(1_500_000, 12), 1_500);
        assert_eq!(units_to_ns(1024 * 5 + 512, 0x80 | 10), 5_500_000_000);
        assert_eq!(units_to_ns(3 << 30, 0x80 | 30), 3_000_000_000);
        // Absurd resolutions saturate or vanish instead of overflowing.
        assert_eq!(units_to_ns(u64::MAX, 0), u64::MAX);
        assert_eq!(units_to_ns(u64::MAX, 127), 0);
        assert_eq!(units_to_ns(u64::MAX, 0x80), u64::MAX);
    }

    #[test]
    fn interface_offset_is_signed_seconds() {
        let i = Iface { linktype: LINKTYPE_ETHERNET, tsresol: 9, tsoffset: 1_000 };
        assert_eq!(i.ts_ns(5), 1_000 * NS_PER_SEC + 5);
        let i = Iface { linktype: LINKTYPE_ETHERNET, tsresol: 6, tsoffset: -1 };
        assert_eq!(i.ts_ns(3_000_000), 2 * NS_PER_SEC);
    }

    #[test]
    fn open_rejects_what_is_not_a_capture() {
        let dir = std::env::temp_dir().join(format!("ipscan-replay-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let short = dir.join("short");
        std::fs::write(&short, b"ab").expect("write");
        assert!(matches!(Capture::open(&short), Err(ReplayError::NotCapture { .. })));
        let text = dir.join("text");
        std::fs::write(&text, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        assert!(matches!(Capture::open(&text), Err(ReplayError::NotCapture { .. })));
        // A pcap header cut short.
        let cut = dir.join("cut");
        std::fs::write(&cut, 0xa1b2_c3d4u32.to_le_bytes()).expect("write");
        assert!(matches!(Capture::open(&cut), Err(ReplayError::Truncated { frames: 0, .. })));
        let missing = dir.join("missing");
        assert!(matches!(Capture::open(&missing), Err(ReplayError::Open { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
