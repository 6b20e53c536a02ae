//! The prefix lists `ipscan block import` reads: plain lists of addresses and prefixes, Spamhaus
//! DROP/EDROP in its text form (`1.10.16.0/20 ; SBL256894`) and its JSON lines form
//! (`{"cidr":"1.10.16.0/20","sblid":"SBL256894",...}`), and FireHOL `.netset` files.

use std::collections::HashSet;

use crate::config::IpNet;

/// A line of a list that is not an address or prefix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}:{line}: {reason}")]
pub struct ListError {
    pub source_name: String,
    pub line: usize,
    pub reason: String,
}

/// Limits of one list.
pub const MAX_PREFIXES: usize = ipscan_common::feed::V4_MAX as usize + ipscan_common::feed::V6_MAX as usize;

/// The prefixes of a list (each once, host bits cleared), or the first bad line. `source_name`
/// names the list in errors (a path, or `-` for standard input).
pub fn parse(text: &str, source_name: &str) -> Result<Vec<IpNet>, ListError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let bad = |reason: String| ListError { source_name: source_name.to_owned(), line: n + 1, reason };
        let Some(token) = token(raw).map_err(bad)? else {
            continue;
        };
        let net: IpNet = token.parse().map_err(|e| bad(format!("{e}")))?;
        if net.prefix() == 0 {
            return Err(bad(format!("{token} covers every address; a list may not block them all")));
        }
        if seen.insert(net) {
            if out.len() == MAX_PREFIXES {
                return Err(bad(format!("more than {MAX_PREFIXES} prefixes")));
            }
            out.push(net);
        }
    }
    Ok(out)
}

/// The address or prefix of a line: None for a blank or comment line.
fn token(raw: &str) -> Result<Option<&str>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return Ok(None);
    }
    if line.starts_with('{') {
        return json_token(line);
    }
    let end = line.find(|c: char| c.is_whitespace() || c == ';' || c == '#').unwrap_or(line.len());
    let (token, rest) = line.split_at(end);
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with(';') || rest.starts_with('#')) {
        return Err(format!(
            "unexpected \"{rest}\" after {token} (one address or prefix a line; comments after ; or #)"
        ));
    }
    Ok(Some(token))
}

/// The `cidr` of a Spamhaus JSON line; None for its closing metadata line.
fn json_token(line: &str) -> Result<Option<&str>, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if v.get("type").and_then(|t| t.as_str()) == Some("metadata") {
        return Ok(None);
    }
    let Some(cidr) = v.get("cidr").and_then(|c| c.as_str()) else {
        return Err("a JSON line without a \"cidr\" string".to_owned());
    };
    // Borrowed from the line: the value of `"cidr":"..."` has no escapes in it.
    let start = line.find(cidr).ok_or_else(|| "a \"cidr\" with escapes".to_owned())?;
    Ok(Some(&line[start..start + cidr.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &str) -> Vec<String> {
        parse(text, "t").expect("parses").iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn reads_plain_spamhaus_and_firehol_lists() {
        let plain = "198.18.0.1\n# a comment\n\n198.18.1.0/24\n2001:db8::/32\n198.18.1.7/24\n";
        assert_eq!(nets(plain), ["198.18.0.1/32", "198.18.1.0/24", "2001:db8::/32"]);
        let drop = "; Spamhaus DROP List 2026/12/07 - (c) 2026 The Spamhaus Project SLU\n\
                    ; Last-Modified: Mon, 07 Dec 2026 10:00:00 GMT\n\
                    1.10.16.0/20 ; SBL256894\n1.19.0.0/16 ; SBL434604\n";
        assert_eq!(nets(drop), ["1.10.16.0/20", "1.19.0.0/16"]);
        let json = "{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n\
                    {\"cidr\":\"2001:db8:1::/48\",\"sblid\":\"SBL1\",\"rir\":\"ripencc\"}\n\
                    {\"type\":\"metadata\",\"timestamp\":1733565600,\"size\":2,\"records\":2}\n";
        assert_eq!(nets(json), ["1.10.16.0/20", "2001:db8:1::/48"]);
        let netset =
            "#\n# firehol_level1\n#\n# Maintainer      : FireHOL\n0.0.0.0/8\n224.0.0.0/3\n198.18.0.5\t# inline\n";
        assert_eq!(nets(netset), ["0.0.0.0/8", "224.0.0.0/3", "198.18.0.5/32"]);
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let e = parse("198.18.0.1\n198.18.0.300\n", "feed.txt").expect_err("bad address");
        assert_eq!((e.source_name.as_str(), e.line), ("feed.txt", 2));
        assert!(e.to_string().starts_with("feed.txt:2: "), "{e}");
        let e = parse("198.18.0.1 198.18.0.2\n", "-").expect_err("two on a line");
        assert_eq!(
            e.to_string(),
            "-:1: unexpected \"198.18.0.2\" after 198.18.0.1 (one address or prefix a line; comments after ; or #)"
        );
        let e = parse("\n\n0.0.0.0/0\n", "x").expect_err("everything");
        assert_eq!(e.line, 3);
        assert!(parse("{\"sblid\":\"SBL1\"}\n", "j").expect_err("no cidr").reason.contains("cidr"));
        assert!(parse("{nope\n", "j").is_err());
        assert!(parse("198.18.0.0/33\n", "j").is_err());
    }
}
