//! `config`: `ipscan::config::Settings::parse` on arbitrary UTF-8 text.
//!
//! - Never panics.
//! - Every error displays as exactly one line, `FILE:LINE: problem`, with LINE a line of the
//!   text, and it is the first bad line: the lines before it parse (or only fail because a
//!   comment opened there is closed later).
//! - What parses gives the kernel sane values (thresholds >= 1, windows > 0) and converts to
//!   the kernel's form or fails only for too many rules.
//!
//! Seeds: `fuzz/seeds/config/` (the iplog.conf lines of the OSSEC/iplog seed document, the test
//! suite's configs), copied to `fuzz/corpus/config/` by `cargo xtask fuzz`.

#![no_main]

use std::path::Path;

use ipscan::{
    config::kernel::{KconfigError, KernelSettings},
    config::{ConfigError, Problem, Settings},
};
use ipscan_common::{DETECTIONS, config::detection_flags};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.conf";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Settings::parse(text, Path::new(FILE));
    assert_eq!(parsed.is_ok(), Settings::parse(text, Path::new(FILE)).is_ok(), "deterministic");
    match parsed {
        Err(e) => check_error(text, &e),
        Ok(s) => check_settings(&s),
    }
});

fn check_error(text: &str, e: &ConfigError) {
    let shown = e.to_string();
    assert!(
        !shown.contains(['\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}']),
        "error is not one line: {shown:?}"
    );
    let rest = shown
        .strip_prefix(FILE)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or_else(|| panic!("error does not start with {FILE}: {shown:?}"));
    let (line, problem) = rest.split_once(": ").unwrap_or_else(|| panic!("no ': ' after the line: {shown:?}"));
    let line: usize = line.parse().unwrap_or_else(|_| panic!("LINE is not a number: {shown:?}"));
    assert!(!problem.is_empty(), "empty problem: {shown:?}");
    let lines = text.lines().count();
    assert!((1..=lines).contains(&line), "line {line} of a {lines}-line text: {shown:?}");
    let ConfigError::Parse { line: l, problem: pr, .. } = e else {
        panic!("parse gave a non-parse error: {shown:?}");
    };
    assert_eq!(*l, line);
    if *pr != Problem::UnterminatedComment {
        // The lines before the bad one are good (a comment opened there may close only later).
        let before: String = text.split_inclusive('\n').take(line - 1).collect();
        if let Err(ConfigError::Parse { problem, line: early, .. }) = Settings::parse(&before, Path::new(FILE)) {
            assert_eq!(problem, Problem::UnterminatedComment, "line {early} was bad before line {line}: {shown:?}");
        }
    }
}

fn check_settings(s: &Settings) {
    for d in DETECTIONS {
        let dc = s.kernel.detection(d);
        assert!(dc.threshold >= 1, "{d:?} threshold 0");
        if dc.flags & detection_flags::ENABLED != 0 {
            assert!(dc.window_ns > 0, "{d:?} window 0");
        }
    }
    assert!(s.kernel.packet_events_per_sec >= 1);
    for r in &s.rules {
        for p in r.sport.iter().chain(r.dport.iter()) {
            assert!(p.first <= p.last, "reversed port range {p:?}");
        }
    }
    match KernelSettings::from_settings(s, &[]) {
        Ok(k) => assert_eq!(k.rules.len(), s.rules.len()),
        Err(KconfigError::TooManyRules { count, max } | KconfigError::TooManyPromisc { count, max }) => {
            assert!(count > max)
        }
        Err(e) => panic!("kernel settings from parsed settings: {e}"),
    }
}
