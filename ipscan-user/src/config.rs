//! The `iplog.conf` parser: iplog 2.2.3's configuration language, plus ipscan's `threshold`
//! and `window` statements.
//!
//! One statement per line; `#` starts a comment that runs to the end of the line, `/* ... */`
//! comments may span lines. Statements:
//!
//! ```text
//! set KEYWORD [true|false]          # true when omitted; yes/no accepted too
//! interface eth0,eth1
//! logfile PATH | pid-file PATH | user NAME | group NAME
//! facility daemon | priority notice # syslog names, optional "log_" prefix
//! promisc NET[,NET]                 # implies `set log_dest true`
//! threshold DETECTION N             # ipscan: N >= 1
//! window DETECTION DURATION         # ipscan: 50, 50s, 500ms, 2m, 1h
//! log|ignore tcp|udp [from [!]ADDR[/MASK]] [sport [!]P[:Q]] [to ...] [dport ...]
//! log|ignore icmp [type [!]T] [from ...] [to ...]
//! ```
//!
//! Like iplog, keywords, protocol names, ICMP type names and syslog names are matched without
//! regard to case; service names, interface names and paths are case-sensitive. Unlike iplog,
//! anything it would have warned about and skipped (unknown keywords, bad values) is an error,
//! reported as `FILE:LINE: problem`.

pub mod crowdsec;
pub mod feedlist;
pub mod kernel;

use std::{
    collections::HashMap,
    fmt, fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    str::FromStr,
    sync::OnceLock,
};

use ipscan_common::{
    Config as KernelConfig, Detection, FAMILY_V4, FAMILY_V6, PacketSummary, classify::DETECTION_SLOTS,
    config::detection_flags, packet,
};

/// Where service names are looked up (`services(5)`).
pub const SERVICES_PATH: &str = "/etc/services";

/// A configuration file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}", file.display())]
    Parse {
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        problem: Problem,
    },
}

/// What is wrong with one line of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("unterminated comment: \"/*\" without \"*/\"")]
    UnterminatedComment,
    #[error("unknown keyword \"{keyword}\"")]
    UnknownKeyword { keyword: String },
    #[error("unknown set keyword \"{keyword}\"")]
    UnknownFlag { keyword: String },
    #[error("missing {what} after \"{keyword}\"")]
    MissingValue { keyword: String, what: &'static str },
    #[error("too many values for \"{keyword}\": unexpected \"{token}\"")]
    UnexpectedToken { token: String, keyword: String },
    #[error("invalid value \"{value}\" for set {keyword}: expected true or false")]
    InvalidBool { value: String, keyword: String },
    #[error(
        "unknown detection \"{name}\": expected one of portscan, syn_scan, fin_scan, null_scan, \
         xmas_scan, udp_scan, ping_flood, smurf, udp_flood, tripwire, tcp_sweep, udp_sweep, ping_sweep, \
         distributed_flood, distributed_scan, rejected"
    )]
    UnknownDetection { name: String },
    #[error(
        "{detection} cannot block: it has no one source to block (smurf: the reflectors; distributed_flood, distributed_scan: forged sources)"
    )]
    NoSourceToBlock { detection: &'static str },
    #[error("invalid threshold \"{value}\" for {detection}: expected a positive integer")]
    InvalidThreshold { value: String, detection: &'static str },
    #[error(
        "invalid window \"{value}\" for {detection}: expected a positive duration such as 50s, \
         500ms, 2m or 1h"
    )]
    InvalidWindow { value: String, detection: &'static str },
    #[error(
        "invalid block time \"{value}\" for {detection}: expected a duration such as 10m or 1h, \
         or off"
    )]
    InvalidBlock { value: String, detection: &'static str },
    #[error(
        "invalid escalate factor \"{value}\" for {detection}: expected a factor above 1 such as 2x \
         or 1.5x"
    )]
    InvalidEscalation { value: String, detection: &'static str },
    #[error(
        "invalid {what} \"{value}\" for {detection}: expected a duration such as 1d or 30d, no \
         shorter than the block time"
    )]
    InvalidEscalationTime { what: &'static str, value: String, detection: &'static str },
    #[error("\"escalate\" for {detection} needs a block time, not off")]
    EscalateOff { detection: &'static str },
    #[error("\"{keyword}\" for {detection} needs \"escalate\" before it")]
    EscalationWithout { keyword: String, detection: &'static str },
    #[error("unknown crowdsec statement \"{value}\": expected bouncer, machine, poll, push or ca_cert")]
    InvalidCrowdSec { value: String },
    #[error("invalid LAPI URL \"{value}\": expected http://HOST:PORT/ or https://HOST:PORT/")]
    InvalidCrowdSecUrl { value: String },
    #[error("invalid crowdsec poll \"{value}\": expected a duration of at least 1s")]
    InvalidCrowdSecPoll { value: String },
    #[error("unknown blackhole protocol \"{value}\": expected tcp or udp")]
    InvalidBlackhole { value: String },
    #[error("unknown tripwire kind \"{value}\": expected tcp, udp or addr")]
    InvalidTripwire { value: String },
    #[error("unknown counting \"{value}\": expected plain or confirmed")]
    InvalidCounting { value: String },
    #[error("invalid packet_rate \"{value}\": expected a positive integer (lines per second)")]
    InvalidPacketRate { value: String },
    #[error("unknown syslog facility \"{value}\"")]
    InvalidFacility { value: String },
    #[error("unknown syslog priority \"{value}\"")]
    InvalidPriority { value: String },
    #[error("invalid interface name \"{name}\"")]
    InvalidInterface { name: String },
    #[error("empty item in the \"{keyword}\" list")]
    EmptyListItem { keyword: String },
    #[error("unknown protocol \"{value}\": expected tcp, udp or icmp")]
    UnknownProtocol { value: String },
    #[error("\"{keyword}\" is not a filter keyword for {proto} rules")]
    InvalidFilterKeyword { keyword: String, proto: &'static str },
    #[error("\"{keyword}\" given twice in one rule")]
    RepeatedFilterKeyword { keyword: String },
    #[error("invalid address \"{value}\": expected an IPv4 or IPv6 address (host names are not resolved)")]
    InvalidAddress { value: String },
    #[error("invalid mask \"{value}\": prefix length must be 0 to {max}")]
    InvalidPrefix { value: String, max: u8 },
    #[error("invalid mask \"{value}\": expected prefix bits or a contiguous dotted IPv4 mask")]
    InvalidMask { value: String },
    #[error("invalid port \"{value}\": expected 0 to 65535 or a service name")]
    InvalidPort { value: String },
    #[error("unknown {proto} service \"{name}\" (not in /etc/services)")]
    UnknownService { name: String, proto: &'static str },
    #[error("cannot look up service \"{name}\": /etc/services is not readable, use a port number")]
    NoServicesDb { name: String },
    #[error("invalid port range \"{value}\": the start is above the end")]
    ReversedPortRange { value: String },
    #[error("unknown icmp type \"{value}\"")]
    InvalidIcmpType { value: String },
    #[error("\"{value}\" matches nothing: a wildcard cannot be negated")]
    NegatedWildcard { value: String },
}

macro_rules! flags {
    ($( $(#[doc = $doc:expr])* $name:ident = $default:expr, )*) => {
        /// Every boolean `set` keyword of iplog, by its keyword name.
        ///
        /// The defaults are iplog 2.2.3's (`iplog_options.c`: every flag on except
        /// get_ident, disable_resolver, fool_nmap, no_fork, verbose, stdout, ignore_dns,
        /// log_ip, log_dest and scans_only). This records what the file says; the protocol
        /// switches' effect on detections is applied to [`Settings::kernel`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Flags {
            $( $(#[doc = $doc])* pub $name: bool, )*
        }

        impl Default for Flags {
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        impl Flags {
            /// Every keyword `set` accepts.
            pub const KEYWORDS: &[&str] = &[$( stringify!($name), )*];

            /// The flag named by a (lowercase) `set` keyword.
            pub fn get(&self, keyword: &str) -> Option<bool> {
                match keyword {
                    $( stringify!($name) => Some(self.$name), )*
                    _ => None,
                }
            }

            fn get_mut(&mut self, keyword: &str) -> Option<&mut bool> {
                match keyword {
                    $( stringify!($name) => Some(&mut self.$name), )*
                    _ => None,
                }
            }
        }
    };
}

flags! {
    /// Watch TCP traffic. Default on. Off also disables the TCP scan detections.
    tcp = true,
    /// Watch UDP traffic. Default on. Off also disables the UDP scan detection.
    udp = true,
    /// Watch ICMP traffic. Default on. Off also disables ping flood detection.
    icmp = true,
    /// Detect fragment attacks (oversized, duplicate, overlapping). Default on.
    frag = true,
    /// Detect smurf attacks. Default on.
    smurf = true,
    /// Report bogus TCP flags. Default on.
    bogus = true,
    /// Log the address next to the host name. Default off.
    log_ip = false,
    /// Log the destination of packets. Default off (`promisc` turns it on).
    log_dest = false,
    /// Log to stdout instead of syslog. Default off.
    stdout = false,
    /// Stay in the foreground (iplog compatibility). Default off.
    no_fork = false,
    /// Log short packets and bad checksums. Default off.
    verbose = false,
    /// Detect FIN scans. Default on.
    fin_scan = true,
    /// Detect SYN scans. Default on.
    syn_scan = true,
    /// Detect UDP scans and floods. Default on.
    udp_scan = true,
    /// Detect TCP port scans. Default on.
    portscan = true,
    /// Answer odd probes with forged packets (iplog's manual warns of traffic storms). Default off.
    fool_nmap = false,
    /// Detect Xmas scans. Default on.
    xmas_scan = true,
    /// Detect null scans. Default on.
    null_scan = true,
    /// Fetch IDENT info for connections (iplog compatibility, Linux only). Default off.
    get_ident = false,
    /// Cache resolved names. Default on.
    dns_cache = true,
    /// Stop resolving names during a SYN flood (iplog compatibility). Default on.
    syn_flood = true,
    /// Ignore UDP from port 53 of the nameservers in /etc/resolv.conf. Default off.
    ignore_dns = false,
    /// Detect ICMP ping floods. Default on.
    ping_flood = true,
    /// Detect floods from many sources at one host (TCP SYNs, UDP, echo requests), and leave out
    /// the per-packet lines of packets to it while one lasts. ipscan extension. Default on.
    distributed_flood = true,
    /// Detect distributed and decoy scans: SYNs from several sources to many ports of one host.
    /// ipscan extension. Default off (it costs every SYN a record call).
    distributed_scan = false,
    /// Detect TCP port sweeps: SYNs from one source to many hosts. ipscan extension. Default off.
    tcp_sweep = false,
    /// Detect UDP sweeps: datagrams from one source to many hosts. ipscan extension. Default off.
    udp_sweep = false,
    /// Detect ping sweeps: echo requests from one source to many hosts. ipscan extension.
    /// Default off.
    ping_sweep = false,
    /// Detect rejected probes: TCP and UDP probes the host refused (resets, ICMP unreachables)
    /// to many ports, counted on egress. ipscan extension. Default off (it attaches the egress
    /// program).
    rejected = false,
    /// Log only scans and floods, not single packets. Default off.
    scans_only = false,
    /// Detect traceroutes. Default on.
    traceroute = true,
    /// Resolve the hosts of UDP traffic. Default on.
    udp_resolve = true,
    /// Resolve the hosts of TCP traffic. Default on.
    tcp_resolve = true,
    /// Resolve the hosts of ICMP traffic. Default on.
    icmp_resolve = true,
    /// Never resolve host names. Default off.
    disable_resolver = false,
    /// Drop RFC-impossible TCP flag combinations (SYN+FIN, ...) after logging them, like BSD's
    /// tcp_drop_synfin. ipscan extension. Default off.
    drop_synfin = false,
    /// Drop nothing: every block decision is logged as `Would block ...` and counted, and every
    /// packet a verdict would drop is passed and counted (`dry_run_passed`). For a first week on a
    /// production host. ipscan extension. Default off.
    dry_run = false,
}

/// Everything an `iplog.conf` says. `Default` is what an empty file says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// What the XDP program gets: thresholds, windows and enabled bits of each detection.
    /// Starts as iplog's values ([`KernelConfig::default`]).
    pub kernel: KernelConfig,
    pub flags: Flags,
    /// `interface eth0,eth1`; empty when not given (the daemon picks a default).
    pub interfaces: Vec<String>,
    /// `logfile`; `None` means syslog (or stdout with `set stdout`).
    pub logfile: Option<PathBuf>,
    /// `pid-file`; kept for iplog compatibility.
    pub pid_file: Option<PathBuf>,
    /// `user`; kept for iplog compatibility.
    pub user: Option<String>,
    /// `group`; kept for iplog compatibility.
    pub group: Option<String>,
    /// `facility`, as a canonical syslog name without `log_` (`daemon`, `local0`, ...).
    /// `None`: the daemon's default (iplog's is daemon).
    pub facility: Option<String>,
    /// `priority`, as a canonical syslog name (`notice`, `warning`, `err`, ...).
    /// `None`: the daemon's default (iplog's is notice).
    pub priority: Option<String>,
    /// `promisc NET[,NET]`: watch all hosts of these networks.
    pub promisc: Vec<IpNet>,
    /// `log` and `ignore` rules, in file order.
    pub rules: Vec<FilterRule>,
    /// `allow NET[,NET]`: prefixes that are never blocked (ipscan extension).
    pub allow: Vec<IpNet>,
    /// `blackhole tcp`: drop TCP probes to ports without a listening socket.
    pub blackhole_tcp: bool,
    /// `blackhole udp`: drop UDP to unbound ports below the ephemeral range.
    pub blackhole_udp: bool,
    /// `block DETECTION TIME escalate Nx [max D] [within D]`: longer blocks for repeat
    /// offenders, per detection (ipscan extension).
    pub escalation: [Option<Escalation>; DETECTION_SLOTS],
    /// `crowdsec ...`: the CrowdSec LAPI as a source of blocks and a sink for detections.
    pub crowdsec: crowdsec::CrowdSec,
    /// `tripwire tcp|udp PORTS`, `tripwire addr NETS`: where no service is, so that one probe
    /// there is a detection (ipscan extension).
    pub tripwire: Tripwires,
    /// `counting confirmed`: the port scan and the UDP scan count only the probes the host
    /// rejected (ipscan extension); `counting plain`, the default, counts every probe as iplog.
    pub confirmed: bool,
}

/// Ports and addresses where no service is ([`Detection::Tripwire`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tripwires {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub addrs: Vec<IpNet>,
}

impl Tripwires {
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty() && self.addrs.is_empty()
    }
}

/// How a detection's block grows for a repeat offender: offence `n` (a block of a source whose
/// last block ended at most `within_ns` ago, whatever its detection) is blocked for the
/// detection's block time times `factor^(n-1)`, at most `max_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Escalation {
    /// The factor in thousandths (`4x`: 4000; above 1000).
    pub factor_milli: u32,
    /// The longest block (`max`; default [`Escalation::DEFAULT_MAX_NS`]).
    pub max_ns: u64,
    /// How long after a block ends the source is remembered (`within`; default `max_ns`).
    pub within_ns: u64,
}

impl Escalation {
    /// 30 days.
    pub const DEFAULT_MAX_NS: u64 = 30 * 86_400 * 1_000_000_000;

    /// The block time of offence `n` (1: the first) for a detection whose block time is `base_ns`.
    pub fn block_ns(&self, base_ns: u64, n: u32) -> u64 {
        let factor = f64::from(self.factor_milli) / 1000.0;
        let grown = base_ns as f64 * factor.powi(n.saturating_sub(1).min(1_000) as i32);
        // `as` saturates; the float's rounding may only make it a few ns off the exact product.
        (grown as u64).clamp(base_ns, self.max_ns.max(base_ns))
    }
}

impl Settings {
    /// Whether the host's rejects are counted (`counting confirmed`, or the rejected probes
    /// detection on): the egress program is then attached beside the XDP program.
    pub fn wants_rejects(&self) -> bool {
        self.confirmed || self.kernel.detection(Detection::Rejected).enabled()
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `file` only names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Settings, ConfigError> {
        let error = |line, problem| ConfigError::Parse { file: file.to_path_buf(), line, problem };
        let lines = strip_comments(text).map_err(|line| error(line, Problem::UnterminatedComment))?;
        let mut settings = Settings::default();
        for (index, line) in lines.iter().enumerate() {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            if tokens.is_empty() {
                continue;
            }
            settings.statement(&tokens).map_err(|problem| error(index + 1, problem))?;
        }
        settings.gate_detections_by_protocol();
        Ok(settings)
    }

    /// True when a rule says to skip this packet before any detection.
    ///
    /// iplog semantics: a matching `log` rule wins over every `ignore` rule, whatever the order
    /// in the file; otherwise a matching `ignore` rule ignores the packet.
    pub fn ignores(&self, p: &PacketSummary) -> bool {
        let mut ignored = false;
        for rule in self.rules.iter().filter(|r| r.matches(p)) {
            match rule.action {
                Action::Log => return false,
                Action::Ignore => ignored = true,
            }
        }
        ignored
    }

    fn statement(&mut self, tokens: &[&str]) -> Result<(), Problem> {
        let keyword = tokens[0];
        match keyword.to_ascii_lowercase().as_str() {
            "set" => self.set(tokens),
            "threshold" => self.threshold(tokens),
            "packet_rate" => {
                // ipscan: per-source budget of per-packet lines per second (kernel rate limit).
                let value = single(tokens, "lines per second")?;
                self.kernel.packet_events_per_sec = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n >= 1 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| Problem::InvalidPacketRate { value: value.to_owned() })?;
                Ok(())
            }
            "window" => self.window(tokens),
            "block" => self.block(tokens),
            "crowdsec" => self.crowdsec.statement(tokens),
            "allow" => {
                let nets =
                    list(tokens, "network list")?.iter().map(|n| n.parse::<IpNet>()).collect::<Result<Vec<_>, _>>()?;
                self.allow.extend(nets);
                Ok(())
            }
            "blackhole" => {
                for proto in list(tokens, "protocol list")? {
                    match proto.to_ascii_lowercase().as_str() {
                        "tcp" => self.blackhole_tcp = true,
                        "udp" => self.blackhole_udp = true,
                        _ => return Err(Problem::InvalidBlackhole { value: proto }),
                    }
                }
                Ok(())
            }
            "tripwire" => {
                let Some(kind) = tokens.get(1) else {
                    return Err(Problem::MissingValue { keyword: tokens[0].to_owned(), what: "tcp, udp or addr" });
                };
                // `tripwire KIND A,B`: the list as if it followed the keyword.
                let rest: Vec<&str> = std::iter::once(tokens[0]).chain(tokens[2..].iter().copied()).collect();
                match kind.to_ascii_lowercase().as_str() {
                    proto @ ("tcp" | "udp") => {
                        let proto = if proto == "tcp" { Proto::Tcp } else { Proto::Udp };
                        let ports = list(&rest, "port list")?
                            .iter()
                            .map(|p| port_number(p, proto))
                            .collect::<Result<Vec<_>, _>>()?;
                        let into = if proto == Proto::Tcp { &mut self.tripwire.tcp } else { &mut self.tripwire.udp };
                        into.extend(ports);
                    }
                    "addr" => {
                        let nets = list(&rest, "address list")?
                            .iter()
                            .map(|n| n.parse::<IpNet>())
                            .collect::<Result<Vec<_>, _>>()?;
                        self.tripwire.addrs.extend(nets);
                    }
                    _ => return Err(Problem::InvalidTripwire { value: (*kind).to_owned() }),
                }
                Ok(())
            }
            "counting" => {
                let value = single(tokens, "plain or confirmed")?;
                self.confirmed = match value.to_ascii_lowercase().as_str() {
                    "plain" => false,
                    "confirmed" => true,
                    _ => return Err(Problem::InvalidCounting { value: value.to_owned() }),
                };
                Ok(())
            }
            "interface" => {
                let names = list(tokens, "interface list")?;
                for name in &names {
                    if !valid_interface_name(name) {
                        return Err(Problem::InvalidInterface { name: name.clone() });
                    }
                }
                self.interfaces = names;
                Ok(())
            }
            "logfile" => {
                self.logfile = Some(PathBuf::from(single(tokens, "path")?));
                Ok(())
            }
            "pid-file" => {
                self.pid_file = Some(PathBuf::from(single(tokens, "path")?));
                Ok(())
            }
            "user" => {
                self.user = Some(single(tokens, "user name")?.to_owned());
                Ok(())
            }
            "group" => {
                self.group = Some(single(tokens, "group name")?.to_owned());
                Ok(())
            }
            "facility" => {
                let value = single(tokens, "syslog facility")?;
                let name =
                    syslog_facility(value).ok_or_else(|| Problem::InvalidFacility { value: value.to_owned() })?;
                self.facility = Some(name.to_owned());
                Ok(())
            }
            "priority" => {
                let value = single(tokens, "syslog priority")?;
                let name =
                    syslog_priority(value).ok_or_else(|| Problem::InvalidPriority { value: value.to_owned() })?;
                self.priority = Some(name.to_owned());
                Ok(())
            }
            "promisc" => {
                let nets =
                    list(tokens, "network list")?.iter().map(|n| n.parse::<IpNet>()).collect::<Result<Vec<_>, _>>()?;
                self.promisc = nets;
                // iplog: watching other hosts is pointless without saying which one was hit.
                // A later `set log_dest false` still wins, as in iplog.
                self.flags.log_dest = true;
                Ok(())
            }
            "log" => self.filter(Action::Log, tokens),
            "ignore" => self.filter(Action::Ignore, tokens),
            _ => Err(Problem::UnknownKeyword { keyword: keyword.to_owned() }),
        }
    }

    fn set(&mut self, tokens: &[&str]) -> Result<(), Problem> {
        let written = tokens
            .get(1)
            .ok_or_else(|| Problem::MissingValue { keyword: tokens[0].to_owned(), what: "set keyword" })?;
        let keyword = written.to_ascii_lowercase();
        let value = match tokens.get(2) {
            None => true,
            Some(v) => parse_bool(v)
                .ok_or_else(|| Problem::InvalidBool { value: (*v).to_owned(), keyword: keyword.clone() })?,
        };
        if let Some(extra) = tokens.get(3) {
            return Err(unexpected(extra, tokens[0]));
        }
        let flag =
            self.flags.get_mut(&keyword).ok_or_else(|| Problem::UnknownFlag { keyword: (*written).to_owned() })?;
        *flag = value;
        if let Some(detection) = Detection::by_keyword(&keyword).filter(|d| d.names().switch) {
            // iplog's udp_scan is "scan/flood": it switches ipscan's rate detection too.
            let also = (detection == Detection::UdpScan).then_some(Detection::UdpFlood);
            for d in std::iter::once(detection).chain(also) {
                let d = self.kernel.detection_mut(d);
                if value {
                    d.flags |= detection_flags::ENABLED;
                } else {
                    d.flags &= !detection_flags::ENABLED;
                }
            }
        }
        Ok(())
    }

    fn detection_statement<'t>(
        tokens: &[&'t str],
        what: &'static str,
    ) -> Result<(&'static str, Detection, &'t str), Problem> {
        let name = tokens
            .get(1)
            .ok_or_else(|| Problem::MissingValue { keyword: tokens[0].to_owned(), what: "detection name" })?;
        let lower = name.to_ascii_lowercase();
        let detection =
            Detection::by_keyword(&lower).ok_or_else(|| Problem::UnknownDetection { name: (*name).to_owned() })?;
        let keyword = detection.names().keyword;
        let value =
            tokens.get(2).ok_or_else(|| Problem::MissingValue { keyword: format!("{} {name}", tokens[0]), what })?;
        if let Some(extra) = tokens.get(3) {
            return Err(unexpected(extra, tokens[0]));
        }
        Ok((keyword, detection, value))
    }

    /// `block DETECTION TIME|off [escalate Nx [max D] [within D]]`.
    fn block(&mut self, tokens: &[&str]) -> Result<(), Problem> {
        let (keyword, detection, value) = Self::detection_statement(&tokens[..tokens.len().min(3)], "duration")?;
        let block_ns = if value.eq_ignore_ascii_case("off") {
            0
        } else {
            parse_duration_ns(value)
                .ok_or_else(|| Problem::InvalidBlock { value: value.to_owned(), detection: keyword })?
        };
        if block_ns != 0 && !detection.blocks() {
            return Err(Problem::NoSourceToBlock { detection: keyword });
        }
        let mut escalation: Option<Escalation> = None;
        let mut within = None;
        let mut rest = tokens[3..].iter();
        while let Some(word) = rest.next() {
            let option = word.to_ascii_lowercase();
            let what = match option.as_str() {
                "escalate" => "factor",
                "max" | "within" => "duration",
                _ => return Err(unexpected(word, tokens[0])),
            };
            let value = rest.next().ok_or_else(|| Problem::MissingValue { keyword: (*word).to_owned(), what })?;
            if option == "escalate" {
                if block_ns == 0 {
                    return Err(Problem::EscalateOff { detection: keyword });
                }
                if escalation.is_some() {
                    return Err(unexpected(word, tokens[0]));
                }
                let factor_milli = parse_factor_milli(value)
                    .ok_or_else(|| Problem::InvalidEscalation { value: (*value).to_owned(), detection: keyword })?;
                escalation =
                    Some(Escalation { factor_milli, max_ns: Escalation::DEFAULT_MAX_NS.max(block_ns), within_ns: 0 });
                continue;
            }
            let Some(e) = escalation.as_mut() else {
                return Err(Problem::EscalationWithout { keyword: option, detection: keyword });
            };
            let ns = parse_duration_ns(value).filter(|ns| *ns >= block_ns).ok_or_else(|| {
                Problem::InvalidEscalationTime {
                    what: if option == "max" { "max" } else { "within" },
                    value: (*value).to_owned(),
                    detection: keyword,
                }
            })?;
            if option == "max" {
                e.max_ns = ns;
            } else {
                within = Some(ns);
            }
        }
        if let Some(e) = escalation.as_mut() {
            e.within_ns = within.unwrap_or(e.max_ns);
        }
        self.kernel.detection_mut(detection).block_ns = block_ns;
        self.escalation[detection as usize] = escalation;
        Ok(())
    }

    fn threshold(&mut self, tokens: &[&str]) -> Result<(), Problem> {
        let (keyword, detection, value) = Self::detection_statement(tokens, "threshold")?;
        let threshold = value
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1 && value.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Problem::InvalidThreshold { value: value.to_owned(), detection: keyword })?;
        self.kernel.detection_mut(detection).threshold = threshold;
        Ok(())
    }

    fn window(&mut self, tokens: &[&str]) -> Result<(), Problem> {
        let (keyword, detection, value) = Self::detection_statement(tokens, "duration")?;
        let window_ns = parse_duration_ns(value)
            .ok_or_else(|| Problem::InvalidWindow { value: value.to_owned(), detection: keyword })?;
        self.kernel.detection_mut(detection).window_ns = window_ns;
        Ok(())
    }

    fn filter(&mut self, action: Action, tokens: &[&str]) -> Result<(), Problem> {
        let written =
            tokens.get(1).ok_or_else(|| Problem::MissingValue { keyword: tokens[0].to_owned(), what: "protocol" })?;
        let proto = match written.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            _ => {
                return Err(Problem::UnknownProtocol { value: (*written).to_owned() });
            }
        };
        if tokens.len() == 2 {
            // iplog: a rule without parameters switches the whole protocol, like `set tcp`.
            let flag = match proto {
                Proto::Tcp => &mut self.flags.tcp,
                Proto::Udp => &mut self.flags.udp,
                Proto::Icmp => &mut self.flags.icmp,
            };
            *flag = action == Action::Log;
            return Ok(());
        }
        let mut rule = FilterRule { action, proto, from: None, sport: None, to: None, dport: None, icmp_type: None };
        let mut seen: Vec<String> = Vec::new();
        for pair in tokens[2..].chunks(2) {
            let key = pair[0];
            let lower = key.to_ascii_lowercase();
            let what = match (lower.as_str(), proto) {
                ("from" | "to", _) => "address",
                ("sport" | "dport", Proto::Tcp | Proto::Udp) => "port",
                ("type", Proto::Icmp) => "icmp type",
                _ => {
                    return Err(Problem::InvalidFilterKeyword { keyword: key.to_owned(), proto: proto.name() });
                }
            };
            if seen.contains(&lower) {
                return Err(Problem::RepeatedFilterKeyword { keyword: key.to_owned() });
            }
            let value = pair.get(1).ok_or_else(|| Problem::MissingValue { keyword: key.to_owned(), what })?;
            match lower.as_str() {
                "from" => rule.from = AddrMatch::parse(value)?,
                "to" => rule.to = AddrMatch::parse(value)?,
                "sport" => rule.sport = PortMatch::parse(value, proto)?,
                "dport" => rule.dport = PortMatch::parse(value, proto)?,
                _ => rule.icmp_type = TypeMatch::parse(value)?,
            }
            seen.push(lower);
        }
        self.rules.push(rule);
        Ok(())
    }

    /// iplog (`check_options`): a protocol that is switched off takes its detections with it.
    /// Only the kernel config changes; [`Settings::flags`] keeps what the file said.
    fn gate_detections_by_protocol(&mut self) {
        let f = self.flags;
        let off: &[(bool, &[Detection])] = &[
            (
                f.tcp,
                &[
                    Detection::PortScan,
                    // iplog forgot SYN scans here (a known defect); they are TCP too.
                    Detection::SynScan,
                    Detection::FinScan,
                    Detection::NullScan,
                    Detection::XmasScan,
                    Detection::TcpSweep,
                ],
            ),
            (f.udp, &[Detection::UdpScan, Detection::UdpFlood, Detection::UdpSweep]),
            (f.icmp, &[Detection::PingFlood, Detection::PingSweep]),
            (f.udp || f.icmp, &[Detection::Smurf]),
            (f.tcp || f.udp || f.icmp, &[Detection::DistFlood]),
            (f.tcp, &[Detection::DistScan]),
            (f.tcp || f.udp, &[Detection::Rejected]),
        ];
        for (on, detections) in off {
            if !on {
                for d in *detections {
                    self.kernel.detection_mut(*d).flags &= !detection_flags::ENABLED;
                }
            }
        }
    }
}

fn unexpected(token: &str, keyword: &str) -> Problem {
    Problem::UnexpectedToken { token: token.to_owned(), keyword: keyword.to_owned() }
}

/// The one value of `KEYWORD VALUE`.
fn single<'t>(tokens: &[&'t str], what: &'static str) -> Result<&'t str, Problem> {
    match tokens {
        [_, value] => Ok(value),
        [keyword] => Err(Problem::MissingValue { keyword: (*keyword).to_owned(), what }),
        [keyword, _, extra, ..] => Err(unexpected(extra, keyword)),
        [] => unreachable!("statements have at least one token"),
    }
}

/// The comma-separated value of `KEYWORD A,B,C`; spaces after the commas are allowed.
fn list(tokens: &[&str], what: &'static str) -> Result<Vec<String>, Problem> {
    let keyword = tokens[0];
    if tokens.len() < 2 {
        return Err(Problem::MissingValue { keyword: keyword.to_owned(), what });
    }
    let joined = tokens[1..].join(" ");
    let mut items = Vec::new();
    for item in joined.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(Problem::EmptyListItem { keyword: keyword.to_owned() });
        }
        if let Some((_, extra)) = item.split_once(' ') {
            return Err(unexpected(extra.trim_start(), keyword));
        }
        items.push(item.to_owned());
    }
    Ok(items)
}

fn parse_bool(value: &str) -> Option<bool> {
    // iplog's config takes true/false; its command line also takes yes/no.
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

/// `50` (seconds), `50s`, `500ms`, `2m`, `1h`; zero and overflow are rejected.
/// `50`, `50s`, `500ms`, `2m`, `1h` in nanoseconds; None for zero, garbage or overflow.
pub fn parse_duration_ns(value: &str) -> Option<u64> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let scale: u64 = match unit {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => return None,
    };
    let n: u64 = number.parse().ok()?;
    n.checked_mul(scale).filter(|ns| *ns > 0)
}

/// `4x`, `1.5x` (the `x` may be left out) as thousandths; above 1, at most 1000.
fn parse_factor_milli(value: &str) -> Option<u32> {
    let number = value.strip_suffix(['x', 'X']).unwrap_or(value);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.len() > 3 || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok().filter(|w| *w <= 1000)?;
    let frac: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    Some(whole * 1000 + frac).filter(|m| (1001..=1_000_000).contains(m))
}

fn valid_interface_name(name: &str) -> bool {
    // IFNAMSIZ is 16 including the NUL; the kernel also refuses '/', ':' and whitespace.
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Canonical syslog facility name for `value` (case-insensitive, optional `log_` prefix).
fn syslog_facility(value: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp", "local0",
        "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    let name = strip_log_prefix(value);
    if name == "security" {
        return Some("auth"); // deprecated alias, accepted by iplog
    }
    NAMES.iter().copied().find(|n| *n == name)
}

/// Canonical syslog priority name for `value` (case-insensitive, optional `log_` prefix).
fn syslog_priority(value: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
    let name = strip_log_prefix(value);
    let canonical = match name.as_str() {
        "panic" => "emerg",
        "error" => "err",
        "warn" => "warning",
        other => other,
    };
    NAMES.iter().copied().find(|n| *n == canonical)
}

fn strip_log_prefix(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    match lower.strip_prefix("log_") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// Replaces comments by spaces, line by line, keeping line numbers. `#` starts a comment
/// anywhere outside `/* */`. `/*` starts one only at the start of a token, as in iplog, so
/// that a `/*` wildcard mask (`10.0.0.0/*`) or a path is left alone. On an unterminated
/// comment, returns the line where it opened.
fn strip_comments(text: &str) -> Result<Vec<String>, usize> {
    let mut lines = Vec::new();
    let mut open_since: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let mut clean = String::with_capacity(raw.len());
        let mut rest = raw;
        loop {
            if open_since.is_some() {
                match rest.find("*/") {
                    Some(end) => {
                        rest = &rest[end + 2..];
                        open_since = None;
                        clean.push(' ');
                    }
                    None => break,
                }
            } else {
                let hash = rest.find('#');
                let block = block_comment_start(rest);
                match (hash, block) {
                    (Some(h), b) if b.is_none_or(|b| h < b) => {
                        clean.push_str(&rest[..h]);
                        break;
                    }
                    (_, Some(b)) => {
                        clean.push_str(&rest[..b]);
                        clean.push(' ');
                        rest = &rest[b + 2..];
                        open_since = Some(index + 1);
                    }
                    (_, None) => {
                        clean.push_str(rest);
                        break;
                    }
                }
            }
        }
        lines.push(clean);
    }
    match open_since {
        Some(line) => Err(line),
        None => Ok(lines),
    }
}

/// Byte offset of the first `/*` that starts a token (at offset 0 or after whitespace).
fn block_comment_start(s: &str) -> Option<usize> {
    s.match_indices("/*").map(|(i, _)| i).find(|&i| s[..i].chars().next_back().is_none_or(char::is_whitespace))
}

// ---------------------------------------------------------------------------------------------
// Filter rules

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Always look at matching packets, even when an `ignore` rule matches too.
    Log,
    /// Skip matching packets before any detection (iplog's allowlist).
    Ignore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
}

impl Proto {
    /// The name used in the config and in `/etc/services`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    fn matches(self, ip_proto: u8) -> bool {
        match self {
            Proto::Tcp => ip_proto == packet::PROTO_TCP,
            Proto::Udp => ip_proto == packet::PROTO_UDP,
            Proto::Icmp => ip_proto == packet::PROTO_ICMP || ip_proto == packet::PROTO_ICMPV6,
        }
    }
}

/// One `log` or `ignore` line. A `None` matcher (not given, or `*`) matches everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRule {
    pub action: Action,
    pub proto: Proto,
    pub from: Option<AddrMatch>,
    pub sport: Option<PortMatch>,
    pub to: Option<AddrMatch>,
    pub dport: Option<PortMatch>,
    pub icmp_type: Option<TypeMatch>,
}

impl FilterRule {
    /// True when the packet matches every matcher of the rule.
    pub fn matches(&self, p: &PacketSummary) -> bool {
        if !self.proto.matches(p.proto) {
            return false;
        }
        let Some((src, dst)) = packet_addrs(p) else {
            return false;
        };
        if self.from.as_ref().is_some_and(|m| !m.matches(&src)) || self.to.as_ref().is_some_and(|m| !m.matches(&dst)) {
            return false;
        }
        let needs_header = self.sport.is_some() || self.dport.is_some() || self.icmp_type.is_some();
        if needs_header && !p.has_transport() {
            // XXX: a later fragment has no ports or ICMP type. Treating its zeros as values
            // would let `ignore tcp dport !22` hide every fragment, so such rules never match
            // it; a rule without port or type matchers still does.
            return false;
        }
        self.sport.as_ref().is_none_or(|m| m.matches(p.sport))
            && self.dport.as_ref().is_none_or(|m| m.matches(p.dport))
            // The type table follows the packet's family, as in the kernel's matcher: ICMP
            // carried over IPv6 (or ICMPv6 over IPv4) is looked up as that family's.
            && self
                .icmp_type
                .as_ref()
                .is_none_or(|m| m.matches(p.icmp_type, p.family == FAMILY_V6))
    }
}

fn packet_addrs(p: &PacketSummary) -> Option<(IpAddr, IpAddr)> {
    let addr = |b: &[u8; 16]| -> Option<IpAddr> {
        match p.family {
            FAMILY_V4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            FAMILY_V6 => Some(IpAddr::V6(Ipv6Addr::from(*b))),
            _ => None,
        }
    };
    Some((addr(&p.src)?, addr(&p.dst)?))
}

/// Splits a leading `!`.
fn negation(value: &str) -> (bool, &str) {
    match value.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, value),
    }
}

/// `[!]ADDR[/MASK]` of `from` and `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrMatch {
    pub net: IpNet,
    /// `!`: match addresses outside `net`.
    pub negated: bool,
}

impl AddrMatch {
    /// `None` for the wildcard `*`.
    fn parse(value: &str) -> Result<Option<AddrMatch>, Problem> {
        let (negated, body) = negation(value);
        if body == "*" {
            return wildcard(value, negated);
        }
        let net = body.parse::<IpNet>()?;
        Ok(Some(AddrMatch { net, negated }))
    }

    /// Addresses are taken as the packet carries them, as the kernel's matcher does: an IPv4
    /// network never contains an IPv6 address, IPv4-mapped (`::ffff:a.b.c.d`) or not.
    pub fn matches(&self, addr: &IpAddr) -> bool {
        let same_family = self.net.addr().is_ipv4() == addr.is_ipv4();
        (same_family && self.net.contains(addr)) != self.negated
    }
}

fn wildcard<T>(value: &str, negated: bool) -> Result<Option<T>, Problem> {
    if negated { Err(Problem::NegatedWildcard { value: value.to_owned() }) } else { Ok(None) }
}

/// `[!]P[:Q]` of `sport` and `dport`: an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMatch {
    pub first: u16,
    pub last: u16,
    /// `!`: match ports outside the range. (iplog applied the `!` to the port number
    /// instead of to the result, so its negated port filters never worked.)
    pub negated: bool,
}

impl PortMatch {
    /// `None` for the wildcard `*`. `P:` runs to 65535, `:Q` from 0; `*` may stand for
    /// either end.
    fn parse(value: &str, proto: Proto) -> Result<Option<PortMatch>, Problem> {
        let (negated, body) = negation(value);
        if body == "*" {
            return wildcard(value, negated);
        }
        let (first, last) = match body.split_once(':') {
            None => {
                let p = port_number(body, proto)?;
                (p, p)
            }
            Some((a, b)) => {
                let first = match a {
                    "" | "*" => 0,
                    _ => port_number(a, proto)?,
                };
                let last = match b {
                    "" | "*" => u16::MAX,
                    _ => port_number(b, proto)?,
                };
                (first, last)
            }
        };
        if first > last {
            return Err(Problem::ReversedPortRange { value: value.to_owned() });
        }
        Ok(Some(PortMatch { first, last, negated }))
    }

    pub fn matches(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port) != self.negated
    }
}

fn port_number(value: &str, proto: Proto) -> Result<u16, Problem> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u16>().map_err(|_| Problem::InvalidPort { value: value.to_owned() });
    }
    if value.contains(char::is_whitespace) || value.starts_with('!') {
        return Err(Problem::InvalidPort { value: value.to_owned() });
    }
    lookup_port(services(), value, proto.name()).ok_or_else(|| match services() {
        Some(_) => Problem::UnknownService { name: value.to_owned(), proto: proto.name() },
        None => Problem::NoServicesDb { name: value.to_owned() },
    })
}

/// `[!]T` of `type`: an ICMP type, numeric or by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeMatch {
    /// The ICMP (IPv4) type.
    pub icmp_type: u8,
    /// The same message in ICMPv6, if it has one (`echo` is 8 in ICMP, 128 in ICMPv6).
    /// A number given in the config is taken literally for both families.
    pub icmpv6_type: Option<u8>,
    /// `!`: match every other type.
    pub negated: bool,
}

/// Names of ICMP types: iplog's (`ECHOREPLY`, `UNREACH`, ..., with an optional `ICMP_`
/// prefix) and spelled-out ones (`echo-request`, `time-exceeded`, ...). Compared after
/// lowercasing and dropping `-` and `_`. With the ICMPv6 type of the same message.
const ICMP_TYPES: &[(&[&str], u8, Option<u8>)] = &[
    (&["echoreply"], 0, Some(129)),
    (&["unreach", "unreachable", "destunreach", "destinationunreachable"], 3, Some(1)),
    (&["sourcequench"], 4, None),
    (&["redirect"], 5, Some(137)),
    (&["echo", "echorequest"], 8, Some(128)),
    (&["routeradvert", "routeradvertisement"], 9, Some(134)),
    (&["routersolicit", "routersolicitation"], 10, Some(133)),
    (&["timxceed", "timeexceeded"], 11, Some(3)),
    (&["paramprob", "parameterproblem"], 12, Some(4)),
    (&["tstamp", "timestamp", "timestamprequest"], 13, None),
    (&["tstampreply", "timestampreply"], 14, None),
    (&["ireq", "inforequest"], 15, None),
    (&["ireqreply", "inforeply"], 16, None),
    (&["maskreq", "maskrequest", "addressmaskrequest"], 17, None),
    (&["maskreply", "addressmaskreply"], 18, None),
];

impl TypeMatch {
    /// `None` for the wildcard `*`.
    fn parse(value: &str) -> Result<Option<TypeMatch>, Problem> {
        let (negated, body) = negation(value);
        if body == "*" {
            return wildcard(value, negated);
        }
        let invalid = || Problem::InvalidIcmpType { value: value.to_owned() };
        if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
            let n = body.parse::<u8>().map_err(|_| invalid())?;
            return Ok(Some(TypeMatch { icmp_type: n, icmpv6_type: Some(n), negated }));
        }
        let lower = body.to_ascii_lowercase();
        let name = lower.strip_prefix("icmp_").unwrap_or(&lower);
        let key: String = name.chars().filter(|c| *c != '-' && *c != '_').collect();
        let (_, icmp_type, icmpv6_type) =
            ICMP_TYPES.iter().find(|(names, _, _)| names.contains(&key.as_str())).ok_or_else(invalid)?;
        Ok(Some(TypeMatch { icmp_type: *icmp_type, icmpv6_type: *icmpv6_type, negated }))
    }

    pub fn matches(&self, icmp_type: u8, v6: bool) -> bool {
        let hit = if v6 { self.icmpv6_type == Some(icmp_type) } else { self.icmp_type == icmp_type };
        hit != self.negated
    }
}

// ---------------------------------------------------------------------------------------------
// Networks

/// An IPv4 or IPv6 network: an address with its host bits cleared, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => IpAddr::V4(mask_v4(a, prefix)),
            IpAddr::V6(a) if prefix <= 128 => IpAddr::V6(mask_v6(a, prefix)),
            _ => return None,
        };
        Some(IpNet { addr, prefix })
    }

    /// The network of one host.
    pub fn host(addr: IpAddr) -> IpNet {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        IpNet { addr, prefix }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` is in the network. An IPv4 network also contains the IPv4-mapped
    /// IPv6 form of its addresses (`::ffff:a.b.c.d`, as dual-stack sockets see them).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => mask_v4(*a, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(a)) => mask_v6(*a, self.prefix) == net,
            (IpAddr::V4(net), IpAddr::V6(a)) => a.to_ipv4_mapped().is_some_and(|a| mask_v4(a, self.prefix) == net),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = Problem;

    /// `ADDR`, `ADDR/BITS` or `ADDR/DOTTED.MASK`; `*` as the mask means every address.
    /// IPv4 addresses may be short, as in iplog: `10/8` is `10.0.0.0/8`, `127.1.2/24` is
    /// `127.1.2.0/24`.
    fn from_str(s: &str) -> Result<IpNet, Problem> {
        let (addr_text, mask_text) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let addr = parse_addr(addr_text).ok_or_else(|| Problem::InvalidAddress { value: s.to_owned() })?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match mask_text {
            None => max,
            Some("*") => 0,
            Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => m
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| Problem::InvalidPrefix { value: s.to_owned(), max })?,
            Some(m) => match (addr, parse_addr(m)) {
                (IpAddr::V4(_), Some(IpAddr::V4(mask))) => dotted_prefix(mask),
                _ => None,
            }
            .ok_or_else(|| Problem::InvalidMask { value: s.to_owned() })?,
        };
        IpNet::new(addr, prefix).ok_or_else(|| Problem::InvalidPrefix { value: s.to_owned(), max })
    }
}

/// An IP address, or a short dotted IPv4 address padded with zeros (`10.1` = `10.1.0.0`).
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Some(addr);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(&parts) {
        *octet = part.parse().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// The prefix length of a contiguous dotted mask (`255.255.255.0` = 24).
fn dotted_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

fn mask_v4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(a) & mask)
}

fn mask_v6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(u128::from(a) & mask)
}

// ---------------------------------------------------------------------------------------------
// Services database

/// Ports of `/etc/services` by name (and alias) and names by port, per protocol.
#[derive(Debug, Default)]
pub struct ServicesDb {
    ports: HashMap<(String, String), u16>,
    names: HashMap<(u16, String), String>,
}

impl ServicesDb {
    /// Parses `services(5)` text: `name port/proto [aliases...] [# comment]`. The first entry
    /// wins, as with getservbyname(3); malformed lines are skipped.
    pub fn parse(text: &str) -> ServicesDb {
        let mut db = ServicesDb::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let proto = proto.to_ascii_lowercase();
            db.names.entry((port, proto.clone())).or_insert_with(|| name.to_owned());
            for n in std::iter::once(name).chain(fields) {
                db.ports.entry((n.to_owned(), proto.clone())).or_insert(port);
            }
        }
        db
    }

    pub fn port(&self, name: &str, proto: &str) -> Option<u16> {
        self.ports.get(&(name.to_owned(), proto.to_owned())).copied()
    }

    pub fn name(&self, port: u16, proto: &str) -> Option<&str> {
        self.names.get(&(port, proto.to_owned())).map(String::as_str)
    }
}

/// Well-known names some systems lack (Debian lists `loc-srv` only as an alias of `epmap`,
/// others not at all); they keep configs such as the seed's loading everywhere. Used only
/// when the services database does not know the name.
const BUILTIN_SERVICES: &[(&str, u16)] =
    &[("loc-srv", 135), ("epmap", 135), ("netbios-ssn", 139), ("microsoft-ds", 445)];

/// The system services database, read once; `None` when it cannot be read.
fn services() -> Option<&'static ServicesDb> {
    static DB: OnceLock<Option<ServicesDb>> = OnceLock::new();
    DB.get_or_init(|| fs::read_to_string(SERVICES_PATH).ok().map(|t| ServicesDb::parse(&t))).as_ref()
}

fn lookup_port(db: Option<&ServicesDb>, name: &str, proto: &str) -> Option<u16> {
    db.and_then(|db| db.port(name, proto))
        .or_else(|| BUILTIN_SERVICES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p))
}

/// The port of a service name for `proto` (`"tcp"` or `"udp"`), from `/etc/services` or a
/// few built-in well-known names.
pub fn service_port(name: &str, proto: &str) -> Option<u16> {
    lookup_port(services(), name, proto)
}

/// The `/etc/services` name of a port for `proto` (`"tcp"` or `"udp"`), as iplog logs it.
pub fn service_name(port: u16, proto: &str) -> Option<String> {
    services()?.name(port, proto).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipscan_common::DETECTIONS;

    const FILE: &str = "ipscan.conf";

    fn parse(text: &str) -> Settings {
        match Settings::parse(text, Path::new(FILE)) {
            Ok(s) => s,
            Err(e) => panic!("config should parse: {e}"),
        }
    }

    fn error(text: &str) -> String {
        match Settings::parse(text, Path::new(FILE)) {
            Ok(s) => panic!("config should not parse: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8) -> PacketSummary {
        let mut p = PacketSummary { family: FAMILY_V4, proto, ..Default::default() };
        p.src[..4].copy_from_slice(&src);
        p.dst[..4].copy_from_slice(&dst);
        p
    }

    fn v6(src: &str, dst: &str, proto: u8) -> PacketSummary {
        let parse = |s: &str| s.parse::<Ipv6Addr>().expect("test address").octets();
        PacketSummary { family: FAMILY_V6, proto, src: parse(src), dst: parse(dst), ..Default::default() }
    }

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> PacketSummary {
        PacketSummary { sport, dport, ..v4(src, dst, packet::PROTO_TCP) }
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> PacketSummary {
        PacketSummary { sport, dport, ..v4(src, dst, packet::PROTO_UDP) }
    }

    fn icmp(src: [u8; 4], icmp_type: u8) -> PacketSummary {
        PacketSummary { icmp_type, ..v4(src, [10, 0, 0, 1], packet::PROTO_ICMP) }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn enabled(s: &Settings, d: Detection) -> bool {
        s.kernel.detection(d).enabled()
    }

    /// The `iplog.conf` code blocks of the seed document, as written there.
    const SEED: &str = "
  set log_ip true

  set log_dest false

  set ignore_dns true

  ignore tcp dport 80

  ignore tcp dport netbios-ssn

  ignore tcp dport microsoft-ds

  ignore tcp dport loc-srv

  ignore tcp dport 5900


  set portscan true

  set icmp true

  set frag true

  set smurf true

  set bogus true

  set fin_scan true

  set syn_scan true

  set udp_scan true

  set fool_nmap false

  set xmas_scan true

  set null_scan true

  set ping_flood true

  set traceroute true
";

    #[test]
    fn seed_config_loads() {
        let s = parse(SEED);
        let f = s.flags;
        assert!(f.log_ip && !f.log_dest && f.ignore_dns);
        assert!(f.portscan && f.icmp && f.frag && f.smurf && f.bogus && f.fin_scan);
        assert!(f.syn_scan && f.udp_scan && f.xmas_scan && f.null_scan && f.ping_flood);
        assert!(f.traceroute && !f.fool_nmap);
        let ports: Vec<u16> = s
            .rules
            .iter()
            .map(|r| {
                assert_eq!((r.action, r.proto), (Action::Ignore, Proto::Tcp));
                assert_eq!((r.from, r.to, r.sport, r.icmp_type), (None, None, None, None));
                let d = r.dport.expect("dport");
                assert!(!d.negated);
                assert_eq!(d.first, d.last);
                d.first
            })
            .collect();
        assert_eq!(ports, [80, 139, 445, 135, 5900]);
        assert_eq!(s.kernel, KernelConfig::default());

        let web = tcp([10, 10, 150, 1], 51242, [10, 10, 150, 2], 80);
        assert!(s.ignores(&web));
        assert!(!s.ignores(&PacketSummary { dport: 22, ..web }));
        assert!(!s.ignores(&PacketSummary { proto: packet::PROTO_UDP, ..web }));
    }

    #[test]
    fn defaults_are_iplogs() {
        let s = parse("");
        assert_eq!(s, Settings::default());
        let on = [
            "tcp",
            "udp",
            "icmp",
            "frag",
            "smurf",
            "bogus",
            "fin_scan",
            "syn_scan",
            "udp_scan",
            "portscan",
            "xmas_scan",
            "null_scan",
            "ping_flood",
            "traceroute",
            "dns_cache",
            "syn_flood",
            "udp_resolve",
            "tcp_resolve",
            "icmp_resolve",
            "distributed_flood",
        ];
        for k in Flags::KEYWORDS {
            assert_eq!(s.flags.get(k), Some(on.contains(k)), "default of {k}");
        }
        assert_eq!(Flags::KEYWORDS.len(), 37);
        assert_eq!(s.kernel, KernelConfig::default());
        assert!(s.interfaces.is_empty() && s.rules.is_empty() && s.promisc.is_empty());
        assert_eq!((s.logfile, s.facility, s.priority), (None, None, None));
    }

    #[test]
    fn every_flag_can_be_set_and_cleared() {
        for k in Flags::KEYWORDS {
            let s = parse(&format!("set {k} false"));
            assert_eq!(s.flags.get(k), Some(false), "set {k} false");
            let mut expected = Flags::default();
            *expected.get_mut(k).expect("keyword") = false;
            assert_eq!(s.flags, expected, "set {k} false touches only {k}");

            for text in [
                format!("set {k}"),
                format!("set {k} true"),
                format!("set {k} yes"),
                format!("SET {} TRUE", k.to_uppercase()),
            ] {
                let s = parse(&format!("set {k} false\n{text}"));
                assert_eq!(s.flags.get(k), Some(true), "{text}");
            }
            assert_eq!(parse(&format!("set {k} no")).flags.get(k), Some(false));
        }
    }

    /// The detections `set` switches, with their keywords.
    fn switched() -> impl Iterator<Item = (&'static str, Detection)> {
        DETECTIONS.into_iter().filter(|d| d.names().switch).map(|d| (d.names().keyword, d))
    }

    #[test]
    fn detection_flags_switch_the_kernel_config() {
        for (k, d) in switched() {
            let s = parse(&format!("set {k} false"));
            assert!(!enabled(&s, d), "{k} disabled");
            for (k2, d2) in switched() {
                if k2 != k {
                    assert_eq!(enabled(&s, d2), enabled(&Settings::default(), d2), "{k2} untouched by {k}");
                }
            }
            // Thresholds survive and a later `set` turns it (back) on; the sweeps are off by
            // default.
            let s = parse(&format!("set {k} false\nset {k}"));
            let mut want = KernelConfig::default();
            want.detection_mut(d).flags |= detection_flags::ENABLED;
            assert_eq!(s.kernel, want);
            assert_eq!(
                d.counts_hosts() || d == Detection::DistScan || d == Detection::Rejected,
                !enabled(&Settings::default(), d),
                "{k}: off by default"
            );
        }
    }

    #[test]
    fn protocol_switches_gate_detections() {
        let s = parse("set tcp false");
        assert!(s.flags.portscan, "flags keep what the file says");
        for d in [Detection::PortScan, Detection::SynScan, Detection::FinScan, Detection::NullScan, Detection::XmasScan]
        {
            assert!(!enabled(&s, d));
        }
        assert!(enabled(&s, Detection::UdpScan) && enabled(&s, Detection::Smurf));

        let s = parse("set udp false");
        assert!(!enabled(&s, Detection::UdpScan));
        assert!(enabled(&s, Detection::Smurf) && enabled(&s, Detection::PortScan));

        let s = parse("set icmp false");
        assert!(!enabled(&s, Detection::PingFlood) && enabled(&s, Detection::Smurf));

        let s = parse("set icmp false\nset udp false");
        assert!(!enabled(&s, Detection::Smurf));

        // iplog: a bare `ignore PROTO` / `log PROTO` is the protocol switch, not a rule.
        let s = parse("ignore udp");
        assert!(!s.flags.udp && s.rules.is_empty() && !enabled(&s, Detection::UdpScan));
        let s = parse("ignore udp\nlog udp");
        assert!(s.flags.udp && enabled(&s, Detection::UdpScan));
    }

    #[test]
    fn threshold_and_window() {
        let s = parse(
            "threshold syn_scan 5\nwindow syn_scan 500ms\nthreshold PortScan 100\n\
             window portscan 2m\nwindow smurf 1h\nwindow udp_scan 45\nwindow ping_flood 7s",
        );
        let d = |d| *s.kernel.detection(d);
        assert_eq!((d(Detection::SynScan).threshold, d(Detection::SynScan).window_ns), (5, 500_000_000));
        assert_eq!(d(Detection::PortScan).threshold, 100);
        assert_eq!(d(Detection::PortScan).window_ns, 120_000_000_000);
        assert_eq!(d(Detection::Smurf).window_ns, 3_600_000_000_000);
        assert_eq!(d(Detection::UdpScan).window_ns, 45_000_000_000);
        assert_eq!(d(Detection::PingFlood).window_ns, 7_000_000_000);
        assert_eq!(d(Detection::FinScan), KernelConfig::default().detections[Detection::FinScan as usize]);
        assert!(d(Detection::SynScan).enabled());

        for (k, det) in switched() {
            let s = parse(&format!("threshold {k} 3\nwindow {k} 9"));
            assert_eq!(s.kernel.detection(det).threshold, 3, "{k}");
            assert_eq!(s.kernel.detection(det).window_ns, 9_000_000_000, "{k}");
        }
        // A threshold does not re-enable a disabled detection.
        let s = parse("set fin_scan false\nthreshold fin_scan 4");
        assert!(!enabled(&s, Detection::FinScan));
        assert_eq!(s.kernel.detection(Detection::FinScan).threshold, 4);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("50"), Some(50_000_000_000));
        assert_eq!(parse_duration_ns("50s"), Some(50_000_000_000));
        assert_eq!(parse_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(parse_duration_ns("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration_ns("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_duration_ns("30d"), Some(30 * 86_400_000_000_000));
        for bad in ["0", "0s", "", "s", "-1", "1.5s", "5 s", "5w", "ms", "1H", "99999999999999999999"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration_ns("18446744073709551615h"), None, "overflow");
    }

    #[test]
    fn other_keywords() {
        let s = parse(
            "interface eth0,eth1\nlogfile /var/log/iplog\npid-file /run/iplog.pid\n\
             user nobody\ngroup nogroup\nfacility log_daemon\npriority LOG_INFO",
        );
        assert_eq!(s.interfaces, ["eth0", "eth1"]);
        assert_eq!(s.logfile.as_deref(), Some(Path::new("/var/log/iplog")));
        assert_eq!(s.pid_file.as_deref(), Some(Path::new("/run/iplog.pid")));
        assert_eq!((s.user.as_deref(), s.group.as_deref()), (Some("nobody"), Some("nogroup")));
        assert_eq!((s.facility.as_deref(), s.priority.as_deref()), (Some("daemon"), Some("info")));

        assert_eq!(parse("interface eth0, wlan0").interfaces, ["eth0", "wlan0"]);
        assert_eq!(parse("interface eth0\ninterface eth1").interfaces, ["eth1"], "last wins");
        for (given, canonical) in [("local7", "local7"), ("security", "auth"), ("AUTHPRIV", "authpriv")] {
            assert_eq!(parse(&format!("facility {given}")).facility.as_deref(), Some(canonical));
        }
        for (given, canonical) in [("warn", "warning"), ("error", "err"), ("panic", "emerg"), ("notice", "notice")] {
            assert_eq!(parse(&format!("priority {given}")).priority.as_deref(), Some(canonical));
        }

        let s = parse("promisc 192.168.0.0/24,2001:db8::/32");
        assert_eq!(s.promisc, [net("192.168.0.0/24"), net("2001:db8::/32")]);
        assert!(s.flags.log_dest, "promisc implies log_dest");
        assert!(!parse("promisc 10.0.0.0/8\nset log_dest false").flags.log_dest);
    }

    #[test]
    fn comments() {
        let s = parse(
            "# a comment\n  set log_ip # trailing\n/* one\n   set log_dest true\n */ set verbose\n\
             set stdout /* inline */ true\n/**/\nset /* x */ scans_only /* y */ false\n\
             logfile /var/log/ip*log\nignore tcp from 10.0.0.0/* dport 80\n\
             \t\r\n/* a *//* b */ set frag false # end",
        );
        assert!(s.flags.log_ip && !s.flags.log_dest && s.flags.verbose && s.flags.stdout);
        assert!(!s.flags.scans_only && !s.flags.frag);
        assert_eq!(s.logfile.as_deref(), Some(Path::new("/var/log/ip*log")));
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].from.map(|m| m.net), Some(net("0.0.0.0/0")));
    }

    #[test]
    fn addresses_and_masks() {
        assert_eq!(net("10.1.2.3"), IpNet::host(ip("10.1.2.3")));
        assert_eq!(net("10.1.2.3/8").addr(), ip("10.0.0.0"), "host bits cleared");
        assert_eq!(net("10.0.0.0/255.0.0.0"), net("10.0.0.0/8"));
        assert_eq!(net("192.168.4.0/255.255.252.0"), net("192.168.4.0/22"));
        assert_eq!(net("127.1.2/24"), net("127.1.2.0/24"), "iplog's short form");
        assert_eq!(net("127.1.2/255.255.255.0"), net("127.1.2.0/24"));
        assert_eq!(net("10/8"), net("10.0.0.0/8"));
        assert_eq!(net("0.0.0.0/0").prefix(), 0);
        assert_eq!(net("1.2.3.4/*"), net("0.0.0.0/0"));
        assert_eq!(net("2001:db8::1/32").addr(), ip("2001:db8::"));
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");

        let n = net("10.0.0.0/8");
        assert!(n.contains(&ip("10.255.1.1")) && !n.contains(&ip("11.0.0.1")));
        assert!(n.contains(&ip("::ffff:10.1.1.1")), "IPv4-mapped");
        assert!(!n.contains(&ip("2001:db8::1")));
        let n = net("2001:db8::/32");
        assert!(n.contains(&ip("2001:db8:ffff::1")) && !n.contains(&ip("2001:db9::1")));
        assert!(!n.contains(&ip("32.1.13.184")));
        assert!(net("0.0.0.0/0").contains(&ip("255.255.255.255")));
        assert!(net("::/0").contains(&ip("::1")));
        let host = net("192.168.1.1");
        assert!(host.contains(&ip("192.168.1.1")) && !host.contains(&ip("192.168.1.2")));

        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/255.0.255.0",
            "10.0.0.0/x",
            "::/255.0.0.0",
            "10.0.0.0/",
            "host.example.org",
            "1.2.3.4.5",
            "10.0.0.256",
            "a::g",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn address_rules_v4() {
        let s = parse("ignore udp from 192.168.0.0/255.255.0.0 to !10.0.0.1");
        let inside = udp([192, 168, 7, 7], 1000, [10, 0, 0, 2], 53);
        assert!(s.ignores(&inside));
        assert!(!s.ignores(&udp([192, 168, 7, 7], 1000, [10, 0, 0, 1], 53)), "negated to");
        assert!(!s.ignores(&udp([192, 169, 0, 1], 1000, [10, 0, 0, 2], 53)));
        assert!(!s.ignores(&PacketSummary { proto: packet::PROTO_TCP, ..inside }));

        let s = parse("ignore tcp from !10.0.0.0/8");
        assert!(!s.ignores(&tcp([10, 9, 9, 9], 1, [1, 1, 1, 1], 2)));
        assert!(s.ignores(&tcp([11, 0, 0, 1], 1, [1, 1, 1, 1], 2)));
        assert_eq!(s.rules[0].from, Some(AddrMatch { net: net("10.0.0.0/8"), negated: true }));
    }

    #[test]
    fn address_rules_v6() {
        let s = parse("ignore tcp from 2001:db8::/32 dport 443\nignore icmp to !fe80::/10");
        let p = PacketSummary { dport: 443, ..v6("2001:db8::5", "2001:db8:1::1", packet::PROTO_TCP) };
        assert!(s.ignores(&p));
        assert!(!s.ignores(&PacketSummary { dport: 80, ..p }));
        assert!(!s.ignores(&PacketSummary { dport: 443, ..v6("2001:db9::5", "2001:db8:1::1", packet::PROTO_TCP) }));
        // An IPv6 rule never matches IPv4 packets.
        assert!(!s.ignores(&tcp([32, 1, 13, 184], 1, [1, 1, 1, 1], 443)));
        assert!(s.ignores(&v6("fe80::1", "2001:db8::1", packet::PROTO_ICMPV6)));
        assert!(!s.ignores(&v6("2001:db8::1", "fe80::1", packet::PROTO_ICMPV6)));
    }

    #[test]
    fn negated_ports_work() {
        // iplog XORed the negation into the port number, so these never matched there.
        let s = parse("ignore tcp dport !22");
        assert!(s.ignores(&tcp([1, 2, 3, 4], 4000, [5, 6, 7, 8], 80)));
        assert!(s.ignores(&tcp([1, 2, 3, 4], 4000, [5, 6, 7, 8], 23)));
        assert!(!s.ignores(&tcp([1, 2, 3, 4], 4000, [5, 6, 7, 8], 22)));

        let s = parse("ignore udp sport !1024:");
        assert!(s.ignores(&udp([1, 2, 3, 4], 53, [5, 6, 7, 8], 4000)));
        assert!(s.ignores(&udp([1, 2, 3, 4], 1023, [5, 6, 7, 8], 4000)));
        assert!(!s.ignores(&udp([1, 2, 3, 4], 1024, [5, 6, 7, 8], 4000)));
        assert!(!s.ignores(&udp([1, 2, 3, 4], 65535, [5, 6, 7, 8], 4000)));
    }

    #[test]
    fn port_ranges_and_names() {
        let rule = |text: &str| parse(text).rules[0].clone();
        let p = |first, last, negated| Some(PortMatch { first, last, negated });
        assert_eq!(rule("log tcp dport 1045:1055").dport, p(1045, 1055, false));
        assert_eq!(rule("ignore tcp dport 1024:").dport, p(1024, 65535, false));
        assert_eq!(rule("ignore tcp dport :1023").dport, p(0, 1023, false));
        assert_eq!(rule("ignore tcp dport *:100").dport, p(0, 100, false));
        assert_eq!(rule("ignore tcp dport !6000:6063").dport, p(6000, 6063, true));
        assert_eq!(rule("ignore tcp dport *").dport, None);
        assert_eq!(rule("ignore udp sport 0").sport, p(0, 0, false));
        assert_eq!(rule("ignore tcp dport microsoft-ds").dport, p(445, 445, false));
        assert_eq!(rule("ignore udp dport netbios-ssn:microsoft-ds").dport, p(139, 445, false));

        let s = parse("ignore tcp dport 1045:1055");
        let at = |port| tcp([1, 1, 1, 1], 5, [2, 2, 2, 2], port);
        assert!(!s.ignores(&at(1044)) && s.ignores(&at(1045)) && s.ignores(&at(1055)));
        assert!(!s.ignores(&at(1056)));

        let s = parse("ignore tcp sport 20 dport 1024:");
        assert!(s.ignores(&tcp([1, 1, 1, 1], 20, [2, 2, 2, 2], 5000)));
        assert!(!s.ignores(&tcp([1, 1, 1, 1], 21, [2, 2, 2, 2], 5000)), "both ports must match");
        assert!(!s.ignores(&tcp([1, 1, 1, 1], 20, [2, 2, 2, 2], 80)));
    }

    #[test]
    fn services_db() {
        let db = ServicesDb::parse(
            "# comment\nftp-data\t20/tcp\nftp 21/tcp\nepmap\t\t135/tcp\t\tloc-srv # DCE\n\
             epmap 135/udp loc-srv\ndomain 53/udp\ndomain 53/tcp\nalt 21/tcp\nbad x/tcp\n\
             broken\n",
        );
        assert_eq!(db.port("ftp-data", "tcp"), Some(20));
        assert_eq!(db.port("loc-srv", "tcp"), Some(135), "aliases");
        assert_eq!(db.port("loc-srv", "udp"), Some(135));
        assert_eq!(db.port("ftp", "udp"), None, "per protocol");
        assert_eq!(db.port("FTP", "tcp"), None, "names are case-sensitive");
        assert_eq!(db.name(21, "tcp"), Some("ftp"), "first entry wins");
        assert_eq!(db.name(53, "udp"), Some("domain"));
        assert_eq!(db.name(9, "tcp"), None);

        // Without any database, the built-in names still resolve and others do not.
        assert_eq!(lookup_port(None, "loc-srv", "tcp"), Some(135));
        assert_eq!(lookup_port(None, "netbios-ssn", "tcp"), Some(139));
        assert_eq!(lookup_port(None, "microsoft-ds", "udp"), Some(445));
        assert_eq!(lookup_port(None, "ftp", "tcp"), None);
        assert_eq!(lookup_port(Some(&db), "ftp", "tcp"), Some(21));
    }

    #[test]
    fn system_services_db() {
        // The seed's names resolve on this system (through the built-in table if needed).
        assert_eq!(service_port("netbios-ssn", "tcp"), Some(139));
        assert_eq!(service_port("microsoft-ds", "tcp"), Some(445));
        assert_eq!(service_port("loc-srv", "tcp"), Some(135));
        if services().is_some() {
            assert_eq!(service_port("ssh", "tcp"), Some(22));
            assert_eq!(service_name(22, "tcp").as_deref(), Some("ssh"));
            assert_eq!(service_name(53, "udp").as_deref(), Some("domain"));
            assert_eq!(service_port("ftp-data", "tcp"), Some(20));
            assert_eq!(parse("log tcp sport ftp-data").rules[0].sport.map(|p| p.first), Some(20));
        }
        assert_eq!(service_port("no-such-service-here", "tcp"), None);
    }

    #[test]
    fn log_wins_over_ignore() {
        // The log rule comes last in the file and still wins.
        let s = parse("ignore tcp from 10.0.0.0/8\nlog tcp from 10.0.0.0/8 dport 22");
        assert!(s.ignores(&tcp([10, 1, 1, 1], 999, [1, 1, 1, 1], 80)));
        assert!(!s.ignores(&tcp([10, 1, 1, 1], 999, [1, 1, 1, 1], 22)));
        assert!(!s.ignores(&tcp([11, 1, 1, 1], 999, [1, 1, 1, 1], 80)), "no rule matches");
        assert_eq!(s.rules[0].action, Action::Ignore, "file order kept");
        assert_eq!(s.rules[1].action, Action::Log);

        // A log rule alone ignores nothing.
        let s = parse("log udp dport 53");
        assert!(!s.ignores(&udp([1, 1, 1, 1], 1, [2, 2, 2, 2], 53)));
        assert!(!s.ignores(&udp([1, 1, 1, 1], 1, [2, 2, 2, 2], 54)));
    }

    #[test]
    fn icmp_types() {
        let s = parse("ignore icmp type unreach");
        assert!(s.ignores(&icmp([1, 1, 1, 1], 3)));
        assert!(!s.ignores(&icmp([1, 1, 1, 1], 8)));
        assert!(!s.ignores(&tcp([1, 1, 1, 1], 3, [2, 2, 2, 2], 3)), "icmp rule, tcp packet");

        let s = parse("ignore icmp type !echo from 10.0.0.0/8");
        assert!(s.ignores(&icmp([10, 0, 0, 1], 0)));
        assert!(!s.ignores(&icmp([10, 0, 0, 1], 8)));
        assert!(!s.ignores(&icmp([11, 0, 0, 1], 0)));

        let ty = |t: &str| parse(&format!("ignore icmp type {t}")).rules[0].icmp_type;
        let named = |icmp_type, icmpv6_type| Some(TypeMatch { icmp_type, icmpv6_type, negated: false });
        for t in ["8", "echo", "ECHO", "ICMP_ECHO", "echo-request", "echo_request"] {
            assert_eq!(ty(t).map(|m| m.icmp_type), Some(8), "{t}");
        }
        assert_eq!(ty("echo-reply"), named(0, Some(129)));
        assert_eq!(ty("ECHOREPLY"), named(0, Some(129)));
        assert_eq!(ty("0"), named(0, Some(0)));
        assert_eq!(ty("time-exceeded"), named(11, Some(3)));
        assert_eq!(ty("TIMXCEED"), named(11, Some(3)));
        assert_eq!(ty("maskreply"), named(18, None));
        assert_eq!(ty("200"), named(200, Some(200)));
        assert_eq!(ty("*"), None);

        // Names match the same message in ICMPv6.
        let s = parse("ignore icmp type echo-request");
        let ping6 = PacketSummary { icmp_type: 128, ..v6("2001:db8::1", "2001:db8::2", packet::PROTO_ICMPV6) };
        assert!(s.ignores(&ping6));
        assert!(!s.ignores(&PacketSummary { icmp_type: 8, ..ping6 }));
    }

    #[test]
    fn later_fragments_never_match_port_or_type_rules() {
        let frag = PacketSummary {
            ip_flags: packet::ip_flags::FRAGMENT | packet::ip_flags::LATER_FRAGMENT,
            ..tcp([1, 1, 1, 1], 0, [2, 2, 2, 2], 0)
        };
        assert!(!parse("ignore tcp dport !22").ignores(&frag));
        assert!(!parse("ignore tcp dport 0").ignores(&frag));
        assert!(parse("ignore tcp from 1.1.1.1").ignores(&frag));
    }

    #[test]
    fn counting_is_plain_or_confirmed_and_confirmed_wants_the_rejects() {
        let s = parse("");
        assert!(!s.confirmed && !s.wants_rejects());
        let s = parse("counting confirmed\n");
        assert!(s.confirmed && s.wants_rejects());
        let s = parse("counting confirmed\ncounting PLAIN\n");
        assert!(!s.confirmed && !s.wants_rejects());
        // The rejected probes detection wants them too, whatever the counting.
        assert!(parse("set rejected\n").wants_rejects());
        for (text, error) in [
            ("counting", "missing plain or confirmed after \"counting\""),
            ("counting strict", "unknown counting \"strict\": expected plain or confirmed"),
            ("counting plain confirmed", "too many values for \"counting\": unexpected \"confirmed\""),
        ] {
            let e = Settings::parse(&format!("{text}\n"), Path::new("x.conf")).expect_err(text);
            assert_eq!(e.to_string(), format!("x.conf:1: {error}"), "{text}");
        }
    }

    #[test]
    fn error_messages() {
        let cases: &[(&str, &str)] = &[
            ("set log_ip\nsett log_ip", "ipscan.conf:2: unknown keyword \"sett\""),
            (
                "\n\nthreshold syn_scan abc",
                "ipscan.conf:3: invalid threshold \"abc\" for syn_scan: expected a positive integer",
            ),
            (
                "threshold syn_scan 0",
                "ipscan.conf:1: invalid threshold \"0\" for syn_scan: expected a positive integer",
            ),
            (
                "threshold syn_scan +5",
                "ipscan.conf:1: invalid threshold \"+5\" for syn_scan: expected a positive integer",
            ),
            (
                "threshold syn_scan 4294967296",
                "ipscan.conf:1: invalid threshold \"4294967296\" for syn_scan: expected a positive integer",
            ),
            (
                "window FIN_SCAN 0s",
                "ipscan.conf:1: invalid window \"0s\" for fin_scan: expected a positive duration such as 50s, 500ms, 2m or 1h",
            ),
            (
                "threshold syn_flood 3",
                "ipscan.conf:1: unknown detection \"syn_flood\": expected one of portscan, syn_scan, fin_scan, null_scan, xmas_scan, udp_scan, ping_flood, smurf, udp_flood, tripwire, tcp_sweep, udp_sweep, ping_sweep, distributed_flood, distributed_scan, rejected",
            ),
            ("threshold syn_scan", "ipscan.conf:1: missing threshold after \"threshold syn_scan\""),
            ("window", "ipscan.conf:1: missing detection name after \"window\""),
            ("threshold smurf 5 6", "ipscan.conf:1: too many values for \"threshold\": unexpected \"6\""),
            ("set", "ipscan.conf:1: missing set keyword after \"set\""),
            ("set log_ipp", "ipscan.conf:1: unknown set keyword \"log_ipp\""),
            ("set log_ip maybe", "ipscan.conf:1: invalid value \"maybe\" for set log_ip: expected true or false"),
            ("set log_ip true false", "ipscan.conf:1: too many values for \"set\": unexpected \"false\""),
            ("logfile", "ipscan.conf:1: missing path after \"logfile\""),
            ("logfile /a /b", "ipscan.conf:1: too many values for \"logfile\": unexpected \"/b\""),
            ("user", "ipscan.conf:1: missing user name after \"user\""),
            ("facility kernel", "ipscan.conf:1: unknown syslog facility \"kernel\""),
            ("priority loud", "ipscan.conf:1: unknown syslog priority \"loud\""),
            ("interface eth0,,eth1", "ipscan.conf:1: empty item in the \"interface\" list"),
            ("interface eth0 eth1", "ipscan.conf:1: too many values for \"interface\": unexpected \"eth1\""),
            ("interface averyveryverylongname", "ipscan.conf:1: invalid interface name \"averyveryverylongname\""),
            ("promisc 10.0.0.0/40", "ipscan.conf:1: invalid mask \"10.0.0.0/40\": prefix length must be 0 to 32"),
            ("ignore", "ipscan.conf:1: missing protocol after \"ignore\""),
            ("ignore sctp dport 1", "ipscan.conf:1: unknown protocol \"sctp\": expected tcp, udp or icmp"),
            ("ignore tcp type 3", "ipscan.conf:1: \"type\" is not a filter keyword for tcp rules"),
            ("ignore icmp dport 3", "ipscan.conf:1: \"dport\" is not a filter keyword for icmp rules"),
            ("ignore tcp port 3", "ipscan.conf:1: \"port\" is not a filter keyword for tcp rules"),
            ("ignore tcp from 1.2.3.4 from 1.2.3.5", "ipscan.conf:1: \"from\" given twice in one rule"),
            ("ignore tcp dport", "ipscan.conf:1: missing port after \"dport\""),
            ("ignore udp from", "ipscan.conf:1: missing address after \"from\""),
            (
                "ignore tcp from host.example.org",
                "ipscan.conf:1: invalid address \"host.example.org\": expected an IPv4 or IPv6 address (host names are not resolved)",
            ),
            (
                "ignore tcp to 2001:db8::/129",
                "ipscan.conf:1: invalid mask \"2001:db8::/129\": prefix length must be 0 to 128",
            ),
            (
                "ignore tcp to 10.0.0.0/255.0.255.0",
                "ipscan.conf:1: invalid mask \"10.0.0.0/255.0.255.0\": expected prefix bits or a contiguous dotted IPv4 mask",
            ),
            ("ignore tcp dport 65536", "ipscan.conf:1: invalid port \"65536\": expected 0 to 65535 or a service name"),
            ("ignore tcp dport 90:80", "ipscan.conf:1: invalid port range \"90:80\": the start is above the end"),
            ("ignore tcp dport !*", "ipscan.conf:1: \"!*\" matches nothing: a wildcard cannot be negated"),
            ("ignore icmp type bogus", "ipscan.conf:1: unknown icmp type \"bogus\""),
            ("ignore icmp type 256", "ipscan.conf:1: unknown icmp type \"256\""),
        ];
        for (text, expected) in cases {
            assert_eq!(error(text), *expected, "{text:?}");
        }
        let unknown = error("ignore udp dport no-such-service-here");
        if services().is_some() {
            assert_eq!(unknown, "ipscan.conf:1: unknown udp service \"no-such-service-here\" (not in /etc/services)");
        } else {
            assert_eq!(
                unknown,
                "ipscan.conf:1: cannot look up service \"no-such-service-here\": /etc/services is not readable, use a port number"
            );
        }
    }

    #[test]
    fn error_lines_around_comments() {
        // An error after a multi-line comment is reported on its own line.
        let text = "set log_ip\n/* line 2\n   line 3\n   line 4 */ sett x\nset verbose\n";
        assert_eq!(error(text), "ipscan.conf:4: unknown keyword \"sett\"");
        let text = "/*\n\n*/\n\nset nope";
        assert_eq!(error(text), "ipscan.conf:5: unknown set keyword \"nope\"");
        // An unterminated comment is reported where it opened.
        let text = "set log_ip\n\nset verbose /* here\n sett\n\n";
        assert_eq!(error(text), "ipscan.conf:3: unterminated comment: \"/*\" without \"*/\"");
        let text = "/* a */\n/* b\n*/ /* c\n";
        assert_eq!(error(text), "ipscan.conf:3: unterminated comment: \"/*\" without \"*/\"");
        // Bad statements inside comments are not errors; CRLF line ends are fine.
        parse("/* sett x\n set log_ip maybe */\r\nset log_ip true\r\n# sett\r\n");
    }

    #[test]
    fn error_display_names_the_file_as_given() {
        let e = Settings::parse("bogus", Path::new("/etc/ipscan/iplog.conf")).expect_err("bad");
        assert_eq!(e.to_string(), "/etc/ipscan/iplog.conf:1: unknown keyword \"bogus\"");
        assert!(matches!(e, ConfigError::Parse { line: 1, problem: Problem::UnknownKeyword { .. }, .. }));
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn load_reads_files_and_names_them_in_errors() {
        let dir = std::env::temp_dir().join(format!("ipscan-config-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("iplog.conf");
        fs::write(&path, SEED).expect("write");
        let s = Settings::load(&path).expect("seed loads from a file");
        assert_eq!(s.rules.len(), 5);

        fs::write(&path, "set log_ip\nset bad\n").expect("write");
        let e = Settings::load(&path).expect_err("bad file");
        assert_eq!(e.to_string(), format!("{}:2: unknown set keyword \"bad\"", path.display()));

        let missing = dir.join("missing.conf");
        let e = Settings::load(&missing).expect_err("missing file");
        assert_eq!(e.to_string(), format!("cannot read {}", missing.display()));
        assert!(std::error::Error::source(&e).is_some());
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}

#[cfg(test)]
mod block_keyword_tests {
    use super::*;

    #[test]
    fn smurf_and_distributed_flood_cannot_block() {
        for d in ["smurf", "distributed_flood", "distributed_scan"] {
            let e = Settings::parse(&format!("block {d} 1h\n"), Path::new("x.conf")).expect_err(d);
            assert!(e.to_string().starts_with(&format!("x.conf:1: {d} cannot block: ")), "{e}");
            assert!(Settings::parse(&format!("block {d} off\n"), Path::new("x.conf")).is_ok());
        }
    }

    #[test]
    fn tripwires_accumulate_and_bad_ones_are_named() {
        let s = Settings::parse(
            "tripwire tcp 23,telnet, 445\ntripwire UDP 161\ntripwire addr 198.18.0.250\ntripwire addr 2001:db8::/64\n",
            Path::new("x.conf"),
        )
        .expect("parses");
        assert_eq!(s.tripwire.tcp, [23, 23, 445]);
        assert_eq!(s.tripwire.udp, [161]);
        assert_eq!(s.tripwire.addrs.len(), 2);
        assert!(!s.tripwire.is_empty() && Settings::default().tripwire.is_empty());
        for (text, want) in [
            ("tripwire icmp 8\n", "x.conf:1: unknown tripwire kind \"icmp\": expected tcp, udp or addr"),
            ("tripwire\n", "x.conf:1: missing tcp, udp or addr after \"tripwire\""),
            ("tripwire tcp 70000\n", "x.conf:1: invalid port \"70000\": expected 0 to 65535 or a service name"),
            (
                "tripwire addr 198.18.0.300\n",
                "x.conf:1: invalid address \"198.18.0.300\": expected an IPv4 or IPv6 address (host names are not resolved)",
            ),
        ] {
            let e = Settings::parse(text, Path::new("x.conf")).expect_err(text);
            assert_eq!(e.to_string(), want, "{text}");
        }
    }

    #[test]
    fn block_allow_blackhole_and_drop_synfin() {
        let s = Settings::parse(
            "block syn_scan 1h\nblock portscan off\nblock udp_flood 90s\nallow 198.18.5.0/24, 2001:db8:5::/48\nallow 10.1.1.1\nblackhole tcp,udp\nset drop_synfin\n",
            Path::new("x.conf"),
        )
        .expect("parses");
        assert_eq!(s.kernel.detection(Detection::SynScan).block_ns, 3_600_000_000_000);
        assert_eq!(s.kernel.detection(Detection::PortScan).block_ns, 0);
        assert_eq!(s.kernel.detection(Detection::UdpFlood).block_ns, 90_000_000_000);
        assert_eq!(s.allow.len(), 3);
        assert_eq!(s.allow[1].to_string(), "2001:db8:5::/48");
        assert!(s.blackhole_tcp && s.blackhole_udp && s.flags.drop_synfin);
        let e = Settings::parse("\nblock syn_scan soon\n", Path::new("x.conf")).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "x.conf:2: invalid block time \"soon\" for syn_scan: expected a duration such as 10m or 1h, or off"
        );
        let e = Settings::parse("blackhole icmp\n", Path::new("x.conf")).expect_err("bad");
        assert_eq!(e.to_string(), "x.conf:1: unknown blackhole protocol \"icmp\": expected tcp or udp");
    }

    #[test]
    fn block_escalate_max_within() {
        const H: u64 = 3_600_000_000_000;
        let s = Settings::parse(
            "block syn_scan 1h escalate 4x max 30d within 7d\nblock udp_scan 10m ESCALATE 1.5x\nblock ping_flood 1h\n",
            Path::new("x.conf"),
        )
        .expect("valid");
        assert_eq!(
            s.escalation[Detection::SynScan as usize],
            Some(Escalation { factor_milli: 4000, max_ns: 720 * H, within_ns: 168 * H })
        );
        // Defaults: at most 30 days, remembered as long as the longest block.
        assert_eq!(
            s.escalation[Detection::UdpScan as usize],
            Some(Escalation { factor_milli: 1500, max_ns: 720 * H, within_ns: 720 * H })
        );
        assert_eq!(s.escalation[Detection::PingFlood as usize], None);
        assert_eq!(s.kernel.detection(Detection::SynScan).block_ns, H);
        let e = s.escalation[Detection::UdpScan as usize].expect("set");
        assert_eq!([1, 2, 3].map(|n| e.block_ns(H / 6, n) / 1_000_000_000), [600, 900, 1350]);
        assert_eq!(e.block_ns(H / 6, 60), 720 * H, "capped at max");

        for (text, error) in [
            (
                "block syn_scan 1h escalate 1x",
                "invalid escalate factor \"1x\" for syn_scan: expected a factor above 1 such as 2x or 1.5x",
            ),
            (
                "block syn_scan 1h escalate fast",
                "invalid escalate factor \"fast\" for syn_scan: expected a factor above 1 such as 2x or 1.5x",
            ),
            (
                "block syn_scan 1h escalate 2.0001x",
                "invalid escalate factor \"2.0001x\" for syn_scan: expected a factor above 1 such as 2x or 1.5x",
            ),
            ("block syn_scan 1h escalate", "missing factor after \"escalate\""),
            ("block syn_scan 1h escalate 2x max", "missing duration after \"max\""),
            (
                "block syn_scan 1h escalate 2x max 30m",
                "invalid max \"30m\" for syn_scan: expected a duration such as 1d or 30d, no shorter than the block time",
            ),
            (
                "block syn_scan 1h escalate 2x within soon",
                "invalid within \"soon\" for syn_scan: expected a duration such as 1d or 30d, no shorter than the block time",
            ),
            ("block syn_scan 1h max 1d", "\"max\" for syn_scan needs \"escalate\" before it"),
            ("block syn_scan off escalate 2x", "\"escalate\" for syn_scan needs a block time, not off"),
            ("block syn_scan 1h escalate 2x escalate 3x", "too many values for \"block\": unexpected \"escalate\""),
            ("block syn_scan 1h forever", "too many values for \"block\": unexpected \"forever\""),
        ] {
            let e = Settings::parse(&format!("\n{text}\n"), Path::new("x.conf")).expect_err(text);
            assert_eq!(e.to_string(), format!("x.conf:2: {error}"), "{text}");
        }
    }
}

#[cfg(test)]
mod shipped_config_tests {
    use super::*;

    /// Every statement keyword `Settings::statement` accepts.
    const STATEMENTS: &[&str] = &[
        "set",
        "threshold",
        "packet_rate",
        "window",
        "block",
        "allow",
        "blackhole",
        "tripwire",
        "crowdsec",
        "counting",
        "interface",
        "logfile",
        "pid-file",
        "user",
        "group",
        "facility",
        "priority",
        "promisc",
        "log",
        "ignore",
    ];

    /// contrib/ipscan.conf, the packages' /etc/ipscan/ipscan.conf: as shipped it says what no
    /// file says; its `#KEYWORD ...` lines, uncommented, still do (they show the defaults); it
    /// names every keyword, switch and detection; and each `# e.g.` example parses.
    #[test]
    fn the_shipped_config_keeps_and_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/ipscan.conf");
        assert_eq!(Settings::load(&path).expect("the shipped config parses"), Settings::default());

        let text = fs::read_to_string(&path).expect("read");
        let defaults: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .collect();
        let mut uncommented = Settings::parse(&defaults.join("\n"), &path).expect("the default lines parse");
        // The daemon's own defaults, written out.
        assert_eq!(uncommented.facility.take().as_deref(), Some(crate::log::syslog::DEFAULT_FACILITY));
        assert_eq!(uncommented.priority.take().as_deref(), Some(crate::log::syslog::DEFAULT_PRIORITY));
        assert_eq!(uncommented, Settings::default(), "a `#KEYWORD` line is not the default");

        let words: Vec<Vec<&str>> = defaults.iter().map(|l| l.split_whitespace().collect()).collect();
        let has = |w: &[&str]| words.iter().any(|l| l.starts_with(w));
        for flag in Flags::KEYWORDS {
            assert!(has(&["set", flag]), "no `#set {flag} ...` line");
        }
        let detections = ipscan_common::DETECTIONS.iter().map(|d| d.names().keyword);
        for d in detections {
            for statement in ["threshold", "window", "block"] {
                assert!(has(&[statement, d]), "no `#{statement} {d} ...` line");
            }
        }
        let examples: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# e.g. ")).collect();
        for keyword in STATEMENTS {
            let mentioned = |l: &&str| l.split_whitespace().next() == Some(keyword);
            assert!(defaults.iter().any(mentioned) || examples.iter().any(mentioned), "{keyword} is not shown");
        }
        for example in examples {
            if let Err(e) = Settings::parse(example, &path) {
                panic!("example `{example}`: {e}");
            }
        }
    }
}
