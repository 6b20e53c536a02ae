//! The daemon's log as the tests read it: lines without their stamps, counted and shown, and
//! the pieces of iplog's line formats the tests build expected lines from.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
};

/// Reads an iplog-format log: checks each line's `%b %e %H:%M:%S ` stamp and strips it.
pub fn log_lines(path: &Path) -> Vec<String> {
    let Ok(f) = fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .map(|l| {
            assert!(l.len() > 16 && is_stamp(&l[..16]), "bad timestamp in log line {l:?}");
            l[16..].to_owned()
        })
        .collect()
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    MONTHS.contains(&&s[..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[7..9].iter().all(u8::is_ascii_digit)
        && b[9] == b':'
        && b[10..12].iter().all(u8::is_ascii_digit)
        && b[12] == b':'
        && b[13..15].iter().all(u8::is_ascii_digit)
        && b[15] == b' '
}

/// How many lines contain `needle`.
pub fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// Lines for an assertion message, one a line.
pub fn show(lines: &[String]) -> String {
    lines.join("\n")
}

/// A detection line's port list as iplog writes it: `[port 40000]`, `[ports 1,2,3]`, or with
/// `full` (the list was cut at its ten ports or five source ports) `[ports 1,2,...,10,...]`.
pub fn port_list(ports: &[u16], full: bool) -> String {
    let body: Vec<String> = ports.iter().map(u16::to_string).collect();
    let word = if ports.len() == 1 && !full { "port" } else { "ports" };
    format!("[{word} {}{}]", body.join(","), if full { ",..." } else { "" })
}

/// The records of a JSON log (`--json-log`) whose `event` is `event`, in order.
pub fn json_records(path: &Path, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .filter(|v: &serde_json::Value| v["event"] == event)
        .collect()
}
