//! `crowdsec ...` statements (an ipscan extension): the CrowdSec Local API (LAPI) as a source
//! of blocks (`crowdsec bouncer`) and as the place detections go to (`crowdsec machine`).
//!
//! ```text
//! crowdsec bouncer http://127.0.0.1:8080/ /etc/ipscan/crowdsec-bouncer.key
//! crowdsec machine http://127.0.0.1:8080/ ipscan-web1 /etc/ipscan/crowdsec-machine.password
//! crowdsec poll 10s
//! crowdsec ca_cert /etc/ipscan/crowdsec-ca.pem
//! crowdsec push portscan,syn_scan,fin_scan,null_scan,xmas_scan,udp_scan
//! ```
//!
//! Secrets are named by file, so the configuration itself may be world-readable; the files are
//! read when the daemon starts.

use std::path::PathBuf;

use ipscan_common::{DETECTIONS, Detection};

use super::{Problem, parse_duration_ns, unexpected};

/// What `crowdsec` statements configure; `Default` is "not used".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrowdSec {
    /// `crowdsec bouncer URL KEY_FILE`: pull the LAPI's decisions into the blocklist.
    pub bouncer: Option<Bouncer>,
    /// `crowdsec machine URL LOGIN PASSWORD_FILE`: push detections as alerts.
    pub machine: Option<Machine>,
    /// `crowdsec poll DURATION`: how often the decision stream is read.
    pub poll_ns: u64,
    /// `crowdsec push DETECTION[,...]|none`: which detections become alerts.
    pub push: Vec<Detection>,
    /// `crowdsec ca_cert FILE`: trust an `https://` LAPI's certificate when this CA (PEM)
    /// signed it, instead of the Mozilla roots.
    pub ca_cert: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bouncer {
    pub url: String,
    pub key_file: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub url: String,
    pub login: String,
    pub password_file: PathBuf,
}

impl CrowdSec {
    /// 10 s, as CrowdSec's own firewall bouncer.
    pub const DEFAULT_POLL_NS: u64 = 10_000_000_000;
    /// The scans (the detections that count ports): their sources complete no handshake, but
    /// are not the forged ones of the floods, nor the victims that smurf reflectors are. The
    /// same set as the OSSEC rule to block on (100201).
    pub fn default_push() -> Vec<Detection> {
        DETECTIONS.iter().copied().filter(|d| d.counts_ports() && !d.per_target()).collect()
    }

    pub fn pushes(&self, d: Detection) -> bool {
        self.push.contains(&d)
    }

    /// One `crowdsec ...` statement.
    pub(super) fn statement(&mut self, tokens: &[&str]) -> Result<(), Problem> {
        let missing = |what| Problem::MissingValue { keyword: tokens[..tokens.len().min(2)].join(" "), what };
        let what = tokens.get(1).ok_or(Problem::MissingValue {
            keyword: tokens[0].to_owned(),
            what: "bouncer, machine, poll, push or ca_cert",
        })?;
        let arity = match what.to_ascii_lowercase().as_str() {
            "bouncer" => 4,
            "machine" => 5,
            "poll" | "push" | "ca_cert" => 3,
            _ => return Err(Problem::InvalidCrowdSec { value: (*what).to_owned() }),
        };
        if let Some(extra) = tokens.get(arity) {
            return Err(unexpected(extra, tokens[0]));
        }
        let arg = |i: usize, what| tokens.get(i).copied().ok_or_else(|| missing(what));
        match what.to_ascii_lowercase().as_str() {
            "bouncer" => {
                let url = lapi_url(arg(2, "LAPI URL")?)?;
                let key_file = PathBuf::from(arg(3, "bouncer key file")?);
                self.bouncer = Some(Bouncer { url, key_file });
            }
            "machine" => {
                let url = lapi_url(arg(2, "LAPI URL")?)?;
                let login = arg(3, "machine login")?.to_owned();
                let password_file = PathBuf::from(arg(4, "machine password file")?);
                self.machine = Some(Machine { url, login, password_file });
            }
            "ca_cert" => self.ca_cert = Some(PathBuf::from(arg(2, "CA certificate file")?)),
            "poll" => {
                let value = arg(2, "duration")?;
                self.poll_ns = parse_duration_ns(value)
                    .filter(|ns| *ns >= 1_000_000_000)
                    .ok_or_else(|| Problem::InvalidCrowdSecPoll { value: value.to_owned() })?;
            }
            _ => {
                let value = arg(2, "detection list")?;
                self.push = if value.eq_ignore_ascii_case("none") {
                    Vec::new()
                } else {
                    value
                        .split(',')
                        .map(|name| {
                            let d = Detection::by_keyword(&name.to_ascii_lowercase())
                                .ok_or_else(|| Problem::UnknownDetection { name: name.to_owned() })?;
                            // An alert names a source to act on; a distributed flood has none.
                            if d.per_target() {
                                return Err(Problem::NoSourceToBlock { detection: d.names().keyword });
                            }
                            Ok(d)
                        })
                        .collect::<Result<_, _>>()?
                };
            }
        }
        Ok(())
    }
}

impl Default for CrowdSec {
    fn default() -> Self {
        Self { bouncer: None, machine: None, poll_ns: Self::DEFAULT_POLL_NS, push: Self::default_push(), ca_cert: None }
    }
}

/// `http://HOST:PORT/` or `https://...`, kept with one trailing slash.
fn lapi_url(value: &str) -> Result<String, Problem> {
    let lower = value.to_ascii_lowercase();
    let rest = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !value.contains(char::is_whitespace) => {
            Ok(format!("{}/", value.trim_end_matches('/')))
        }
        _ => Err(Problem::InvalidCrowdSecUrl { value: value.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Settings;

    #[test]
    fn statements() {
        let s = Settings::parse(
            "crowdsec bouncer http://127.0.0.1:8080 /etc/ipscan/b.key\n\
             crowdsec machine https://lapi.example:8080/ web1 /etc/ipscan/m.pw\n\
             crowdsec poll 2s\ncrowdsec push syn_scan,UDP_SCAN\ncrowdsec ca_cert /etc/ipscan/ca.pem\n",
            Path::new("x.conf"),
        )
        .expect("valid");
        let c = &s.crowdsec;
        assert_eq!(
            c.bouncer,
            Some(Bouncer { url: "http://127.0.0.1:8080/".into(), key_file: "/etc/ipscan/b.key".into() })
        );
        assert_eq!(
            c.machine,
            Some(Machine {
                url: "https://lapi.example:8080/".into(),
                login: "web1".into(),
                password_file: "/etc/ipscan/m.pw".into()
            })
        );
        assert_eq!(c.poll_ns, 2_000_000_000);
        assert_eq!(c.push, [Detection::SynScan, Detection::UdpScan]);
        assert_eq!(c.ca_cert.as_deref(), Some(Path::new("/etc/ipscan/ca.pem")));
        let d = Settings::parse("", Path::new("x.conf")).expect("empty").crowdsec;
        assert_eq!((&d.bouncer, &d.machine, d.poll_ns), (&None, &None, 10_000_000_000));
        assert!(d.pushes(Detection::XmasScan) && !d.pushes(Detection::PingFlood) && !d.pushes(Detection::Smurf));
        let none = Settings::parse("crowdsec push none\n", Path::new("x.conf")).expect("none").crowdsec;
        assert!(none.push.is_empty());

        for (text, error) in [
            ("crowdsec", "missing bouncer, machine, poll, push or ca_cert after \"crowdsec\""),
            (
                "crowdsec bouncers http://x/ k",
                "unknown crowdsec statement \"bouncers\": expected bouncer, machine, poll, push or ca_cert",
            ),
            ("crowdsec bouncer http://127.0.0.1:8080/", "missing bouncer key file after \"crowdsec bouncer\""),
            (
                "crowdsec bouncer 127.0.0.1:8080 /k",
                "invalid LAPI URL \"127.0.0.1:8080\": expected http://HOST:PORT/ or https://HOST:PORT/",
            ),
            ("crowdsec bouncer http://x/ /k more", "too many values for \"crowdsec\": unexpected \"more\""),
            ("crowdsec machine http://x/ web1", "missing machine password file after \"crowdsec machine\""),
            ("crowdsec poll 500ms", "invalid crowdsec poll \"500ms\": expected a duration of at least 1s"),
            (
                "crowdsec push syn_scan,distributed_flood",
                "distributed_flood cannot block: it has no one source to block (smurf: the reflectors; \
                 distributed_flood, distributed_scan: forged sources)",
            ),
            (
                "crowdsec push syn_scan,ssh",
                "unknown detection \"ssh\": expected one of portscan, syn_scan, fin_scan, null_scan, \
                 xmas_scan, udp_scan, ping_flood, smurf, udp_flood, tripwire, tcp_sweep, udp_sweep, \
                 ping_sweep, distributed_flood, distributed_scan, rejected",
            ),
        ] {
            let e = Settings::parse(&format!("{text}\n"), Path::new("x.conf")).expect_err(text);
            assert_eq!(e.to_string(), format!("x.conf:1: {error}"), "{text}");
        }
    }
}
