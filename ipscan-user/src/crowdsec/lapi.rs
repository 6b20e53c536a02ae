//! The CrowdSec Local API over HTTP(S): the decision stream a bouncer reads (API key), and the
//! login and alerts of a machine (login and password, then a JWT). Blocking calls, made from the
//! bouncer's and the machine's own threads.

use std::{path::Path, sync::Arc, time::Duration};

use rustls_pki_types::{CertificateDer, pem::PemObject as _};

use serde::{Deserialize, Serialize};

/// Calls that take longer than this fail; the next poll tries again.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LapiError {
    #[error("{url}: {status} {text}")]
    Status { url: String, status: u16, text: String },
    /// ureq's text names the URL.
    #[error("{source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Transport>,
    },
    #[error("{url}: unexpected answer: {source}")]
    Body {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

impl LapiError {
    /// The LAPI refused the credentials (or a token that expired).
    pub fn unauthorized(&self) -> bool {
        matches!(self, Self::Status { status: 401 | 403, .. })
    }
}

/// One LAPI.
#[derive(Clone)]
pub struct Lapi {
    agent: ureq::Agent,
    /// `http://HOST:PORT/`, with its slash.
    url: String,
}

/// A decision as the stream gives it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Decision {
    pub id: i64,
    /// Go's duration: time left (`3h59m58.5s`), negative once it has ended.
    pub duration: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub scenario: String,
    /// `Ip`, `Range`, or others (`Country`, `AS`) that a blocklist cannot hold.
    pub scope: String,
    /// `ban`, or remediations other than a drop (`captcha`).
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// One answer of `/v1/decisions/stream` (empty lists come as `null`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Stream {
    #[serde(default, deserialize_with = "null_is_empty")]
    pub new: Vec<Decision>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub deleted: Vec<Decision>,
}

fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Decision>, D::Error> {
    Ok(Option::<Vec<Decision>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// An alert as `POST /v1/alerts` takes it (every field is required by the LAPI).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Alert {
    pub scenario: String,
    pub scenario_hash: String,
    pub scenario_version: String,
    pub message: String,
    pub events_count: u64,
    pub start_at: String,
    pub stop_at: String,
    pub capacity: u64,
    pub leakspeed: String,
    pub simulated: bool,
    /// Asks the LAPI's profiles for a decision (the default profile bans for 4 h).
    pub remediation: bool,
    pub events: Vec<Event>,
    pub source: Source,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Event {
    pub timestamp: String,
    pub meta: Vec<Meta>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Meta {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Source {
    pub scope: String,
    pub value: String,
    pub ip: String,
}

/// TLS that trusts the certificates of one CA file (PEM) instead of the Mozilla roots.
pub fn tls_trusting(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("no CA certificate in it".into());
    }
    // The crypto provider is ring's, the one rustls is built with here (as ureq's own).
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(config))
}

impl Lapi {
    /// `tls`: from [`tls_trusting`]; None: the Mozilla roots.
    pub fn new(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        let mut builder =
            ureq::AgentBuilder::new().timeout(TIMEOUT).user_agent(concat!("ipscan/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls {
            builder = builder.tls_config(tls);
        }
        Self { agent: builder.build(), url: url.to_owned() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /v1/decisions/stream`: every decision in force with `startup`, else what changed
    /// since this key's last call.
    pub fn stream(&self, key: &str, startup: bool) -> Result<Stream, LapiError> {
        let url = format!("{}v1/decisions/stream?startup={startup}", self.url);
        let answer = self.agent.get(&url).set("X-Api-Key", key).call();
        read(&url, answer)
    }

    /// `POST /v1/watchers/login`: a token for [`Lapi::alerts`].
    pub fn login(&self, login: &str, password: &str, scenarios: &[String]) -> Result<String, LapiError> {
        let url = format!("{}v1/watchers/login", self.url);
        let body = serde_json::json!({ "machine_id": login, "password": password, "scenarios": scenarios });
        let answer = self.agent.post(&url).send_json(body);
        read::<Login>(&url, answer).map(|l| l.token)
    }

    /// `POST /v1/alerts`.
    pub fn alerts(&self, token: &str, alerts: &[Alert]) -> Result<(), LapiError> {
        let url = format!("{}v1/alerts", self.url);
        let answer = self.agent.post(&url).set("Authorization", &format!("Bearer {token}")).send_json(alerts);
        read::<serde_json::Value>(&url, answer).map(|_| ())
    }
}

fn read<T: serde::de::DeserializeOwned>(
    url: &str,
    answer: Result<ureq::Response, ureq::Error>,
) -> Result<T, LapiError> {
    match answer {
        Ok(r) => r.into_json().map_err(|source| LapiError::Body { url: url.to_owned(), source }),
        Err(ureq::Error::Status(status, r)) => {
            let text = r.into_string().unwrap_or_default();
            let text = text.trim().chars().take(200).collect();
            Err(LapiError::Status { url: url.to_owned(), status, text })
        }
        Err(ureq::Error::Transport(t)) => Err(LapiError::Transport { url: url.to_owned(), source: Box::new(t) }),
    }
}

/// Go's `time.Duration` text (`1h2m3.5s`, `-13.2ms`, `750µs`) in nanoseconds; None if malformed.
pub fn go_duration_ns(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" | "μs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    let ns = total.min(i64::MAX as f64) as i64;
    Some(if negative { -ns } else { ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_ns("3h59m58.515900432s"), Some(14_398_515_900_432));
        assert_eq!(go_duration_ns("29m59.067999922s"), Some(1_799_067_999_922));
        assert_eq!(go_duration_ns("-13.246747ms"), Some(-13_246_747));
        assert_eq!(go_duration_ns("-11.454721985s"), Some(-11_454_721_985));
        assert_eq!(go_duration_ns("750µs"), Some(750_000));
        assert_eq!(go_duration_ns("0"), Some(0));
        assert_eq!(go_duration_ns("720h0m0s"), Some(720 * 3_600_000_000_000));
        for bad in ["", "-", "5", "5d", "h", "1h5", "1.2.3s"] {
            assert_eq!(go_duration_ns(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stream_answers() {
        // As Debian's crowdsec 1.4.6 answers (empty lists are null).
        let s: Stream = serde_json::from_str(r#"{"deleted":null,"new":null}"#).expect("empty");
        assert_eq!(s, Stream::default());
        let s: Stream = serde_json::from_str(
            r#"{"deleted":[{"duration":"-13.246747ms","id":1,"origin":"cscli","scenario":"manual 'ban' from 'cli'","scope":"Ip","type":"ban","value":"198.18.0.7"}],"new":[{"duration":"29m58.944907679s","id":2,"origin":"cscli","scenario":"manual 'ban' from 'cli'","scope":"Range","type":"ban","value":"198.18.5.0/24"}]}"#,
        )
        .expect("decisions");
        assert_eq!((s.deleted[0].id, s.deleted[0].value.as_str()), (1, "198.18.0.7"));
        assert_eq!(
            (s.new[0].scope.as_str(), s.new[0].kind.as_str(), s.new[0].value.as_str()),
            ("Range", "ban", "198.18.5.0/24")
        );
    }
}
