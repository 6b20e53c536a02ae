//! The real XDP program under BPF_PROG_TEST_RUN: loaded (not attached) with the replay clock,
//! run on hand-built frames ([`crate::frames`]), its maps, events and counters read back.

use crate::util::require_root;

/// The real XDP program loaded (not attached) with the replay clock, for BPF_PROG_TEST_RUN.
pub struct Prog {
    pub ebpf: aya::Ebpf,
}

impl Prog {
    pub fn load(cfg: &ipscan_common::Config) -> Self {
        require_root();
        let opts = ipscan::kernel::loader::LoadOptions { replay_clock: true, ..Default::default() };
        let mut ebpf = ipscan::kernel::loader::load(&opts).unwrap_or_else(|e| panic!("load: {e}"));
        ipscan::kernel::loader::write_config(&mut ebpf, cfg).unwrap_or_else(|e| panic!("config: {e}"));
        Self { ebpf }
    }

    /// Runs one frame at clock `now_ns`; returns the XDP verdict or the test run's error
    /// (frames the kernel refuses to run, such as ones shorter than an Ethernet header).
    pub fn try_run_at(&mut self, now_ns: u64, frame: &[u8]) -> std::io::Result<u32> {
        ipscan::kernel::loader::set_clock(&mut self.ebpf, now_ns).unwrap_or_else(|e| panic!("clock: {e}"));
        let prog: &aya::programs::Xdp =
            self.ebpf.program(ipscan_common::PROGRAM_NAME).expect("program").try_into().expect("xdp");
        let fd = prog.fd().expect("loaded");
        ipscan::kernel::testrun::run(fd, frame, 1).map(|r| r.verdict)
    }

    /// Runs one frame at clock `now_ns`; returns the XDP verdict.
    pub fn run_at(&mut self, now_ns: u64, frame: &[u8]) -> u32 {
        self.try_run_at(now_ns, frame).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"))
    }

    /// Runs one frame through the egress program at clock `now_ns`, as a frame the host sends;
    /// returns its TC verdict.
    pub fn egress_at(&mut self, now_ns: u64, frame: &[u8]) -> u32 {
        ipscan::kernel::loader::set_clock(&mut self.ebpf, now_ns).unwrap_or_else(|e| panic!("clock: {e}"));
        let prog: &aya::programs::SchedClassifier =
            self.ebpf.program(ipscan_common::EGRESS_PROGRAM_NAME).expect("egress program").try_into().expect("tc");
        let fd = prog.fd().expect("loaded");
        ipscan::kernel::testrun::run(fd, frame, 1).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}")).verdict
    }

    /// Drains the ring buffer.
    pub fn events(&mut self) -> Vec<ipscan_common::Event> {
        let map = self.ebpf.map_mut(ipscan_common::maps::EVENTS).expect("EVENTS");
        let mut ring = aya::maps::RingBuf::try_from(map).expect("ring");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(ipscan::kernel::events::decode(&item).expect("event size"));
        }
        out
    }

    /// Drains the ring buffer and keeps detection-side events (detected, expired, blocked).
    pub fn detections(&mut self) -> Vec<ipscan_common::Event> {
        use ipscan_common::EventKind::*;
        self.events().into_iter().filter(|e| matches!(e.kind(), Some(Detected | Expired | Blocked))).collect()
    }

    /// Writes a map of the loaded program (tests poke BLOCK4, ALLOW4, RULES, LISTEN, ...).
    pub fn map_mut(&mut self, name: &str) -> &mut aya::maps::Map {
        self.ebpf.map_mut(name).unwrap_or_else(|| panic!("no map {name}"))
    }

    /// A STATS counter summed over CPUs (PASSED derived as user space does).
    pub fn stat(&self, slot: u32) -> u64 {
        let map = self.ebpf.map(ipscan_common::maps::STATS).expect("STATS");
        let arr: aya::maps::PerCpuArray<_, u64> = aya::maps::PerCpuArray::try_from(map).expect("percpu");
        let mut all: Vec<u64> =
            (0..ipscan_common::stats::COUNT).map(|s| arr.get(&s, 0).expect("slot").iter().sum()).collect();
        ipscan_common::stats::derive(&mut all);
        all[slot as usize]
    }

    /// The SOURCES entry of (source, detection), if any.
    pub fn source(&self, key: &ipscan_common::SourceKey) -> Option<ipscan_common::SourceState> {
        let map = self.ebpf.map(ipscan_common::maps::SOURCES).expect("SOURCES");
        let m: aya::maps::HashMap<_, ipscan_common::SourceKey, ipscan_common::SourceState> =
            aya::maps::HashMap::try_from(map).expect("hash");
        m.get(key, 0).ok()
    }

    /// The probation of (source, detection), if a way of its set holds that key (at any time).
    pub fn probe(&self, key: &ipscan_common::SourceKey) -> Option<Probation> {
        use ipscan_common::{ProbeSet, probation::PROBATION_WAYS};
        let map = self.ebpf.map(ipscan_common::maps::PROBATION).expect("PROBATION");
        let a: aya::maps::Array<_, ProbeSet> = aya::maps::Array::try_from(map).expect("array");
        let place = ProbeSet::place(key, self.probation_seed());
        let set = a.get(&place.set, 0).expect("set");
        (0..PROBATION_WAYS as usize).find(|i| set.tags[*i] == place.tag && set.holds(*i, key, set.last_ns[*i], 0)).map(
            |i| {
                let w = &set.ways[i];
                Probation {
                    packets: w.packets,
                    bytes: w.bytes,
                    dport: w.dport,
                    sport: w.sport,
                    first_ns: w.first_ns,
                    last_ns: set.last_ns[i],
                }
            },
        )
    }

    /// The PROBATION hash seed (zero until the program first needed it).
    pub fn probation_seed(&self) -> u64 {
        let map = self.ebpf.map(ipscan_common::maps::PROBATION).expect("PROBATION");
        let a: aya::maps::Array<_, ipscan_common::ProbeSet> = aya::maps::Array::try_from(map).expect("array");
        a.get(&ipscan_common::probation::PROBATION_SEED_SLOT, 0).expect("seed entry").seed()
    }

    /// Number of SOURCES entries.
    pub fn source_count(&self) -> usize {
        self.keys().filter(|k| !k.detection().is_some_and(|d| d.per_target())).count()
    }

    /// SOURCES entries kept per target (a distributed flood's or scan's destination host).
    pub fn target_count(&self) -> usize {
        self.keys().filter(|k| k.detection().is_some_and(|d| d.per_target())).count()
    }

    fn keys(&self) -> impl Iterator<Item = ipscan_common::SourceKey> {
        let map = self.ebpf.map(ipscan_common::maps::SOURCES).expect("SOURCES");
        let m: aya::maps::HashMap<_, ipscan_common::SourceKey, ipscan_common::SourceState> =
            aya::maps::HashMap::try_from(map).expect("hash");
        m.keys().map(|k| k.expect("key")).collect::<Vec<_>>().into_iter()
    }
}

/// What a PROBATION way holds for one key ([`Prog::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probation {
    pub packets: u32,
    pub bytes: u64,
    pub dport: u16,
    pub sport: u16,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// The egress program's verdict for every frame (TC_ACT_OK).
pub const TC_ACT_OK: u32 = 0;

/// XDP verdicts.
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// Key of an IPv4 source for a detection.
pub fn key4(a: std::net::Ipv4Addr, d: ipscan_common::Detection) -> ipscan_common::SourceKey {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&a.octets());
    ipscan_common::SourceKey::new(addr, ipscan_common::FAMILY_V4, d)
}

/// Key of an IPv6 source for a detection.
pub fn key6(a: std::net::Ipv6Addr, d: ipscan_common::Detection) -> ipscan_common::SourceKey {
    ipscan_common::SourceKey::new(a.octets(), ipscan_common::FAMILY_V6, d)
}
