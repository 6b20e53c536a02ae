//! JSON-lines event output: one JSON object a line, the shape Wazuh's built-in JSON decoder reads
//! (`<log_format>json</log_format>`, rules in `contrib/ossec/ipscan_json_rules.xml`) and any log shipper
//! takes without a custom parser.
//!
//! The text lines stay iplog-compatible for existing decoders; this output exists because those lines
//! lose information on the way through a syslog pre-decoder (file mode hands the first word to the
//! hostname, port lists are truncated at 10 and 5, totals have no OSSEC field). Every record carries the
//! exact iplog line in `message`, so nothing is lost going the other way either.
//!
//! ```json
//! {"timestamp":"2026-11-14T18:09:08.000+01:00","program":"ipscan","event":"detected",
//!  "detection":"SYN scan","srcip":"10.10.150.1","dports":[21,1],"sports":[40000],
//!  "message":"TCP: SYN scan detected [ports 21,1] from 10.10.150.1 [port 40000]"}
//! ```
//! (one line in the output). `srcip` keeps Wazuh's field name on purpose: active-response scripts
//! read `data.srcip`.

use std::net::IpAddr;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::{Serialize, Serializer};

use crate::log::format::{self, Detected};

/// The `program` of every record, matched by the JSON rules (`<field name="program">^ipscan$</field>`).
pub const PROGRAM: &str = "ipscan";

/// `detection` values of the immediate (per-packet) findings, lowercase like the other names.
pub mod packet {
    pub const BOGUS_TCP_FLAGS: &str = "bogus TCP flags";
    pub const TRACEROUTE: &str = "traceroute";
    pub const OVERSIZED_FRAGMENT: &str = "oversized IP fragment";
    pub const OVERLAPPING_FRAGMENTS: &str = "overlapping IP fragments";
    pub const DUPLICATE_FRAGMENTS: &str = "duplicate IP fragments";
}

/// What happened. Serialized in snake_case (`"not_blocked"`) so rules can anchor on whole words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A threshold was crossed: a mode began.
    Detected,
    /// A mode's window lapsed; `packets` and `bytes` hold its totals.
    Expired,
    /// The source went on the XDP block list.
    Blocked,
    /// The source came off the block list; `packets` and `bytes` count what was dropped.
    Unblocked,
    /// A block was wanted but refused (allowlisted source).
    NotBlocked,
    /// `dry_run`: the source would have gone on the block list; nothing is dropped.
    WouldBlock,
    /// `dry_run`: the source's would-be block ended; `packets` and `bytes` count what it would
    /// have dropped.
    WouldUnblock,
    /// A single packet worth a line (bogus flags, traceroute, fragment anomalies, connection attempts).
    Packet,
}

/// One log record. Field order is output order; optional fields are left out when empty rather than
/// written as `null`, so that a rule on a field never sees a placeholder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonRecord {
    /// Wall time of the record, written as RFC 3339 with milliseconds and the local offset.
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: DateTime<FixedOffset>,
    /// Always [`PROGRAM`]; a field rather than a constant in the output so that mixed streams can be told apart.
    pub program: &'static str,
    pub event: Event,
    /// The detection as iplog names it (`"SYN scan"`, `"scan/flood"`, `"ping flood"`, `"smurf attack"`) or a
    /// [`packet`] name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<String>,
    /// The source; none for a detection kept per target (a distributed flood, whose sources are
    /// many and forged: nothing to block), whose target is `dstip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srcip: Option<IpAddr>,
    /// The destination, when known (iplog prints it only with `log_dest`; JSON carries it whenever it is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstip: Option<IpAddr>,
    /// Destination ports seen, in order of arrival; not capped at the 10 that the text line shows.
    pub dports: Vec<u16>,
    /// Source ports seen; not capped at the text line's 5.
    pub sports: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// A block's length in seconds (`blocked`, `would_block`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_secs: Option<u64>,
    /// Which offence of the source a block is, under `block ... escalate` (1: the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offence: Option<u32>,
    /// Distributed floods: about how many distinct sources were counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<u64>,
    /// Distributed floods: packets a second in the rate window that crossed the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// Distributed scans: whether each source probed each port (a decoy scan, nmap -D).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoy: Option<bool>,
    /// Distributed scans: the first sources (up to five), in the order seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub srchosts: Vec<IpAddr>,
    /// Sweeps: how many distinct destination hosts were counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u32>,
    /// Sweeps: the first of those hosts (up to 8), in the order they were probed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dsthosts: Vec<IpAddr>,
    /// The protocol of a detection kept per protocol (rejected probes, distributed floods and
    /// scans): `TCP`, `UDP` or `ICMP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<&'static str>,
    /// The iplog-format line, exactly as the text output writes it after its timestamp.
    pub message: String,
}

fn rfc3339<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, false))
}

impl JsonRecord {
    /// A record with no detection, destination, ports or totals; set those with struct update syntax:
    /// `JsonRecord { packets: Some(n), ..JsonRecord::new(t, Event::Expired, src, line) }`.
    pub fn new(
        timestamp: DateTime<FixedOffset>,
        event: Event,
        srcip: impl Into<Option<IpAddr>>,
        message: String,
    ) -> Self {
        Self {
            timestamp,
            program: PROGRAM,
            event,
            detection: None,
            srcip: srcip.into(),
            dstip: None,
            dports: Vec::new(),
            sports: Vec::new(),
            packets: None,
            bytes: None,
            block_secs: None,
            offence: None,
            sources: None,
            rate: None,
            decoy: None,
            srchosts: Vec::new(),
            hosts: None,
            dsthosts: Vec::new(),
            proto: None,
            message,
        }
    }

    /// The record of a detection line; `message` is [`format::detected`] of the same data, so the two
    /// outputs cannot drift apart.
    pub fn from_detected(
        timestamp: DateTime<FixedOffset>,
        d: &Detected<'_>,
        srcip: IpAddr,
        dstip: Option<IpAddr>,
    ) -> Self {
        Self {
            detection: Some(d.detection.names().log_name.to_owned()),
            dstip,
            dports: d.dports.to_vec(),
            sports: d.sports.to_vec(),
            hosts: d.hosts.map(|(n, _)| n),
            dsthosts: d.hosts.map(|(_, h)| h.to_vec()).unwrap_or_default(),
            ..Self::new(timestamp, Event::Detected, srcip, format::detected(d))
        }
    }
}

/// One JSON object, without the trailing newline (the sink adds it, as for text lines). serde_json
/// escapes control characters, so the result is always a single line.
pub fn to_line(r: &JsonRecord) -> String {
    match serde_json::to_string(r) {
        Ok(line) => line,
        // Not reachable for this struct (no maps, and the only custom serializer cannot fail), but a log
        // write must not take the daemon down: say what failed, still as one valid JSON line.
        Err(e) => serde_json::json!({
            "program": PROGRAM,
            "event": "error",
            "message": format!("cannot serialize record: {e}"),
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use ipscan_common::Detection;

    fn t() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(3600)
            .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 14, 18, 9, 8).single())
            .expect("valid time")
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 150, 1));

    #[test]
    fn json_seed_syn_scan_exact_line() {
        let d = Detected {
            detection: Detection::SynScan,
            source: "10.10.150.1",
            dest: None,
            dports: &[21, 1],
            dports_full: false,
            sports: &[40000],
            sports_full: false,
            hosts: None,
        };
        assert_eq!(
            to_line(&JsonRecord::from_detected(t(), &d, V4, None)),
            r#"{"timestamp":"2026-11-14T18:09:08.000+01:00","program":"ipscan","event":"detected","detection":"SYN scan","srcip":"10.10.150.1","dports":[21,1],"sports":[40000],"message":"TCP: SYN scan detected [ports 21,1] from 10.10.150.1 [port 40000]"}"#
        );
    }

    #[test]
    fn json_ipv6_log_dest_and_uncapped_ports() {
        let src: IpAddr = "2001:db8::1".parse().expect("v6");
        let dst: IpAddr = "2001:db8::2".parse().expect("v6");
        let dports: Vec<u16> = (1..=12).collect();
        let d = Detected {
            detection: Detection::PortScan,
            source: "2001:db8::1",
            dest: Some("2001:db8::2"),
            dports: &dports,
            dports_full: true,
            sports: &[40000],
            sports_full: false,
            hosts: None,
        };
        let line = to_line(&JsonRecord::from_detected(t(), &d, src, Some(dst)));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["srcip"], "2001:db8::1");
        assert_eq!(v["dstip"], "2001:db8::2");
        assert_eq!(v["detection"], "port scan");
        // The text line stops at 10 ports; the JSON keeps all 12.
        assert_eq!(v["dports"].as_array().map(Vec::len), Some(12));
        assert_eq!(
            v["message"],
            "TCP: port scan detected to 2001:db8::2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 2001:db8::1 [port 40000]"
        );
    }

    #[test]
    fn json_expired_carries_totals_and_omits_empty_fields() {
        let message = format::expired(Detection::PortScan, "10.10.150.1", None, 1678, 47092);
        let r = JsonRecord {
            detection: Some(Detection::PortScan.names().log_name.to_owned()),
            packets: Some(1678),
            bytes: Some(47092),
            ..JsonRecord::new(t(), Event::Expired, V4, message)
        };
        assert_eq!(
            to_line(&r),
            r#"{"timestamp":"2026-11-14T18:09:08.000+01:00","program":"ipscan","event":"expired","detection":"port scan","srcip":"10.10.150.1","dports":[],"sports":[],"packets":1678,"bytes":47092,"message":"TCP: port scan mode expired for 10.10.150.1 - received a total of 1678 packets (47092 bytes)."}"#
        );
    }

    #[test]
    fn json_event_names_are_snake_case() {
        let names: Vec<String> = [
            Event::Detected,
            Event::Expired,
            Event::Blocked,
            Event::Unblocked,
            Event::NotBlocked,
            Event::WouldBlock,
            Event::WouldUnblock,
            Event::Packet,
        ]
        .iter()
        .map(|e| serde_json::to_string(e).expect("serializes"))
        .collect();
        assert_eq!(
            names,
            [
                r#""detected""#,
                r#""expired""#,
                r#""blocked""#,
                r#""unblocked""#,
                r#""not_blocked""#,
                r#""would_block""#,
                r#""would_unblock""#,
                r#""packet""#
            ]
        );
    }

    #[test]
    fn json_packet_and_block_records() {
        let src: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let bogus = JsonRecord {
            detection: Some(packet::BOGUS_TCP_FLAGS.to_owned()),
            sports: vec![60873],
            dports: vec![25],
            ..JsonRecord::new(
                t(),
                Event::Packet,
                src,
                "TCP: Bogus TCP flags set by [2001:db8::1]:60873 (dest port 25)".to_owned(),
            )
        };
        let v: serde_json::Value = serde_json::from_str(&to_line(&bogus)).expect("valid JSON");
        assert_eq!(v["event"], "packet");
        assert_eq!(v["detection"], "bogus TCP flags");
        assert_eq!(v["sports"], serde_json::json!([60873]));
        assert!(v.get("packets").is_none() && v.get("dstip").is_none());

        let not_blocked = JsonRecord {
            detection: Some("SYN scan".to_owned()),
            ..JsonRecord::new(t(), Event::NotBlocked, V4, "Not blocked 10.10.150.1: allowlisted (SYN scan)".to_owned())
        };
        let v: serde_json::Value = serde_json::from_str(&to_line(&not_blocked)).expect("valid JSON");
        assert_eq!(v["event"], "not_blocked");
        assert_eq!(v["program"], "ipscan");
    }

    #[test]
    fn json_line_is_one_line_whatever_the_message() {
        let r = JsonRecord::new(t(), Event::Packet, V4, "a \"quoted\"\nsecond line\t\u{1}".to_owned());
        let line = to_line(&r);
        assert!(!line.contains('\n') && !line.contains('\t'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["message"], "a \"quoted\"\nsecond line\t\u{1}");
    }

    #[test]
    fn json_utc_offset_is_explicit() {
        let utc = FixedOffset::east_opt(0)
            .and_then(|tz| tz.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single())
            .expect("valid time");
        let line = to_line(&JsonRecord::new(utc, Event::Blocked, V4, String::new()));
        assert!(line.starts_with(r#"{"timestamp":"2026-01-02T03:04:05.000+00:00","#), "{line}");
    }
}
