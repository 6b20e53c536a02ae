//! Loads the embedded XDP object, writes its configuration, attaches and detaches it.

use std::{
    ffi::CString,
    io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader, VerifierLogLevel,
    maps::{Array, MapError},
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode, tc::SchedClassifierLinkId, xdp::XdpLinkId},
};
use ipscan_common::{Config, EGRESS_PROGRAM_NAME, GLOBAL_REPLAY_CLOCK, GLOBAL_TEST_REFUSAL, PROGRAM_NAME, maps};

/// The XDP object built by build.rs from the ipscan-ebpf crate.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ipscan"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the XDP program needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON ({source})")]
    NoPrivilege {
        #[source]
        source: EbpfError,
    },
    #[error("failed to load the eBPF object: {source}")]
    Object {
        #[source]
        source: EbpfError,
    },
    #[error("the eBPF object has no program named {name}")]
    MissingProgram { name: &'static str },
    #[error("the eBPF object has no map named {name}")]
    MissingMap { name: &'static str },
    #[error(
        "Linux {kernel} refused the {program} program: {summary}; ipscan needs Linux {MIN_KERNEL} or later and is \
         tested on {TESTED_KERNELS}; {log_hint}"
    )]
    Verifier {
        /// `XDP` or `egress`.
        program: &'static str,
        /// `uname -r`.
        kernel: String,
        /// The verifier's reason and its statistics (the log is in `source`).
        summary: String,
        /// Where the log went, or how to keep it.
        log_hint: String,
        /// The load error with the verifier's log (boxed: it is large, and a refusal rare).
        source: Box<ProgramError>,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Table(#[from] crate::kernel::tables::TableError),
    #[error("cannot read the calls between the eBPF object's functions: {source}")]
    Calls {
        #[source]
        source: object::Error,
    },
    #[error("wrong program type for {name}: {source}")]
    ProgramType {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("interface {iface:?} does not exist")]
    NoInterface { iface: String },
    #[error("cannot attach XDP to {iface} in {mode} mode: {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("cannot attach the egress program (reply-confirmed counting) to {iface}: {source}")]
    Egress {
        iface: String,
        #[source]
        source: ProgramError,
    },
}

/// How to attach: `auto` tries native (driver) mode and falls back to skb (generic) mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    #[default]
    Auto,
    Native,
    Skb,
}

/// The oldest kernel the program can load on: 5.12 brought the atomic OR of PROBATION's
/// admission filter (BPF_ATOMIC | BPF_OR) and global functions that take pointers to map
/// values; 5.11 the coarse clock helper.
pub const MIN_KERNEL: &str = "5.12";

/// The kernels `cargo xtask vm` boots and the program is tested on (xtask's `vm.rs` has the
/// packages), besides the build machine's.
pub const TESTED_KERNELS: &str = "6.1, 6.12 and 6.18";

/// Options for [`load`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Read the clock from the CLOCK map (replay and tests) instead of the kernel's.
    pub replay_clock: bool,
    /// Directory where the maps of [`maps::PINNED`] are pinned, or reused when already there.
    pub pin_dir: Option<PathBuf>,
    /// Where to write the kernel's verifier log if it refuses the program: the path it took to
    /// the refusal, instruction by instruction (the load is then slower).
    pub verifier_log: Option<PathBuf>,
    /// Load a program the kernel refuses (tests of the refusal path).
    pub test_refusal: bool,
}

fn is_eperm(e: &EbpfError) -> bool {
    let text = format!("{e:?}");
    text.contains("PermissionDenied") || text.contains("Operation not permitted")
}

/// Loads the object and the program into the kernel (not attached).
pub fn load(opts: &LoadOptions) -> Result<Ebpf, LoadError> {
    load_with_ring(opts, None)
}

/// Smallest event ring buffer: one page (the kernel wants a power-of-two number of pages).
pub const MIN_RING_BYTES: u32 = 4096;

/// Checks an event ring size: a power of two, at least a page.
pub fn valid_ring_bytes(bytes: u32) -> bool {
    bytes.is_power_of_two() && bytes >= MIN_RING_BYTES
}

/// [`load`] with the EVENTS ring buffer resized to `ring_bytes` (tests force ring-buffer loss
/// with a small one; see [`valid_ring_bytes`]).
pub fn load_with_ring(opts: &LoadOptions, ring_bytes: Option<u32>) -> Result<Ebpf, LoadError> {
    let mut loader = EbpfLoader::new();
    // Statistics only, unless a log is asked for: a refused load is verified twice (aya asks
    // again with a log buffer), and a whole log multiplies the time the verifier takes.
    loader.verifier_log_level(if opts.verifier_log.is_some() {
        VerifierLogLevel::DEBUG | VerifierLogLevel::STATS
    } else {
        VerifierLogLevel::STATS
    });
    if let Some(bytes) = ring_bytes {
        loader.map_max_entries(maps::EVENTS, bytes);
    }
    let (replay, refusal) = (u8::from(opts.replay_clock), u8::from(opts.test_refusal));
    loader.override_global(GLOBAL_REPLAY_CLOCK, &replay, true);
    loader.override_global(GLOBAL_TEST_REFUSAL, &refusal, true);
    // A BLOCKCOUNTS made anew (no pin to reuse) must count the prefixes of block lists kept
    // from before (an ipscan before it, or its pin removed).
    let made_anew = |name: &str| opts.pin_dir.as_ref().is_none_or(|d| !d.join(name).exists());
    let (counts_made_anew, allow_counts_made_anew) = (made_anew(maps::BLOCKCOUNTS), made_anew(maps::ALLOWCOUNTS));
    // The pins this load makes: a refused program takes them away again, so that a failed
    // start leaves nothing that reads as a daemon's state.
    let new_pins: Vec<PathBuf> = match &opts.pin_dir {
        Some(dir) => maps::PINNED.iter().map(|name| dir.join(name)).filter(|p| !p.exists()).collect(),
        None => Vec::new(),
    };
    if let Some(dir) = &opts.pin_dir {
        for name in maps::PINNED {
            loader.map_pin_path(name, dir.join(name));
        }
    }
    let mut ebpf = loader.load(OBJECT).map_err(|source| {
        if is_eperm(&source) { LoadError::NoPrivilege { source } } else { LoadError::Object { source } }
    })?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or(LoadError::MissingProgram { name: PROGRAM_NAME })?
        .try_into()
        .map_err(|source| LoadError::ProgramType { name: PROGRAM_NAME, source })?;
    let log_file = opts.verifier_log.as_deref();
    let loaded = match prog.load() {
        Ok(()) => load_egress(&mut ebpf, log_file),
        Err(source) => Err(refused("XDP", source, log_file)),
    };
    if let Err(e) = loaded {
        drop(ebpf);
        for pin in &new_pins {
            let _ = std::fs::remove_file(pin);
        }
        return Err(e);
    }
    admission_filter(&mut ebpf)?;
    crate::kernel::tables::tag_kept_blocks(&ebpf)?;
    if counts_made_anew {
        crate::kernel::tables::count_kept_prefixes(&ebpf)?;
    }
    if allow_counts_made_anew {
        crate::kernel::tables::count_kept_allows(&ebpf)?;
    }
    Ok(ebpf)
}

/// Loads the egress program ([`EGRESS_PROGRAM_NAME`]) beside the XDP program: whether it is
/// attached depends on the configuration ([`attach_egress`]), so that a reload can attach it,
/// but a kernel that refuses it refuses the start.
fn load_egress(ebpf: &mut Ebpf, log_file: Option<&Path>) -> Result<(), LoadError> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(EGRESS_PROGRAM_NAME)
        .ok_or(LoadError::MissingProgram { name: EGRESS_PROGRAM_NAME })?
        .try_into()
        .map_err(|source| LoadError::ProgramType { name: EGRESS_PROGRAM_NAME, source })?;
    prog.load().map_err(|source| refused("egress", source, log_file))
}

/// Makes PROBATION's admission filter ([`ipscan_common::probation::filter`]) cover every SOURCES
/// entry before the program is attached, and returns how many keys it marked.
///
/// A new PROBATION array with an empty SOURCES is left to the program (it turns the filter on
/// when it draws the seed). Kept pins are not always a pair: SOURCES may be kept while PROBATION
/// is made anew (its pin removed, or dropped for a new layout), or PROBATION may come from an
/// ipscan before the filter (seed drawn, filter state not `filter::ON`). Then the program would
/// take kept sources for new ones and count their next packets on probation; so each SOURCES key
/// gets its bit here, under the array's seed (drawn here when there is none yet), and the filter
/// is turned on last.
pub fn admission_filter(ebpf: &mut Ebpf) -> Result<usize, LoadError> {
    use aya::maps::HashMap;
    use ipscan_common::{
        ProbeSet, SourceKey, SourceState,
        probation::{PROBATION_SEED_SLOT, filter},
    };
    let map_err = |name| move |source| LoadError::Map { name, source };
    let keys: Vec<SourceKey> = {
        let map = ebpf.map(maps::SOURCES).ok_or(LoadError::MissingMap { name: maps::SOURCES })?;
        let sources: HashMap<_, SourceKey, SourceState> = HashMap::try_from(map).map_err(map_err(maps::SOURCES))?;
        sources.keys().collect::<Result<_, _>>().map_err(map_err(maps::SOURCES))?
    };
    let map = ebpf.map_mut(maps::PROBATION).ok_or(LoadError::MissingMap { name: maps::PROBATION })?;
    let mut probation: Array<_, ProbeSet> = Array::try_from(map).map_err(map_err(maps::PROBATION))?;
    let mut seed_slot = probation.get(&PROBATION_SEED_SLOT, 0).map_err(map_err(maps::PROBATION))?;
    if seed_slot.filter_state() == filter::ON
        || (keys.is_empty() && seed_slot.seed() == 0 && seed_slot.filter_state() == filter::UNDECIDED)
    {
        return Ok(0);
    }
    let seed = if seed_slot.seed() == 0 { crate::clock::random_seed() } else { seed_slot.seed() };
    for key in &keys {
        let place = ProbeSet::place(key, seed);
        let mut set = probation.get(&place.set, 0).map_err(map_err(maps::PROBATION))?;
        set.set_filter_bit(place.bit);
        probation.set(place.set, set, 0).map_err(map_err(maps::PROBATION))?;
    }
    seed_slot.set_seed(seed, filter::ON);
    probation.set(PROBATION_SEED_SLOT, seed_slot, 0).map_err(map_err(maps::PROBATION))?;
    Ok(keys.len())
}

/// Writes the CONFIG map's single slot.
pub fn write_config(ebpf: &mut Ebpf, cfg: &Config) -> Result<(), LoadError> {
    let map = ebpf.map_mut(maps::CONFIG).ok_or(LoadError::MissingMap { name: maps::CONFIG })?;
    let mut arr: Array<_, Config> =
        Array::try_from(map).map_err(|source| LoadError::Map { name: maps::CONFIG, source })?;
    arr.set(0, cfg, 0).map_err(|source| LoadError::Map { name: maps::CONFIG, source })
}

/// Writes the replay clock (only read when loaded with `replay_clock`).
pub fn set_clock(ebpf: &mut Ebpf, now_ns: u64) -> Result<(), LoadError> {
    let map = ebpf.map_mut(maps::CLOCK).ok_or(LoadError::MissingMap { name: maps::CLOCK })?;
    let mut arr: Array<_, u64> = Array::try_from(map).map_err(|source| LoadError::Map { name: maps::CLOCK, source })?;
    arr.set(0, now_ns, 0).map_err(|source| LoadError::Map { name: maps::CLOCK, source })
}

/// The interface index, or None when no such interface exists.
pub fn if_index(iface: &str) -> Option<u32> {
    let c = CString::new(iface).ok()?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// Result of [`attach`]: the link and the mode actually used, with the reason for a fallback.
#[derive(Debug)]
pub struct Attachment {
    pub link: XdpLinkId,
    pub mode: &'static str,
    pub fallback: Option<String>,
}

/// Attaches the loaded program to `iface`.
pub fn attach(ebpf: &mut Ebpf, iface: &str, mode: AttachMode) -> Result<Attachment, AttachError> {
    let idx = if_index(iface).ok_or_else(|| AttachError::NoInterface { iface: iface.to_owned() })?;
    let prog: &mut Xdp = match ebpf.program_mut(PROGRAM_NAME).map(TryInto::try_into) {
        Some(Ok(p)) => p,
        _ => {
            return Err(AttachError::Attach { iface: iface.to_owned(), mode: "any", source: ProgramError::NotLoaded });
        }
    };
    let fail = |mode, source| AttachError::Attach { iface: iface.to_owned(), mode, source };
    match mode {
        AttachMode::Native => prog
            .attach_to_if_index(idx, XdpMode::Driver)
            .map(|link| Attachment { link, mode: "native", fallback: None })
            .map_err(|e| fail("native", e)),
        AttachMode::Skb => prog
            .attach_to_if_index(idx, XdpMode::Skb)
            .map(|link| Attachment { link, mode: "skb", fallback: None })
            .map_err(|e| fail("skb", e)),
        AttachMode::Auto => match prog.attach_to_if_index(idx, XdpMode::Driver) {
            Ok(link) => Ok(Attachment { link, mode: "native", fallback: None }),
            Err(native) => {
                let reason = error_chain(&native);
                prog.attach_to_if_index(idx, XdpMode::Skb)
                    .map(|link| Attachment { link, mode: "skb", fallback: Some(reason) })
                    .map_err(|e| fail("skb", e))
            }
        },
    }
}

/// Attaches the loaded egress program to `iface`'s egress: TCX on Linux 6.6 and later, a
/// `clsact` qdisc (added if missing) and a cls_bpf filter before.
pub fn attach_egress(ebpf: &mut Ebpf, iface: &str) -> Result<SchedClassifierLinkId, AttachError> {
    if if_index(iface).is_none() {
        return Err(AttachError::NoInterface { iface: iface.to_owned() });
    }
    let fail = |source| AttachError::Egress { iface: iface.to_owned(), source };
    let prog: &mut SchedClassifier = ebpf
        .program_mut(EGRESS_PROGRAM_NAME)
        .ok_or(ProgramError::NotLoaded)
        .and_then(TryInto::try_into)
        .map_err(fail)?;
    if kernel_version().is_none_or(|v| v < (6, 6)) {
        // EEXIST: the interface has its clsact qdisc already.
        let _ = aya::programs::tc::qdisc_add_clsact(iface);
    }
    prog.attach(iface, TcAttachType::Egress).map_err(fail)
}

/// Detaches a link made by [`attach_egress`].
pub fn detach_egress(ebpf: &mut Ebpf, link: SchedClassifierLinkId) -> Result<(), ProgramError> {
    let prog: &mut SchedClassifier =
        ebpf.program_mut(EGRESS_PROGRAM_NAME).ok_or(ProgramError::NotLoaded)?.try_into()?;
    prog.detach(link)
}

/// Detaches a link made by [`attach`].
pub fn detach(ebpf: &mut Ebpf, link: XdpLinkId) -> Result<(), ProgramError> {
    let prog: &mut Xdp = ebpf.program_mut(PROGRAM_NAME).ok_or(ProgramError::NotLoaded)?.try_into()?;
    prog.detach(link)
}

/// An error and its sources on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut at = e;
    // The verifier log inside a load error (at any depth) is summarised already.
    while !matches!(at.downcast_ref::<LoadError>(), Some(LoadError::Verifier { .. }))
        && let Some(c) = at.source()
    {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        at = c;
    }
    s
}

/// The kernel release as (major, minor), from uname(2).
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: zeroed utsname is a valid out-parameter.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Lifts RLIMIT_MEMLOCK as far as this process may. Kernels before 5.11 charge BPF maps to it
/// (later ones to the memory cgroup, and the limit does not matter). Without CAP_SYS_RESOURCE
/// only the soft limit can rise, to the hard one. Returns a warning when an old kernel leaves a
/// small limit (maps may then fail to load with EPERM).
pub fn raise_memlock() -> Option<String> {
    let infinite = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: valid pointer to a rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &infinite) } == 0 {
        return None;
    }
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } != 0 {
        return None;
    }
    let soft_to_hard = libc::rlimit { rlim_cur: cur.rlim_max, rlim_max: cur.rlim_max };
    // SAFETY: valid pointer; raising the soft limit to the hard one needs no privilege.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft_to_hard) };
    let old_kernel = kernel_version().is_some_and(|v| v < (5, 11));
    (old_kernel && cur.rlim_max != libc::RLIM_INFINITY).then(|| {
        format!(
            "warning: RLIMIT_MEMLOCK is {} KiB and cannot be raised without CAP_SYS_RESOURCE; kernels before 5.11 \
             charge BPF maps to it (set LimitMEMLOCK=infinity in the unit, or ulimit -l unlimited)",
            cur.rlim_max / 1024
        )
    })
}

/// True when the process can plausibly load and attach the program: root, or CAP_BPF (load),
/// CAP_NET_ADMIN (attach XDP) and CAP_PERFMON (without it the verifier refuses the program's
/// packet-pointer comparisons: "pointer comparison prohibited").
pub fn has_bpf_privilege() -> bool {
    // CAP_NET_ADMIN is capability 12, CAP_PERFMON 38, CAP_BPF 39.
    has_caps(&[12, 38, 39])
}

/// True when the process can open and change pinned maps (the CLI): root or CAP_BPF.
pub fn has_map_privilege() -> bool {
    has_caps(&[39])
}

fn has_caps(bits: &[u32]) -> bool {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_owned())))
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| bits.iter().all(|bit| caps & (1u64 << bit) != 0))
}

/// `io::Error` for the CLI's privilege message.
pub fn privilege_error() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "ipscan needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON")
}

/// The error for a program the kernel refused: its reason and statistics on one line, and the
/// whole log written to `log_file` when one was asked for.
fn refused(program: &'static str, source: ProgramError, log_file: Option<&Path>) -> LoadError {
    let kernel = crate::kernel::verifier::kernel_release();
    let (summary, log) = match &source {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let summary = match crate::kernel::verifier::VerifierStats::parse(&log) {
                Some(s) => {
                    format!(
                        "{} (after {} processed instructions)",
                        crate::kernel::verifier::refusal_reason(&log),
                        s.processed
                    )
                }
                None => io_error.to_string(),
            };
            (summary, Some(log))
        }
        other => (other.to_string(), None),
    };
    let log_hint = match (log_file, log) {
        (Some(path), Some(log)) => match std::fs::write(path, log) {
            Ok(()) => format!("the verifier's log is in {}", path.display()),
            Err(e) => format!("cannot write the verifier's log to {}: {e}", path.display()),
        },
        _ => "`--verifier-log FILE` keeps the verifier's log for a bug report".to_owned(),
    };
    LoadError::Verifier { program, kernel, summary, log_hint, source: Box::new(source) }
}

#[cfg(test)]
mod tests {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    use super::*;

    /// The layout of every pinned map in the object this build embeds, from its `maps` section
    /// (aya-ebpf's `bpf_map_def`: type, key size, value size, max entries, flags, ... as u32s).
    fn object_layouts() -> Vec<maps::Layout> {
        let file = object::File::parse(OBJECT).expect("the embedded eBPF object");
        let section = file.section_by_name("maps").expect("a maps section");
        let data = section.data().expect("maps data");
        maps::PINNED
            .iter()
            .map(|name| {
                let sym = file.symbols().find(|s| s.name() == Ok(*name)).unwrap_or_else(|| panic!("no map {name}"));
                let at = |i: usize| {
                    let o = sym.address() as usize + 4 * i;
                    u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"))
                };
                maps::Layout { name, key_size: at(1), value_size: at(2), max_entries: at(3) }
            })
            .collect()
    }

    #[test]
    fn the_pinned_maps_of_the_object_have_the_table_s_layouts() {
        assert_eq!(object_layouts(), maps::PINNED_LAYOUTS.to_vec());
    }
}
