//! contrib/ossec, checked without OSSEC or Wazuh installed (neither is packaged for Debian):
//!
//! - Every ipscan line form (IPv4 and IPv6, with and without `log_dest`, built by ipscan's own formatters
//!   as well as written out) goes through a model of the analysis daemon's pipeline: the syslog
//!   pre-decoder (the "Mmm dd hh:mm:ss" branch of OS_CleanMSG, which splits off hostname and program
//!   name), decoder selection as DecodeEvent does it (parents by program name, then prematch; the first
//!   child whose prematch matches; its regex fills `<order>`, and a regex that does not match leaves the
//!   event decoded with no fields), and rule evaluation (decoded_as, if_sid, match, regex, field). Each line
//!   must decode to exactly its srcip/dstip/srcport/dstport/extra_data and land on exactly one most-specific
//!   rule, the intended one, at its level. A distributed flood's lines name only their target: they decode
//!   to dstip and never to srcip, so that no active response can act on them, and their JSON records carry
//!   no srcip either (`ossec_distributed_floods_never_decode_a_srcip`); so do a distributed or decoy scan's,
//!   whose listed sources are decoys or many, and which never reach 100201, the rule to block on
//!   (`ossec_distributed_scans_never_decode_a_srcip`). Rejected probes, a port scan of closed ports, decode to
//!   their source and reach 100216, which is blocked on with 100201 and 100213, also as the daemon writes them
//!   (`ossec_rejected_probes_through_the_daemon`).
//! - The model was checked against a real OSSEC 4.2 `ossec-logtest` (built from its source, with these
//!   files installed as contrib/ossec/README.md says): every form of `ossec_every_form_ipscan_writes`,
//!   `GOLDEN` and `QUIET` in the four shapes of `shapes`, before and after the log_dest and fragment fixes,
//!   gave the same rule, level and fields in both.
//! - OSSEC regexes (os_regex syntax, not PCRE) are translated to the `regex` crate. Only the subset the files
//!   use is accepted; anything else fails the test rather than being guessed at. Each pattern runs three
//!   ways that must agree on every line: as OSSEC 3.3 and later run it (converted to one PCRE2 expression,
//!   alternatives competing for the leftmost match, repeats lazy but the last), and as Wazuh's os_regex
//!   matcher tries it (alternatives in order, `+` lazy with a little backtracking) both greedy and lazy. A
//!   pattern where they differ is one whose result depends on the engine.
//! - The active-response script runs under /bin/sh with a fake `ipscan` that records its arguments,
//!   through the OSSEC argument protocol, Wazuh 4.2+'s JSON protocol with its check_keys handshake, and
//!   Wazuh 5's enable/disable messages.
//!
//! Run: `cargo test -p ipscan-tests --test ossec` (no root needed).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

use chrono::{FixedOffset, TimeZone};
use ipscan::log::json::{self, Event, JsonRecord};
use regex::Regex;

fn contrib(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/ossec").join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(contrib(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// os_regex (OSRegex) and os_match (OSMatch), as far as the files use them
// ---------------------------------------------------------------------------------------------

/// One OSRegex: `|`-separated alternatives, which two engines read differently.
///
/// - OSSEC 3.3 and later (os_regex/os_converter.c, OSRegex_ConvertRegex) convert the whole pattern to one
///   PCRE2 expression: the alternatives compete at each position of the log (leftmost match first, then the
///   first alternative), the captures of the alternative that matched are numbered from 0 (unset groups
///   are skipped, OSRegex_Execute_pcre2_match), and every repeat is lazy except one that ends its
///   alternative ([`Repeat::Ossec`]).
/// - Wazuh, and OSSEC before 3.3, keep os_regex's own matcher (OSRegex_Execute): the alternatives are tried
///   in order over the whole log and the first that matches wins; `+` is lazy with a little backtracking.
///
/// `exec` runs the exact OSSEC form and the in-order form both greedy and lazy, and all three must agree on
/// every line: a pattern where they differ is one whose result depends on the engine.
struct OsRegex {
    source: String,
    greedy: Vec<Regex>,
    lazy: Vec<Regex>,
    ossec: Regex,
}

/// How a translated pattern repeats its classes (`\S+`, `\d*`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Repeat {
    Greedy,
    Lazy,
    /// OSSEC 3.3+: the converter makes every repeat lazy (`+?`), then takes the `?` back from a repeat that
    /// is followed only by `)`s and then `|` or the end of the pattern (OSREGEX_TO_PCRE2_FIX). A `$` anchor
    /// is converted to `(?!\n)$` before that, so a repeat before `$` stays lazy.
    Ossec,
}

/// os_regex's `\w`: letters, digits, '-', '@' and '_'.
const WORD: &str = "[A-Za-z0-9@_-]";
/// os_regex's `\p`: punctuation.
const PUNCT: &str = r#"[()*+,\-.:;<=>?\[\]!"'#$%&|{}]"#;

impl OsRegex {
    fn new(pattern: &str) -> Self {
        let alts = split_alternatives(pattern);
        let compile = |body: String| Regex::new(&format!("(?i){body}")).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        let each = |repeat| -> Vec<Regex> {
            alts.iter()
                .map(|alt| compile(translate(alt, repeat).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))))
                .collect()
        };
        let whole: Vec<String> = alts
            .iter()
            .map(|alt| translate(alt, Repeat::Ossec).unwrap_or_else(|e| panic!("{pattern:?}: {e}")))
            .collect();
        Self {
            source: pattern.to_owned(),
            greedy: each(Repeat::Greedy),
            lazy: each(Repeat::Lazy),
            ossec: compile(whole.join("|")),
        }
    }

    /// The substrings of the alternative that matched, or None; the engines must agree.
    fn exec(&self, s: &str) -> Option<Vec<String>> {
        let [g, l, o] = self.results(s);
        assert_eq!(g, l, "pattern {:?} is ambiguous on {s:?}: greedy and lazy matching disagree", self.source);
        assert_eq!(g, o, "pattern {:?} on {s:?}: OSSEC 3.3+'s PCRE2 form and os_regex's disagree", self.source);
        g
    }

    /// In order greedy, in order lazy, OSSEC 3.3+.
    fn results(&self, s: &str) -> [Option<Vec<String>>; 3] {
        let in_order = |res: &[Regex]| {
            res.iter().find_map(|re| {
                re.captures(s).map(|c| {
                    c.iter().skip(1).map(|m| m.map(|m| m.as_str().to_owned()).unwrap_or_default()).collect::<Vec<_>>()
                })
            })
        };
        let g = in_order(&self.greedy);
        let l = in_order(&self.lazy);
        // PCRE2 and the regex crate agree on which match a backtracking engine picks (leftmost-first).
        let o = self.ossec.captures(s).map(|c| c.iter().skip(1).flatten().map(|m| m.as_str().to_owned()).collect());
        [g, l, o]
    }
}

/// Split on `|` that is not escaped (`\|` is a literal bar).
fn split_alternatives(p: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = out.last_mut().expect("non-empty");
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().expect("non-empty").push(c),
        }
    }
    out
}

/// One alternative as a `regex` crate pattern (case-insensitive matching is added by the caller: literals compare
/// case-insensitively in os_regex, and OSSEC 3.3+ compiles with PCRE2_CASELESS).
fn translate(alt: &str, repeat: Repeat) -> Result<String, String> {
    let mut out = String::new();
    let mut body = alt;
    if let Some(rest) = body.strip_prefix('^') {
        out.push('^');
        body = rest;
    }
    let end_anchor = body.ends_with('$') && !body.ends_with("\\$");
    if end_anchor {
        body = &body[..body.len() - 1];
    }
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let mut open = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let e = *chars.get(i + 1).ok_or("trailing backslash")?;
                i += 2;
                let class = match e {
                    'w' => WORD.to_owned(),
                    'W' => format!("[^{}", &WORD[1..]),
                    'd' => "[0-9]".to_owned(),
                    'D' => "[^0-9]".to_owned(),
                    's' => "[ ]".to_owned(),
                    'S' => "[^ ]".to_owned(),
                    'p' => PUNCT.to_owned(),
                    '.' => "(?s:.)".to_owned(),
                    't' => "\\t".to_owned(),
                    // OSSEC 3.3+ refuses `\>` (only `<` may be escaped), so it is not accepted here either.
                    '(' | ')' | '\\' | '$' | '|' | '<' => {
                        out.push_str(&regex::escape(&e.to_string()));
                        continue;
                    }
                    other => return Err(format!("unsupported escape \\{other}")),
                };
                out.push_str(&class);
                if let Some(&q @ ('+' | '*')) = chars.get(i) {
                    out.push(q);
                    i += 1;
                    let ends_alternative = !end_anchor && chars[i..].iter().all(|&c| c == ')');
                    if repeat == Repeat::Lazy || (repeat == Repeat::Ossec && !ends_alternative) {
                        out.push('?');
                    }
                }
            }
            '(' => {
                if open {
                    return Err("nested group".into());
                }
                open = true;
                out.push('(');
                i += 1;
            }
            ')' => {
                if !open {
                    return Err("unbalanced ')'".into());
                }
                open = false;
                out.push(')');
                i += 1;
            }
            '+' | '*' => return Err(format!("'{c}' after a literal (os_regex repeats only classes)")),
            '^' | '$' => return Err(format!("'{c}' inside a pattern")),
            _ => {
                out.push_str(&regex::escape(&c.to_string()));
                i += 1;
            }
        }
    }
    if open {
        return Err("unclosed group".into());
    }
    if end_anchor {
        out.push('$');
    }
    // Check it alone, so that a bad alternative is reported as such.
    Regex::new(&out).map(|_| out).map_err(|e| e.to_string())
}

/// OSMatch: `|` alternatives of plain strings, `^` and `$` anchors, case-insensitive.
fn os_match(pattern: &str, s: &str) -> bool {
    let s = s.to_lowercase();
    pattern.split('|').any(|alt| {
        let alt = alt.to_lowercase();
        match (alt.strip_prefix('^'), alt.ends_with('$')) {
            (Some(a), true) => s == a[..a.len() - 1],
            (Some(a), false) => s.starts_with(a),
            (None, true) => s.ends_with(&alt[..alt.len() - 1]),
            (None, false) => s.contains(&alt),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// pre-decoding
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct PreDecoded<'a> {
    program: Option<&'a str>,
    hostname: Option<&'a str>,
    log: &'a str,
}

/// os_regex's hostname_map: the characters OS_CleanMSG accepts in a hostname or program name.
fn hostname_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"()-./@_".contains(&c)
}

/// The syslog-stamp branch of OS_CleanMSG ("Nov 14 18:09:08 ..."), which is the one ipscan's lines take.
fn predecode(full: &str) -> PreDecoded<'_> {
    let b = full.as_bytes();
    assert!(
        b.len() > 17 && b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':' && b[15] == b' ',
        "not a syslog-stamped line: {full:?}"
    );
    let mut log = &full[16..];
    if let Some(rest) = log.strip_prefix(' ') {
        log = rest;
    }
    let end = log.bytes().position(|c| !hostname_char(c)).unwrap_or(log.len());
    let rest = &log[end..];
    // "Solaris" form: no hostname, "program: message".
    if let Some(msg) = rest.strip_prefix(": ") {
        return PreDecoded { program: Some(&log[..end]), hostname: None, log: msg };
    }
    let Some(after) = rest.strip_prefix(' ') else {
        return PreDecoded { program: None, hostname: None, log };
    };
    let hostname = Some(&log[..end]);
    let pend = after.bytes().position(|c| !hostname_char(c)).unwrap_or(after.len());
    let prest = &after[pend..];
    if let Some(msg) = prest.strip_prefix(": ") {
        return PreDecoded { program: Some(&after[..pend]), hostname, log: msg };
    }
    if let Some(pid) = prest.strip_prefix('[') {
        let digits = pid.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let tail = &pid[digits..];
            if let Some(msg) = tail.strip_prefix("]: ").or_else(|| tail.strip_prefix("] ")) {
                return PreDecoded { program: Some(&after[..pend]), hostname, log: msg };
            }
        }
    }
    // No program name: the log stays after the "hostname", which may have been the line's first word.
    PreDecoded { program: None, hostname, log: after }
}

// ---------------------------------------------------------------------------------------------
// decoders
// ---------------------------------------------------------------------------------------------

struct Decoder {
    name: String,
    parent: Option<String>,
    program_name: Option<String>,
    prematch: Option<OsRegex>,
    regex: Option<OsRegex>,
    order: Vec<String>,
}

/// Text of every element must not start with whitespace: XML readers may trim it, and a pattern that
/// relies on a leading space would then silently change.
fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    let t = n.text().unwrap_or_default();
    assert!(!t.starts_with(char::is_whitespace), "<{}> starts with whitespace: {t:?}", n.tag_name().name());
    t.to_owned()
}

/// OSSEC's files have several top-level elements and no root; wrap them as its own reader does.
fn parse_xml(text: &str) -> roxmltree::Document<'_> {
    // Leak is fine in a test: the document borrows the wrapped text for the rest of the run.
    let wrapped: &'static str = Box::leak(format!("<root>{text}</root>").into_boxed_str());
    roxmltree::Document::parse(wrapped).unwrap_or_else(|e| panic!("XML: {e}"))
}

fn load_decoders() -> Vec<Decoder> {
    let text = read("ipscan_decoders.xml");
    let doc = parse_xml(&text);
    let mut out = Vec::new();
    for d in doc.root_element().children().filter(|n| n.is_element()) {
        assert_eq!(d.tag_name().name(), "decoder");
        let mut dec = Decoder {
            name: d.attribute("name").expect("decoder name").to_owned(),
            parent: None,
            program_name: None,
            prematch: None,
            regex: None,
            order: Vec::new(),
        };
        for c in d.children().filter(|n| n.is_element()) {
            assert!(c.attributes().len() == 0, "{}: offsets and types are not modelled", dec.name);
            let t = text_of(c);
            match c.tag_name().name() {
                "parent" => dec.parent = Some(t),
                "program_name" => dec.program_name = Some(t),
                "prematch" => dec.prematch = Some(OsRegex::new(&t)),
                "regex" => dec.regex = Some(OsRegex::new(&t)),
                "order" => dec.order = t.split(',').map(|f| f.trim().to_owned()).collect(),
                other => panic!("{}: <{other}> is not modelled", dec.name),
            }
        }
        out.push(dec);
    }
    out
}

#[derive(Debug, Default, PartialEq)]
struct Decoded {
    /// The name rules see: a child without use_own_name reports its parent's.
    decoded_as: String,
    /// The decoder that ran the regex, for messages.
    child: Option<String>,
    fields: BTreeMap<String, String>,
}

/// DecodeEvent: parents with a program name are tried only when the log has one, and only they.
fn decode<'a>(decoders: &[Decoder], full: &'a str) -> (PreDecoded<'a>, Option<Decoded>) {
    let pre = predecode(full);
    for parent in decoders.iter().filter(|d| d.parent.is_none()) {
        match (pre.program, &parent.program_name) {
            (Some(p), Some(pat)) if os_match(pat, p) => {}
            (None, None) => {}
            _ => continue,
        }
        if parent.prematch.as_ref().is_some_and(|pm| pm.exec(pre.log).is_none()) {
            continue;
        }
        let children: Vec<&Decoder> = decoders.iter().filter(|d| d.parent.as_deref() == Some(&parent.name)).collect();
        let matching: Vec<&&Decoder> =
            children.iter().filter(|c| c.prematch.as_ref().is_none_or(|pm| pm.exec(pre.log).is_some())).collect();
        // OSSEC takes the first; ours are written to be exclusive, so that order never matters.
        assert!(
            matching.len() <= 1,
            "{full:?}: several child prematches match: {:?}",
            matching.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
        let mut decoded = Decoded { decoded_as: parent.name.clone(), ..Decoded::default() };
        if let Some(child) = matching.first() {
            decoded.child = Some(child.name.clone());
            let regex = child.regex.as_ref().expect("child has a regex");
            // A child whose prematch matched but whose regex does not leaves the event decoded, with no fields
            // (DecodeEvent's "goto out"): real OSSEC 4.2 printed rule 100203 without fields for bogus flags with
            // a destination, and 100204 for a traceroute with one, when the regexes knew only the forms without.
            for (field, value) in child.order.iter().zip(regex.exec(pre.log).unwrap_or_default()) {
                if !value.is_empty() {
                    decoded.fields.insert(field.clone(), value);
                }
            }
        }
        return (pre, Some(decoded));
    }
    (pre, None)
}

// ---------------------------------------------------------------------------------------------
// rules
// ---------------------------------------------------------------------------------------------

struct Rule {
    id: u32,
    level: u32,
    if_sid: Option<u32>,
    decoded_as: Option<String>,
    matches: Option<String>,
    regex: Option<OsRegex>,
    fields: Vec<(String, OsRegex)>,
}

fn load_rules(file: &str) -> Vec<Rule> {
    let text = read(file);
    let doc = parse_xml(&text);
    let mut out = Vec::new();
    for group in doc.root_element().children().filter(|n| n.is_element()) {
        assert_eq!(group.tag_name().name(), "group");
        assert!(group.attribute("name").is_some_and(|n| n.starts_with("ipscan,")));
        for r in group.children().filter(|n| n.is_element()) {
            let mut rule = Rule {
                id: r.attribute("id").and_then(|v| v.parse().ok()).expect("rule id"),
                level: r.attribute("level").and_then(|v| v.parse().ok()).expect("rule level"),
                if_sid: None,
                decoded_as: None,
                matches: None,
                regex: None,
                fields: Vec::new(),
            };
            for c in r.children().filter(|n| n.is_element()) {
                let t = text_of(c);
                match c.tag_name().name() {
                    "if_sid" => rule.if_sid = Some(t.parse().expect("if_sid")),
                    "decoded_as" => rule.decoded_as = Some(t),
                    "match" => rule.matches = Some(t),
                    "regex" => rule.regex = Some(OsRegex::new(&t)),
                    "field" => {
                        rule.fields.push((c.attribute("name").expect("field name").to_owned(), OsRegex::new(&t)))
                    }
                    "description" | "group" => {}
                    other => panic!("rule {}: <{other}> is not modelled", rule.id),
                }
            }
            out.push(rule);
        }
    }
    out
}

/// What a rule's conditions look at.
struct RuleInput<'a> {
    decoded_as: &'a str,
    log: &'a str,
    fields: &'a BTreeMap<String, String>,
}

fn rule_holds(rules: &[Rule], rule: &Rule, ev: &RuleInput<'_>) -> bool {
    let own = rule.decoded_as.as_deref().is_none_or(|d| d == ev.decoded_as)
        && rule.matches.as_deref().is_none_or(|m| os_match(m, ev.log))
        && rule.regex.as_ref().is_none_or(|r| r.exec(ev.log).is_some())
        && rule.fields.iter().all(|(name, re)| ev.fields.get(name).is_some_and(|v| re.exec(v).is_some()));
    own && rule.if_sid.is_none_or(|p| {
        let parent = rules.iter().find(|r| r.id == p).expect("if_sid names a rule");
        rule_holds(rules, parent, ev)
    })
}

/// The most specific rules that hold: those holding with no holding child. Exactly one is expected.
fn leaf_rules(rules: &[Rule], ev: &RuleInput<'_>) -> Vec<u32> {
    let holding: Vec<&Rule> = rules.iter().filter(|r| rule_holds(rules, r, ev)).collect();
    holding.iter().filter(|r| !holding.iter().any(|c| c.if_sid == Some(r.id))).map(|r| r.id).collect()
}

fn level_of(rules: &[Rule], id: u32) -> u32 {
    rules.iter().find(|r| r.id == id).map(|r| r.level).expect("rule exists")
}

// ---------------------------------------------------------------------------------------------
// golden lines
// ---------------------------------------------------------------------------------------------

const SCAN: u32 = 100201;
const FLOOD: u32 = 100202;
const BOGUS: u32 = 100203;
const TRACEROUTE: u32 = 100204;
const FRAGMENT: u32 = 100205;
const EXPIRED: u32 = 100206;
const BLOCKED: u32 = 100207;
const UNBLOCKED: u32 = 100208;
const NOT_BLOCKED: u32 = 100209;
const WOULD_BLOCK: u32 = 100210;
const WOULD_UNBLOCK: u32 = 100211;
const TRIPWIRE: u32 = 100212;
const SWEEP: u32 = 100213;
const DIST_FLOOD: u32 = 100214;
const DIST_SCAN: u32 = 100215;
const REJECTED: u32 = 100216;
/// The JSON records' rules for a scan, a flood, a sweep, a distributed flood, a distributed scan and rejected
/// probes.
const JSON_SCAN: u32 = 100251;
const JSON_FLOOD: u32 = 100252;
const JSON_SWEEP: u32 = 100263;
const JSON_DIST_FLOOD: u32 = 100264;
const JSON_DIST_SCAN: u32 = 100265;
const JSON_REJECTED: u32 = 100266;
/// A distributed flood's name, the extra_data of its lines.
const DIST_FLOOD_NAME: &str = "distributed flood";
/// A distributed scan's names, the extra_data of its lines: a decoy scan's detection line says "decoy scan", its
/// end "distributed scan".
const DIST_SCAN_NAME: &str = "distributed scan";
const DECOY_SCAN_NAME: &str = "decoy scan";
/// Rejected probes' name, the extra_data of their lines (TCP or UDP).
const REJECTED_NAME: &str = "rejected probes";

/// Whether a line is one of a detection kept per target (a distributed flood or scan), which names no source
/// to block: its address is the target's.
fn per_target_line(msg: &str) -> bool {
    [DIST_FLOOD_NAME, DIST_SCAN_NAME, DECOY_SCAN_NAME].iter().any(|n| msg.contains(&format!("{n} ")))
}

/// The levels the rules must have (a line's expected level is its rule's).
const LEVELS: [(u32, u32); 17] = [
    (100200, 0),
    (SCAN, 10),
    (FLOOD, 10),
    (BOGUS, 6),
    (TRACEROUTE, 6),
    (FRAGMENT, 6),
    (EXPIRED, 3),
    (BLOCKED, 3),
    (UNBLOCKED, 3),
    (NOT_BLOCKED, 3),
    (WOULD_BLOCK, 3),
    (WOULD_UNBLOCK, 3),
    (TRIPWIRE, 10),
    // A sweep alerts as a scan does (ipscan_rules.xml says why).
    (SWEEP, 10),
    // A distributed flood alerts as the other floods do, and names no source.
    (DIST_FLOOD, 10),
    // A distributed or decoy scan alerts as a scan does, and names no source to block.
    (DIST_SCAN, 10),
    // Rejected probes alert as a scan does (a scan of closed ports), and name their source, as a scan does.
    (REJECTED, 10),
];

fn want_level(rule: u32) -> u32 {
    LEVELS.iter().find(|(id, _)| *id == rule).map(|(_, level)| *level).expect("a rule of LEVELS")
}

/// A line that alerts, and exactly the fields it must decode to (no others).
struct Golden<'a> {
    msg: &'a str,
    /// None only for a distributed flood's or scan's lines, which name their target (dstip) and no source.
    srcip: Option<&'a str>,
    dstip: Option<&'a str>,
    /// extra_data in syslog mode, and in file mode (where a leading word may have gone to the hostname).
    extra: Option<&'a str>,
    extra_file: Option<&'a str>,
    /// srcport, dstport.
    ports: Option<(&'a str, &'a str)>,
    rule: u32,
}

const fn g(
    msg: &'static str,
    srcip: &'static str,
    dstip: Option<&'static str>,
    extra: &'static str,
    rule: u32,
) -> Golden<'static> {
    Golden { msg, srcip: Some(srcip), dstip, extra: Some(extra), extra_file: Some(extra), ports: None, rule }
}

/// A fragment line: the kind is its first word, which file mode hands to the hostname.
const fn frag(
    msg: &'static str,
    srcip: &'static str,
    dstip: Option<&'static str>,
    kind: &'static str,
) -> Golden<'static> {
    Golden { msg, srcip: Some(srcip), dstip, extra: Some(kind), extra_file: None, ports: None, rule: FRAGMENT }
}

/// A line with no extra_data.
const fn bare(
    msg: &'static str,
    srcip: &'static str,
    dstip: Option<&'static str>,
    ports: Option<(&'static str, &'static str)>,
    rule: u32,
) -> Golden<'static> {
    Golden { msg, srcip: Some(srcip), dstip, extra: None, extra_file: None, ports, rule }
}

/// A distributed flood's line: its target as dstip, its name as extra_data, and no srcip.
const fn flood(msg: &'static str, target: &'static str, rule: u32) -> Golden<'static> {
    Golden {
        msg,
        srcip: None,
        dstip: Some(target),
        extra: Some(DIST_FLOOD_NAME),
        extra_file: Some(DIST_FLOOD_NAME),
        ports: None,
        rule,
    }
}

/// A distributed or decoy scan's line: its target as dstip, its name as extra_data, and no srcip (nor any of the
/// sources it lists).
const fn spread(msg: &'static str, target: &'static str, name: &'static str, rule: u32) -> Golden<'static> {
    Golden { msg, srcip: None, dstip: Some(target), extra: Some(name), extra_file: Some(name), ports: None, rule }
}

const GOLDEN: &[Golden<'static>] = &[
    // The seed's lines, verbatim.
    g(
        "TCP: port scan detected [ports 53,443,1723,21,25,3389,113,636,256,554,...] from 10.10.150.1 [ports 51242,51243,...]",
        "10.10.150.1",
        None,
        "port scan",
        SCAN,
    ),
    g(
        "TCP: SYN scan detected [ports 21,1] from 10.10.150.1 [ports 34333,34335,34325,34326,34327,...]",
        "10.10.150.1",
        None,
        "SYN scan",
        SCAN,
    ),
    g(
        "TCP: FIN scan detected [ports 3389,1723,256,113,22,389,554,443,21,23,...] from 10.10.150.1 [port 57876]",
        "10.10.150.1",
        None,
        "FIN scan",
        SCAN,
    ),
    g(
        "TCP: null scan detected [ports 636,53,23,3389,1723,443,113,554,25,21,...] from 10.10.150.1 [port 35444]",
        "10.10.150.1",
        None,
        "null scan",
        SCAN,
    ),
    g(
        "TCP: Xmas scan detected [ports 636,256,554,389,1723,53,443,21,3389,22,...] from 10.10.150.1 [port 42399]",
        "10.10.150.1",
        None,
        "Xmas scan",
        SCAN,
    ),
    g(
        "UDP: scan/flood detected [ports 33161,41107,63571,48714,25271,...] from 10.10.150.1 [ports 60362]",
        "10.10.150.1",
        None,
        "scan/flood",
        SCAN,
    ),
    g("ICMP: ping flood detected from 10.10.150.1", "10.10.150.1", None, "ping flood", FLOOD),
    g("ICMP/UDP: smurf attack detected from 201.223.41.0", "201.223.41.0", None, "smurf attack", FLOOD),
    g(
        "TCP: port scan mode expired for 10.10.150.1 - received a total of 1678 packets (47092 bytes).",
        "10.10.150.1",
        None,
        "port scan",
        EXPIRED,
    ),
    g(
        "TCP: Xmas scan mode expired for 10.10.150.1 - received a total of 65532 packets (1310640 bytes).",
        "10.10.150.1",
        None,
        "Xmas scan",
        EXPIRED,
    ),
    g(
        "UDP: scan/flood mode expired for 10.10.150.1 - received a total of 356 packets (2848 bytes).",
        "10.10.150.1",
        None,
        "scan/flood",
        EXPIRED,
    ),
    g(
        "ICMP: ping flood mode expired for 10.10.150.1 - received a total of 428 packets (8416000 bytes).",
        "10.10.150.1",
        None,
        "ping flood",
        EXPIRED,
    ),
    g(
        "ICMP/UDP: smurf attack mode expired for 201.223.41.0 - received a total of 337 packets (21568 bytes).",
        "201.223.41.0",
        None,
        "smurf attack",
        EXPIRED,
    ),
    Golden {
        msg: "TCP: Bogus TCP flags set by 10.10.160.2:60873 (dest port 25)",
        srcip: Some("10.10.160.2"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: Some(("60873", "25")),
        rule: BOGUS,
    },
    Golden {
        msg: "UDP: traceroute from 10.10.150.2",
        srcip: Some("10.10.150.2"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: TRACEROUTE,
    },
    // IPv6 sources and single ports.
    g("TCP: SYN scan detected [port 22] from 2001:db8::1 [port 40000]", "2001:db8::1", None, "SYN scan", SCAN),
    g(
        "TCP: Xmas scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 2001:db8:1:2::5 [ports 1,2]",
        "2001:db8:1:2::5",
        None,
        "Xmas scan",
        SCAN,
    ),
    g("UDP: scan/flood detected [ports 53,123] from fe80::1 [port 5353]", "fe80::1", None, "scan/flood", SCAN),
    g("ICMP: ping flood detected from 2001:db8::1", "2001:db8::1", None, "ping flood", FLOOD),
    g("ICMP/UDP: smurf attack detected from 2001:db8:1:2::", "2001:db8:1:2::", None, "smurf attack", FLOOD),
    g(
        "TCP: null scan mode expired for 2001:db8::1 - received a total of 10 packets (200 bytes).",
        "2001:db8::1",
        None,
        "null scan",
        EXPIRED,
    ),
    Golden {
        msg: "TCP: Bogus TCP flags set by [2001:db8::1]:60873 (dest port 25)",
        srcip: Some("2001:db8::1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: Some(("60873", "25")),
        rule: BOGUS,
    },
    Golden {
        msg: "UDP: traceroute from ::ffff:10.0.0.1",
        srcip: Some("::ffff:10.0.0.1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: TRACEROUTE,
    },
    // log_dest.
    g(
        "TCP: SYN scan detected to 10.10.150.2 [ports 21,1] from 10.10.150.1 [port 40000]",
        "10.10.150.1",
        Some("10.10.150.2"),
        "SYN scan",
        SCAN,
    ),
    g(
        "TCP: port scan detected to 2001:db8::2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 2001:db8::1 [port 40000]",
        "2001:db8::1",
        Some("2001:db8::2"),
        "port scan",
        SCAN,
    ),
    g(
        "UDP: scan/flood detected to 10.10.150.2 [ports 33161,41107] from 10.10.150.1 [port 60362]",
        "10.10.150.1",
        Some("10.10.150.2"),
        "scan/flood",
        SCAN,
    ),
    g(
        "ICMP: ping flood detected to 10.10.150.2 from 10.10.150.1",
        "10.10.150.1",
        Some("10.10.150.2"),
        "ping flood",
        FLOOD,
    ),
    g(
        "ICMP/UDP: smurf attack detected to 2001:db8::2 from 2001:db8:1:2::",
        "2001:db8:1:2::",
        Some("2001:db8::2"),
        "smurf attack",
        FLOOD,
    ),
    g(
        "TCP: SYN scan mode to 10.10.150.2 expired for 10.10.150.1 - received a total of 24 packets (960 bytes).",
        "10.10.150.1",
        Some("10.10.150.2"),
        "SYN scan",
        EXPIRED,
    ),
    g(
        "UDP: scan/flood mode to 2001:db8::2 expired for 2001:db8::1 - received a total of 356 packets (2848 bytes).",
        "2001:db8::1",
        Some("2001:db8::2"),
        "scan/flood",
        EXPIRED,
    ),
    // Fragments: the kind is the line's first word, which file mode hands to the hostname.
    frag("Oversized IP fragment from 10.10.150.1", "10.10.150.1", None, "Oversized"),
    frag("Overlapping IP fragments from 2001:db8::1", "2001:db8::1", None, "Overlapping"),
    frag("Duplicate IP fragments from 10.10.150.1", "10.10.150.1", None, "Duplicate"),
    // Real OSSEC 4.2's ossec-logtest printed, for the forms below, before the decoders knew them:
    // - "Tiny IP fragment from S": syslog mode rule 100205 level 6 with no fields (no child's prematch named
    //   Tiny); file mode srcip (the kind went to the hostname, the rest to the file-mode child).
    // - fragments with log_dest: syslog mode rule 100200 level 0, no fields; file mode not decoded at all
    //   (hostname 'Oversized', log 'IP fragment to D from S', which no file-mode prematch named).
    // - bogus flags with "(dest H:P)" or "(dest [H6]:P)": rule 100203 level 6 with no fields; traceroute
    //   with "to D": rule 100204 level 6 with no fields. Here the child's prematch claimed the line and its
    //   regex (which knew only "(dest port N)", or ended at the source) did not match, which OSSEC takes
    //   for a decoded event without fields; the model took it for an error until it was made to agree.
    frag("Tiny IP fragment from 10.10.150.1", "10.10.150.1", None, "Tiny"),
    frag("Tiny IP fragment from 2001:db8::1", "2001:db8::1", None, "Tiny"),
    frag("Oversized IP fragment to 10.10.150.2 from 10.10.150.1", "10.10.150.1", Some("10.10.150.2"), "Oversized"),
    frag("Overlapping IP fragments to 10.10.150.2 from 10.10.150.1", "10.10.150.1", Some("10.10.150.2"), "Overlapping"),
    frag("Overlapping IP fragments to 2001:db8::2 from 2001:db8::1", "2001:db8::1", Some("2001:db8::2"), "Overlapping"),
    frag("Duplicate IP fragments to 2001:db8::2 from 2001:db8::1", "2001:db8::1", Some("2001:db8::2"), "Duplicate"),
    frag("Tiny IP fragment to 10.10.150.2 from 10.10.150.1", "10.10.150.1", Some("10.10.150.2"), "Tiny"),
    bare(
        "TCP: Bogus TCP flags set by 10.10.150.1:1234 (dest 10.10.150.2:80)",
        "10.10.150.1",
        Some("10.10.150.2"),
        Some(("1234", "80")),
        BOGUS,
    ),
    bare(
        "TCP: Bogus TCP flags set by [2001:db8::1]:1234 (dest [2001:db8::2]:80)",
        "2001:db8::1",
        Some("2001:db8::2"),
        Some(("1234", "80")),
        BOGUS,
    ),
    bare("UDP: traceroute from 10.10.150.1 to 10.10.150.2", "10.10.150.1", Some("10.10.150.2"), None, TRACEROUTE),
    bare("ICMP: traceroute from 2001:db8::1 to 2001:db8::2", "2001:db8::1", Some("2001:db8::2"), None, TRACEROUTE),
    bare("TCP: traceroute from 10.10.150.1", "10.10.150.1", None, None, TRACEROUTE),
    // Sweeps: the ports swept (none for pings), the count of hosts and the first of them (a full list, a short
    // one, none known), never a destination nor source ports; "sweep" alone is the UDP one.
    g(
        "TCP: SYN sweep detected [port 22] of 10 hosts \
         [198.18.1.1,198.18.1.2,198.18.1.3,198.18.1.4,198.18.1.5,198.18.1.6,198.18.1.7,198.18.1.8,...] from 198.18.0.1",
        "198.18.0.1",
        None,
        "SYN sweep",
        SWEEP,
    ),
    g(
        "TCP: SYN sweep detected [ports 22,80] of 10 hosts [...] from 2001:db8::1",
        "2001:db8::1",
        None,
        "SYN sweep",
        SWEEP,
    ),
    g(
        "TCP: SYN sweep detected [ports 22,80,443,3389,5900,8080,8443,1,2,3,...] of 1200 hosts \
         [2001:db8:1::1,2001:db8:1::2,...] from 2001:db8:9::7",
        "2001:db8:9::7",
        None,
        "SYN sweep",
        SWEEP,
    ),
    g(
        "UDP: sweep detected [port 161] of 3 hosts [198.18.1.1,198.18.1.2,198.18.1.3] from 198.18.0.1",
        "198.18.0.1",
        None,
        "sweep",
        SWEEP,
    ),
    g(
        "UDP: sweep detected [ports 53,123] of 10 hosts [2001:db8::1:1,2001:db8::1:2,...] from 2001:db8::5",
        "2001:db8::5",
        None,
        "sweep",
        SWEEP,
    ),
    g(
        "ICMP: ping sweep detected of 10 hosts [198.18.1.2,198.18.1.3,...] from 198.18.0.1",
        "198.18.0.1",
        None,
        "ping sweep",
        SWEEP,
    ),
    g("ICMP: ping sweep detected of 10 hosts [...] from 2001:db8::1", "2001:db8::1", None, "ping sweep", SWEEP),
    g(
        "ICMP: ping sweep detected of 3 hosts [2001:db8::2,2001:db8::3,2001:db8::4] from 2001:db8::7",
        "2001:db8::7",
        None,
        "ping sweep",
        SWEEP,
    ),
    g(
        "TCP: SYN sweep mode expired for 198.18.0.1 - received a total of 11 packets (484 bytes).",
        "198.18.0.1",
        None,
        "SYN sweep",
        EXPIRED,
    ),
    g(
        "UDP: sweep mode expired for 2001:db8::1 - received a total of 30 packets (1200 bytes).",
        "2001:db8::1",
        None,
        "sweep",
        EXPIRED,
    ),
    g(
        "ICMP: ping sweep mode expired for 198.18.0.1 - received a total of 10 packets (840 bytes).",
        "198.18.0.1",
        None,
        "ping sweep",
        EXPIRED,
    ),
    // Distributed floods: the target and no source, in every form (a port list or none for ICMP; about,
    // over or exactly so many sources), and their ends with and without the sources.
    flood(
        "UDP: distributed flood detected to 198.18.0.2 [port 53] from about 360 sources (48000 packets/s)",
        "198.18.0.2",
        DIST_FLOOD,
    ),
    flood(
        "TCP: distributed flood detected to 2001:db8::2 [ports 80,443] from about 1900 sources (2693 packets/s)",
        "2001:db8::2",
        DIST_FLOOD,
    ),
    flood(
        "TCP: distributed flood detected to 198.18.0.2 [ports 80,443,8080,8443,22,...] from about 710 sources \
         (9000 packets/s)",
        "198.18.0.2",
        DIST_FLOOD,
    ),
    flood(
        "ICMP: distributed flood detected to 198.18.0.2 from over 5000 sources (100000 packets/s)",
        "198.18.0.2",
        DIST_FLOOD,
    ),
    flood(
        "ICMP: distributed flood detected to 2001:db8::2 from 20 sources (1200 packets/s)",
        "2001:db8::2",
        DIST_FLOOD,
    ),
    flood(
        "UDP: distributed flood detected to 2001:db8:1:2::5 [port 123] from over 5000 sources (250000 packets/s)",
        "2001:db8:1:2::5",
        DIST_FLOOD,
    ),
    flood(
        "UDP: distributed flood detected to 198.18.0.2 [port 53] from 28 sources (500 packets/s)",
        "198.18.0.2",
        DIST_FLOOD,
    ),
    flood(
        "UDP: distributed flood mode expired for 198.18.0.2 - received a total of 2000 packets (56000 bytes) from \
         about 1900 sources.",
        "198.18.0.2",
        EXPIRED,
    ),
    flood(
        "UDP: distributed flood mode expired for 198.18.0.2 - received a total of 2000 packets (56000 bytes).",
        "198.18.0.2",
        EXPIRED,
    ),
    flood(
        "TCP: distributed flood mode expired for 2001:db8::2 - received a total of 9 packets (360 bytes) from 20 \
         sources.",
        "2001:db8::2",
        EXPIRED,
    ),
    flood(
        "ICMP: distributed flood mode expired for 2001:db8::2 - received a total of 90000 packets (7560000 bytes) \
         from over 5000 sources.",
        "2001:db8::2",
        EXPIRED,
    ),
    // Distributed and decoy scans: the target and none of the sources listed, in every form (one port or a list,
    // full or not; "N sources" or "5 or more sources"; the sources all named, some and ",...", or "[...]"), and
    // their end, which says "distributed scan" for a decoy scan too.
    spread(
        "TCP: decoy scan detected to 198.18.0.2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 4 sources \
         [198.19.5.5,198.19.6.6,198.19.7.7,198.18.0.1]",
        "198.18.0.2",
        DECOY_SCAN_NAME,
        DIST_SCAN,
    ),
    spread(
        "TCP: decoy scan detected to 198.18.0.2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 5 or more sources \
         [198.19.5.5,198.19.6.6,198.19.7.7,198.19.8.8,198.18.0.1,...]",
        "198.18.0.2",
        DECOY_SCAN_NAME,
        DIST_SCAN,
    ),
    spread(
        "TCP: decoy scan detected to 2001:db8::2 [port 80] from 3 sources [2001:db8:9::1,...]",
        "2001:db8::2",
        DECOY_SCAN_NAME,
        DIST_SCAN,
    ),
    spread(
        "TCP: distributed scan detected to 2001:db8::2 [ports 101,102,...] from 5 or more sources \
         [2001:db8:9::1,2001:db8:9::2,...]",
        "2001:db8::2",
        DIST_SCAN_NAME,
        DIST_SCAN,
    ),
    spread(
        "TCP: distributed scan detected to 198.18.0.2 [ports 22,80,443] from 3 sources [...]",
        "198.18.0.2",
        DIST_SCAN_NAME,
        DIST_SCAN,
    ),
    spread(
        "TCP: distributed scan detected to 2001:db8:1:2::5 [port 8080] from 5 or more sources [...]",
        "2001:db8:1:2::5",
        DIST_SCAN_NAME,
        DIST_SCAN,
    ),
    spread(
        "TCP: distributed scan mode expired for 198.18.0.2 - received a total of 57 packets (1368 bytes).",
        "198.18.0.2",
        DIST_SCAN_NAME,
        EXPIRED,
    ),
    spread(
        "TCP: distributed scan mode expired for 2001:db8::2 - received a total of 0 packets (0 bytes).",
        "2001:db8::2",
        DIST_SCAN_NAME,
        EXPIRED,
    ),
    // Rejected probes: a port scan's shape, TCP or UDP (the protocol of the probes refused), "to D" with log_dest;
    // their end counts the probes rejected, not packets received ("to D" with log_dest too).
    g(
        "TCP: rejected probes detected [ports 1,2,3,4,5] from 198.18.0.1 [port 40000]",
        "198.18.0.1",
        None,
        REJECTED_NAME,
        REJECTED,
    ),
    g(
        "UDP: rejected probes detected [ports 7,9,13,19,37] from 2001:db8::1 [ports 40000,40001]",
        "2001:db8::1",
        None,
        REJECTED_NAME,
        REJECTED,
    ),
    g(
        "TCP: rejected probes detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 2001:db8:1:2::5 \
         [ports 40000,40001,40002,40003,40004,...]",
        "2001:db8:1:2::5",
        None,
        REJECTED_NAME,
        REJECTED,
    ),
    g(
        "TCP: rejected probes detected to 198.18.0.2 [ports 1,2,3,4,5] from 198.18.0.1 [port 40000]",
        "198.18.0.1",
        Some("198.18.0.2"),
        REJECTED_NAME,
        REJECTED,
    ),
    g(
        "UDP: rejected probes detected to 2001:db8::2 [ports 7,9,13,19,37] from 2001:db8::1 [ports 40000,40001]",
        "2001:db8::1",
        Some("2001:db8::2"),
        REJECTED_NAME,
        REJECTED,
    ),
    g(
        "TCP: rejected probes mode expired for 198.18.0.1 - 12 probes rejected.",
        "198.18.0.1",
        None,
        REJECTED_NAME,
        EXPIRED,
    ),
    g(
        "UDP: rejected probes mode expired for 2001:db8::1 - 5 probes rejected.",
        "2001:db8::1",
        None,
        REJECTED_NAME,
        EXPIRED,
    ),
    // ipscan's own.
    g("Blocked 198.18.0.1 for 3600 s (SYN scan)", "198.18.0.1", None, "SYN scan", BLOCKED),
    g("Blocked 198.18.0.1 for 60 s (SYN sweep)", "198.18.0.1", None, "SYN sweep", BLOCKED),
    g("Blocked 2001:db8::1 for 60 s (sweep)", "2001:db8::1", None, "sweep", BLOCKED),
    g("Blocked 198.18.0.1 for 60 s (ping sweep)", "198.18.0.1", None, "ping sweep", BLOCKED),
    g("Blocked 2001:db8::1 for 60 s (scan/flood)", "2001:db8::1", None, "scan/flood", BLOCKED),
    g("Blocked 198.18.0.1 for 60 s (rejected probes)", "198.18.0.1", None, REJECTED_NAME, BLOCKED),
    g("Blocked 2001:db8::1 for 60 s (rejected probes)", "2001:db8::1", None, REJECTED_NAME, BLOCKED),
    // A repeat offender's block (`block ... escalate`): the offence stays in the extra data.
    g("Blocked 198.18.0.1 for 14400 s (SYN scan, offence 2)", "198.18.0.1", None, "SYN scan, offence 2", BLOCKED),
    // A CrowdSec decision's block (`crowdsec bouncer`): an address or a range, the scenario.
    g(
        "Blocked 198.18.0.1 for 14399 s (crowdsec: ipscan/syn_scan)",
        "198.18.0.1",
        None,
        "crowdsec: ipscan/syn_scan",
        BLOCKED,
    ),
    g(
        "Blocked 198.18.0.0/30 for 1799 s (crowdsec: manual 'ban' from 'cli')",
        "198.18.0.0/30",
        None,
        "crowdsec: manual 'ban' from 'cli'",
        BLOCKED,
    ),
    Golden {
        msg: "Unblocked 198.18.0.1 - dropped 12 packets (480 bytes).",
        srcip: Some("198.18.0.1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: UNBLOCKED,
    },
    Golden {
        msg: "Unblocked 2001:db8:: - dropped 0 packets (0 bytes).",
        srcip: Some("2001:db8::"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: UNBLOCKED,
    },
    Golden {
        msg: "Not blocked 198.18.0.1: allowlisted (SYN scan)",
        srcip: Some("198.18.0.1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: NOT_BLOCKED,
    },
    Golden {
        msg: "Not blocked 198.18.0.1: allowlisted (rejected probes)",
        srcip: Some("198.18.0.1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: NOT_BLOCKED,
    },
    Golden {
        msg: "Not blocked 2001:db8::1: allowlisted (Xmas scan)",
        srcip: Some("2001:db8::1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: NOT_BLOCKED,
    },
    // dry_run.
    g("Would block 198.18.0.1 for 3600 s (SYN scan)", "198.18.0.1", None, "SYN scan", WOULD_BLOCK),
    g("Would block 2001:db8::1 for 60 s (scan/flood)", "2001:db8::1", None, "scan/flood", WOULD_BLOCK),
    g("Would block 2001:db8::1 for 60 s (ping sweep)", "2001:db8::1", None, "ping sweep", WOULD_BLOCK),
    g("Would block 2001:db8::1 for 60 s (rejected probes)", "2001:db8::1", None, REJECTED_NAME, WOULD_BLOCK),
    g(
        "Would block 2001:db8::1 for 240 s (scan/flood, offence 3)",
        "2001:db8::1",
        None,
        "scan/flood, offence 3",
        WOULD_BLOCK,
    ),
    Golden {
        msg: "Would unblock 198.18.0.1 - would have dropped 12 packets (480 bytes).",
        srcip: Some("198.18.0.1"),
        dstip: None,
        extra: None,
        extra_file: None,
        ports: None,
        rule: WOULD_UNBLOCK,
    },
];

/// Lines ipscan (or its neighbours in a log) writes that must never raise an alert: per-packet lines and
/// ipscan's own notices. (Every per-packet form ipscan writes is also checked in
/// `ossec_every_form_ipscan_writes`.)
const QUIET: &[&str] = &[
    "TCP: ssh connection attempt from 10.0.0.1:5000",
    "TCP: port 1723 connection attempt from 10.10.150.1:51241",
    "TCP: ssh connection attempt to 10.0.0.2 from [2001:db8::1]:5000",
    "UDP: dgram to port 1 from 10.10.150.1:34324 (300 data bytes)",
    "UDP: dgram to 10.10.150.2:port 1 from 10.10.150.1:34324 (300 data bytes)",
    "ICMP: echo from 10.10.150.1 (64 bytes)",
    "ICMP: echo reply from 2001:db8::1 (64 bytes)",
    "ICMP: echo from 10.10.150.1 to 10.10.150.2 (64 bytes)",
    "ICMP: timestamp request to 10.10.150.2 from 10.10.150.1",
    "ICMP: 10.10.150.1: port is unreachable to (udp: dest port 33434, source port 40000)",
    "Short IP packet from 10.10.150.1",
    "Short IP packet to 10.10.150.2 from 10.10.150.1",
    "IP packet with invalid checksum from 2001:db8::1",
    "IP packet with invalid checksum to 10.10.150.2 from 10.10.150.1",
    "ipscan: left out 7 per-packet lines from 2001:db8::1 (rate limit)",
    "last message repeated 3 times",
    "ipscan: attached to eth0 (native XDP)",
];

/// The two shapes a line reaches the analysis daemon in.
fn shapes(msg: &str) -> [(String, bool); 4] {
    [
        (format!("Nov 14 18:09:08 victim ipscan[812]: {msg}"), true),
        (format!("Nov 14 18:09:08 victim iplog: {msg}"), true),
        (format!("Nov 14 18:09:08 {msg}"), false),
        (format!("Nov  4 08:01:02 {msg}"), false),
    ]
}

/// `gl` in every shape: decoded as ipscan to exactly its fields, and on exactly its rule, at that rule's level.
fn check_alert(decoders: &[Decoder], rules: &[Rule], gl: &Golden<'_>) {
    // Every decoded srcip must be one ipscan-block.sh would accept: an address in ipscan's
    // printed form, with a prefix length for a range (a CrowdSec decision's block).
    if let Some(srcip) = gl.srcip {
        let (a, len) = srcip.split_once('/').map_or((srcip, None), |(a, l)| (a, Some(l)));
        let addr: IpAddr = a.parse().expect("srcip parses");
        assert_eq!(addr.to_string(), a, "srcip must be in ipscan's printed form");
        let max = if addr.is_ipv4() { 32 } else { 128 };
        assert!(len.is_none_or(|l| l.parse::<u8>().is_ok_and(|l| l <= max)), "{srcip}: bad prefix length");
    }
    if let Some(dstip) = gl.dstip {
        let addr: IpAddr = dstip.parse().expect("dstip parses");
        assert_eq!(addr.to_string(), dstip, "dstip must be in ipscan's printed form");
    }
    // A line with no source is a distributed flood's or scan's, and it names its target; only they have no
    // source.
    assert_eq!(gl.srcip.is_none(), per_target_line(gl.msg), "{}", gl.msg);
    assert!(gl.srcip.is_some() || gl.dstip.is_some(), "{}: no address at all", gl.msg);
    for (line, syslog) in shapes(gl.msg) {
        let (pre, decoded) = decode(decoders, &line);
        let d = decoded.unwrap_or_else(|| panic!("{line:?} ({pre:?}) is not decoded"));
        assert_eq!(d.decoded_as, "ipscan", "{line:?}");
        let f = &d.fields;
        let ctx = format!("{line:?} via {:?}: {f:?}", d.child);
        let extra = if syslog { gl.extra } else { gl.extra_file };
        let want: BTreeMap<String, String> = [
            ("srcip", gl.srcip),
            ("dstip", gl.dstip),
            ("extra_data", extra),
            ("srcport", gl.ports.map(|p| p.0)),
            ("dstport", gl.ports.map(|p| p.1)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
        assert_eq!(f, &want, "{ctx}");
        let input = RuleInput { decoded_as: &d.decoded_as, log: pre.log, fields: f };
        assert_eq!(leaf_rules(rules, &input), [gl.rule], "{ctx}");
        assert_eq!(level_of(rules, gl.rule), want_level(gl.rule), "{ctx}");
    }
}

/// `msg` in every shape: in syslog mode (and in file mode for a line that itself starts "ipscan: ") an ipscan
/// event with no fields, caught only by the level-0 base rule; in file mode not claimed by ipscan's decoders.
/// This is what real OSSEC 4.2 does with them (ossec-logtest: "Rule id: '100200'", "Level: '0'"; in file
/// mode no decoder: the file-mode parents' prematches name only the lines that alert).
fn check_quiet(decoders: &[Decoder], rules: &[Rule], msg: &str) {
    for (line, syslog) in shapes(msg) {
        let (pre, decoded) = decode(decoders, &line);
        match decoded {
            Some(d) => {
                assert!(syslog || msg.starts_with("ipscan: "), "{line:?} decoded in file mode: {d:?}");
                assert!(d.child.is_none() && d.fields.is_empty(), "{line:?}: {d:?}");
                let input = RuleInput { decoded_as: &d.decoded_as, log: pre.log, fields: &d.fields };
                assert_eq!(leaf_rules(rules, &input), [100200], "{line:?}");
            }
            None => assert!(!syslog && !msg.starts_with("ipscan: "), "{line:?} not decoded"),
        }
    }
}

#[test]
fn ossec_every_line_form_decodes_and_hits_its_rule() {
    let decoders = load_decoders();
    let rules = load_rules("ipscan_rules.xml");
    for gl in GOLDEN {
        check_alert(&decoders, &rules, gl);
    }
}

#[test]
fn ossec_rule_levels_and_ids() {
    let rules = load_rules("ipscan_rules.xml");
    let got: Vec<(u32, u32)> = rules.iter().map(|r| (r.id, r.level)).collect();
    assert_eq!(got, LEVELS);
    for r in &rules {
        assert!((100200..=100249).contains(&r.id), "{} outside the text rules' range", r.id);
        assert_eq!(r.if_sid.is_none(), r.id == 100200, "{}: only the base rule stands alone", r.id);
    }
    let json_rules = load_rules("ipscan_json_rules.xml");
    for r in &json_rules {
        assert!((100250..=100299).contains(&r.id), "{} outside the JSON rules' range", r.id);
    }
    assert_eq!(level_of(&json_rules, JSON_SCAN), 10);
    // Sweeps alert as scans do, in both files.
    assert_eq!(level_of(&json_rules, JSON_SWEEP), level_of(&json_rules, JSON_SCAN));
    assert_eq!(level_of(&rules, SWEEP), level_of(&rules, SCAN));
    // A distributed flood alerts as the other floods do, in both files.
    assert_eq!(level_of(&json_rules, JSON_DIST_FLOOD), level_of(&json_rules, JSON_FLOOD));
    assert_eq!(level_of(&rules, DIST_FLOOD), level_of(&rules, FLOOD));
    // A distributed or decoy scan alerts as the other scans do, in both files.
    assert_eq!(level_of(&json_rules, JSON_DIST_SCAN), level_of(&json_rules, JSON_SCAN));
    assert_eq!(level_of(&rules, DIST_SCAN), level_of(&rules, SCAN));
    // Rejected probes alert as the other scans do, in both files.
    assert_eq!(level_of(&json_rules, JSON_REJECTED), level_of(&json_rules, JSON_SCAN));
    assert_eq!(level_of(&rules, REJECTED), level_of(&rules, SCAN));
}

#[test]
fn ossec_quiet_lines_never_alert() {
    let decoders = load_decoders();
    let rules = load_rules("ipscan_rules.xml");
    for msg in QUIET {
        check_quiet(&decoders, &rules, msg);
    }
    // Other programs' lines are left to their own decoders.
    for line in [
        "Nov 14 18:09:08 victim sshd[1]: Failed password for root from 10.0.0.1 port 22 ssh2",
        "Nov 14 18:09:08 victim kernel: TCP: request_sock_TCP: Possible SYN flooding on port 80.",
        "Nov 14 18:09:08 victim nmap: SYN scan detected [ports 1] from 10.0.0.1 [port 1]",
    ] {
        assert!(decode(&decoders, line).1.is_none(), "{line:?} claimed by ipscan's decoders");
    }
}

/// An alerting line built by ipscan's own formatters, with what it must decode to.
struct Form {
    msg: String,
    /// None for a distributed flood's or scan's lines (see [`Golden::srcip`]).
    srcip: Option<&'static str>,
    dstip: Option<&'static str>,
    extra: Option<&'static str>,
    extra_file: Option<&'static str>,
    ports: Option<(&'static str, &'static str)>,
    rule: u32,
}

/// Every line form ipscan writes (ipscan::log::format and ipscan::log::lines), IPv4 and IPv6, with and without
/// log_dest: those that alert, and those that must not. A new PacketLine fails to compile here until it has
/// its expectation.
fn every_form() -> (Vec<Form>, Vec<String>) {
    use ipscan::log::{
        format::{self, Detected},
        lines::{self, IcmpNames},
        resolve::Plain,
    };
    use ipscan_common::{
        DETECTIONS, Detection, FAMILY_V4, FAMILY_V6, PacketLine, PacketSummary,
        packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, ip_flags},
    };

    let mut alerts = Vec::new();
    let mut quiet = Vec::new();
    let no_services = |_: u16, _: &str| None;
    for (src, dst) in [("10.10.150.1", "10.10.150.2"), ("2001:db8::1", "2001:db8::2")] {
        let (src_ip, dst_ip): (IpAddr, IpAddr) = (src.parse().expect("src"), dst.parse().expect("dst"));
        let bytes = |a: IpAddr| match a {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                b
            }
            IpAddr::V6(a) => a.octets(),
        };
        let family = if src_ip.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 };
        // ipscan's own lines: the source, and the detection's name where the line has one.
        let own = |msg: String, extra: Option<&'static str>, rule: u32| Form {
            msg,
            srcip: Some(src),
            dstip: None,
            extra,
            extra_file: extra,
            ports: None,
            rule,
        };
        for d in DETECTIONS {
            // A distributed flood or scan never blocks (the kernel blocks no per-target detection): no such
            // lines.
            if d.per_target() {
                continue;
            }
            let name = d.names().log_name;
            for (secs, offence) in [(60, None), (3600, None), (14400, Some(2))] {
                // A repeat offender's offence stays in the extra data (`block ... escalate`).
                let extra: &'static str = match offence {
                    Some(n) => String::leak(format!("{name}, offence {n}")),
                    None => name,
                };
                alerts.push(own(format::blocked(src, secs, d, offence), Some(extra), BLOCKED));
                alerts.push(own(format::would_block(src, secs, d, offence), Some(extra), WOULD_BLOCK));
            }
            alerts.push(own(format::not_blocked(src, d), None, NOT_BLOCKED));
        }
        let why = "crowdsec: ipscan/syn_scan";
        alerts.push(own(format::blocked_for(src, 14399, why), Some(why), BLOCKED));
        alerts.push(own(format::would_block_for(src, 14399, why), Some(why), WOULD_BLOCK));
        alerts.push(own(format::unblocked(src, 12, 480), None, UNBLOCKED));
        alerts.push(own(format::would_unblock(src, 12, 480), None, WOULD_UNBLOCK));
        quiet.push(lines::rate_limited(src, 7));

        // Distributed floods, at the family's target (with log_dest or without: their lines always name
        // it, and never a source): each protocol, its ports (none for ICMP; one, two, a full list), the
        // source counts that read exactly (up to 28), "about N" and "over 5000", and the ends with and
        // without their sources.
        let flood_form = |msg: String, rule: u32| Form {
            msg,
            srcip: None,
            dstip: Some(dst),
            extra: Some(DIST_FLOOD_NAME),
            extra_file: Some(DIST_FLOOD_NAME),
            ports: None,
            rule,
        };
        let many: Vec<u16> = (1..=8).collect();
        for proto in ["TCP", "UDP", "ICMP"] {
            let port_lists: &[(&[u16], bool)] =
                if proto == "ICMP" { &[(&[], false)] } else { &[(&[53], false), (&[80, 443], false), (&many, true)] };
            for &(ports, ports_full) in port_lists {
                for distinct in [1, 20, 28, 29, 300, 512, 1020, 1021, 1023] {
                    for rate in [1, 48000, 2_500_000] {
                        let f = format::Flood { proto, target: dst, ports, ports_full, distinct, rate };
                        alerts.push(flood_form(format::flood_detected(&f), DIST_FLOOD));
                    }
                }
            }
            for distinct in [None, Some(20), Some(300), Some(1023)] {
                for (packets, bytes) in [(0, 0), (2000, 56000), (u64::MAX, u64::MAX)] {
                    alerts.push(flood_form(format::flood_expired(proto, dst, packets, bytes, distinct), EXPIRED));
                }
            }
        }

        // Distributed and decoy scans, at the family's target (their lines always name it, and never decode a
        // source): one port, a few, a full list; 3, 4 and 5 or more sources, all named, some, or none known;
        // and their ends.
        let spread_form = |msg: String, name: &'static str, rule: u32| Form {
            msg,
            srcip: None,
            dstip: Some(dst),
            extra: Some(name),
            extra_file: Some(name),
            ports: None,
            rule,
        };
        let named: Vec<IpAddr> = (1..=5u8)
            .map(|i| match src_ip {
                IpAddr::V4(_) => IpAddr::from([198, 19, i, i]),
                IpAddr::V6(_) => IpAddr::from([0x2001, 0xdb8, 9, 0, 0, 0, 0, u16::from(i)]),
            })
            .collect();
        let fifteen: Vec<u16> = (1..=15).collect();
        for (ports, ports_full) in [(&[80u16][..], false), (&[22, 80, 443][..], false), (&fifteen[..10], true)] {
            for sources in [3u8, 4, 5] {
                let known = usize::from(sources);
                for named in [&named[..known], &named[..2], &named[..1], &[][..]] {
                    for decoy in [false, true] {
                        let d = format::SpreadScan { target: dst, ports, ports_full, sources, named, decoy };
                        let name = if decoy { DECOY_SCAN_NAME } else { DIST_SCAN_NAME };
                        alerts.push(spread_form(format::spread_scan_detected(&d), name, DIST_SCAN));
                    }
                }
            }
        }
        for (packets, bytes) in [(0, 0), (57, 1368), (u64::MAX, u64::MAX)] {
            alerts.push(spread_form(format::spread_scan_expired(dst, packets, bytes), DIST_SCAN_NAME, EXPIRED));
        }

        // The hosts a sweep names, of the source's family.
        let swept: Vec<IpAddr> = (1..=8u8)
            .map(|i| match src_ip {
                IpAddr::V4(_) => IpAddr::from([10, 10, 151, i]),
                IpAddr::V6(_) => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 1, u16::from(i)]),
            })
            .collect();
        for dest in [None, Some(dst)] {
            for d in DETECTIONS {
                let name = d.names().log_name;
                let rule = match d {
                    Detection::PortScan
                    | Detection::SynScan
                    | Detection::FinScan
                    | Detection::NullScan
                    | Detection::XmasScan
                    | Detection::UdpScan
                    | Detection::UdpFlood => SCAN,
                    Detection::PingFlood | Detection::Smurf => FLOOD,
                    Detection::Tripwire => TRIPWIRE,
                    Detection::TcpSweep | Detection::UdpSweep | Detection::PingSweep => SWEEP,
                    Detection::Rejected => REJECTED,
                    // Their lines are not format::detected's nor format::expired's, but the flood and spread
                    // scan formatters' (above).
                    Detection::DistFlood | Detection::DistScan => continue,
                };
                // Rejected probes are kept per source and protocol: their lines take the protocol (TCP or UDP)
                // from the key.
                let protos: &[&str] = if rule == REJECTED { &["TCP", "UDP"] } else { &[d.names().proto] };
                // A sweep has many destinations and names none, with log_dest too: its detection line leaves
                // out the one it is given, and the daemon gives its expiry none.
                let sweep = rule == SWEEP;
                let shown = if sweep { None } else { dest };
                let form = |msg| Form {
                    msg,
                    srcip: Some(src),
                    dstip: shown,
                    extra: Some(name),
                    extra_file: Some(name),
                    ports: None,
                    rule,
                };
                // One port each, and full lists.
                let ten: Vec<u16> = (1..=10).collect();
                if sweep {
                    // The ports swept (a ping sweep has none) and no source ports; eight hosts named of ten,
                    // three of three, two of ten, none known of ten.
                    let swept_ports: &[(&[u16], bool)] = match d {
                        Detection::PingSweep => &[(&[], false)],
                        _ => &[(&[22], false), (&ten, true)],
                    };
                    for &(dports, full) in swept_ports {
                        for (count, hosts) in [(10, &swept[..]), (3, &swept[..3]), (10, &swept[..2]), (10, &[][..])] {
                            let det = Detected {
                                detection: d,
                                source: src,
                                dest,
                                dports,
                                dports_full: full,
                                sports: &[],
                                sports_full: false,
                                hosts: Some((count, hosts)),
                            };
                            alerts.push(form(format::detected(&det)));
                        }
                    }
                } else {
                    for (dports, sports, full) in [(&[22u16][..], &[40000u16][..], false), (&ten[..], &ten[..5], true)]
                    {
                        let det = Detected {
                            detection: d,
                            source: src,
                            dest,
                            dports,
                            dports_full: full,
                            sports,
                            sports_full: full,
                            hosts: None,
                        };
                        if rule == REJECTED {
                            for proto in protos {
                                alerts.push(form(format::detected_as(proto, &det)));
                            }
                        } else {
                            alerts.push(form(format::detected(&det)));
                        }
                    }
                }
                if rule == REJECTED {
                    // Its end counts the probes rejected.
                    for proto in protos {
                        for rejects in [0, 12, u64::MAX] {
                            let msg = format::rejected_expired(proto, name, src, shown, rejects);
                            alerts.push(Form { rule: EXPIRED, ..form(msg) });
                        }
                    }
                } else {
                    alerts.push(Form { rule: EXPIRED, ..form(format::expired(d, src, shown, 1678, 47092)) });
                    if matches!(d, Detection::PortScan | Detection::UdpScan) {
                        // Under `counting confirmed`, the port scans' ends count the host's rejects.
                        let msg = format::rejected_expired(d.names().proto, name, src, shown, 31);
                        alerts.push(Form { rule: EXPIRED, ..form(msg) });
                    }
                }
            }

            let summary = |proto: u8| PacketSummary {
                family,
                proto,
                src: bytes(src_ip),
                dst: bytes(dst_ip),
                ttl: 64,
                sport: 1234,
                dport: 80,
                ip_payload_len: 64,
                ..Default::default()
            };
            let icmp = if family == FAMILY_V4 { PROTO_ICMP } else { PROTO_ICMPV6 };
            let line = |l: PacketLine, p: &PacketSummary| {
                let names = IcmpNames::of(p, &mut Plain);
                lines::packet_line(l, p, src, dest, &names, &no_services)
            };
            for v in 0..=u8::MAX {
                let Some(l) = PacketLine::from_u8(v) else { continue };
                let frag = |kind| {
                    let msg = line(l, &summary(PROTO_UDP)).expect("a fragment line");
                    Form {
                        msg,
                        srcip: Some(src),
                        dstip: dest,
                        extra: Some(kind),
                        extra_file: None,
                        ports: None,
                        rule: FRAGMENT,
                    }
                };
                match l {
                    PacketLine::TcpAttempt => quiet.push(line(l, &summary(PROTO_TCP)).expect("a line")),
                    PacketLine::UdpDgram => quiet.push(line(l, &summary(PROTO_UDP)).expect("a line")),
                    PacketLine::Short | PacketLine::BadChecksum => {
                        quiet.push(line(l, &summary(PROTO_TCP)).expect("a line"))
                    }
                    // Every ICMP type, quoting a UDP packet (which only the errors show).
                    PacketLine::Icmp => {
                        for t in 0..=u8::MAX {
                            let mut p = PacketSummary {
                                icmp_type: t,
                                icmp_code: 1,
                                icmp_rest: [10, 10, 150, 254],
                                ..summary(icmp)
                            };
                            p.inner_proto = PROTO_UDP;
                            p.inner_sport = 40000;
                            p.inner_dport = 33434;
                            p.inner_dst = p.src;
                            p.ip_flags |= ip_flags::INNER_PORTS;
                            quiet.push(line(l, &p).expect("an ICMP line"));
                        }
                    }
                    PacketLine::Hardened => {
                        assert_eq!(line(l, &summary(PROTO_TCP)), None, "hardening drops are not logged")
                    }
                    PacketLine::Bogus => alerts.push(Form {
                        msg: line(l, &summary(PROTO_TCP)).expect("a bogus-flags line"),
                        srcip: Some(src),
                        dstip: dest,
                        extra: None,
                        extra_file: None,
                        ports: Some(("1234", "80")),
                        rule: BOGUS,
                    }),
                    PacketLine::Traceroute => {
                        for proto in [PROTO_UDP, PROTO_TCP, icmp] {
                            let msg = line(l, &summary(proto)).expect("a traceroute line");
                            alerts.push(Form {
                                msg,
                                srcip: Some(src),
                                dstip: dest,
                                extra: None,
                                extra_file: None,
                                ports: None,
                                rule: TRACEROUTE,
                            });
                        }
                    }
                    PacketLine::FragOversized => alerts.push(frag("Oversized")),
                    PacketLine::FragOverlap => alerts.push(frag("Overlapping")),
                    PacketLine::FragDuplicate => alerts.push(frag("Duplicate")),
                    PacketLine::FragTiny => alerts.push(frag("Tiny")),
                }
            }
        }
    }
    (alerts, quiet)
}

#[test]
fn ossec_every_form_ipscan_writes() {
    let decoders = load_decoders();
    let rules = load_rules("ipscan_rules.xml");
    let (alerts, quiet) = every_form();
    for f in &alerts {
        let gl = Golden {
            msg: &f.msg,
            srcip: f.srcip,
            dstip: f.dstip,
            extra: f.extra,
            extra_file: f.extra_file,
            ports: f.ports,
            rule: f.rule,
        };
        check_alert(&decoders, &rules, &gl);
    }
    for msg in &quiet {
        check_quiet(&decoders, &rules, msg);
    }
    // Each alerting rule is reached by some form, in both address families and with and without log_dest
    // (ipscan's own lines and sweeps name no destination either way, distributed floods and scans always their
    // target).
    for (rule, _) in &LEVELS[1..] {
        for v6 in [false, true] {
            for dest in [false, true] {
                let reached = alerts.iter().any(|f| {
                    f.rule == *rule
                        && f.srcip.or(f.dstip).is_some_and(|a| a.contains(':')) == v6
                        && (f.dstip.is_some() == dest
                            || matches!(
                                *rule,
                                BLOCKED
                                    | UNBLOCKED
                                    | NOT_BLOCKED
                                    | WOULD_BLOCK
                                    | WOULD_UNBLOCK
                                    | SWEEP
                                    | DIST_FLOOD
                                    | DIST_SCAN
                            ))
                });
                assert!(reached, "no form reaches {rule} (IPv6 {v6}, log_dest {dest})");
            }
        }
    }
    assert!(quiet.len() > 1000, "{}", quiet.len());
}

#[test]
fn ossec_predecoder_model_matches_os_cleanmsg() {
    // Cross-checks of the model itself, on shapes whose OS_CleanMSG outcome is known from its source.
    let p = predecode("Nov 14 18:09:08 victim ipscan[812]: TCP: x");
    assert_eq!((p.hostname, p.program, p.log), (Some("victim"), Some("ipscan"), "TCP: x"));
    let p = predecode("Nov 14 18:09:08 TCP: port scan detected");
    assert_eq!((p.hostname, p.program, p.log), (None, Some("TCP"), "port scan detected"));
    let p = predecode("Nov 14 18:09:08 ICMP/UDP: smurf attack detected from 1.2.3.0");
    assert_eq!(p.program, Some("ICMP/UDP"));
    let p = predecode("Nov 14 18:09:08 Blocked 2001:db8::1 for 60 s (SYN scan)");
    assert_eq!((p.hostname, p.program, p.log), (Some("Blocked"), None, "2001:db8::1 for 60 s (SYN scan)"));
    // As real OSSEC 4.2's ossec-logtest printed them (it shows the manager's own name as the hostname of the
    // "program: message" form, where the model has none).
    let p = predecode("Nov 14 18:09:08 Tiny IP fragment to 10.10.150.2 from 10.10.150.1");
    assert_eq!((p.hostname, p.program, p.log), (Some("Tiny"), None, "IP fragment to 10.10.150.2 from 10.10.150.1"));
    let p = predecode("Nov  4 08:01:02 IP packet with invalid checksum from 10.10.150.1");
    assert_eq!((p.hostname, p.program, p.log), (Some("IP"), None, "packet with invalid checksum from 10.10.150.1"));
    let p = predecode("Nov 14 18:09:08 ipscan: left out 7 per-packet lines from 2001:db8::1 (rate limit)");
    assert_eq!((p.program, p.log), (Some("ipscan"), "left out 7 per-packet lines from 2001:db8::1 (rate limit)"));
}

#[test]
fn ossec_regex_translation_refuses_what_it_does_not_model() {
    for bad in [r"a+", r"(a(b))", r"\x", r"\>", r"a^b", r"(a", r"a)"] {
        assert!(translate(bad, Repeat::Greedy).is_err(), "{bad:?} accepted");
    }
    let re = OsRegex::new(r"^(\w+) \d+ \(x\)$|from (\S+)$");
    assert_eq!(re.exec("Word 12 (X)"), Some(vec!["Word".to_owned()]));
    assert_eq!(re.exec("a from b"), Some(vec!["b".to_owned()]));
    assert_eq!(re.exec("a from b c"), None);
    assert!(os_match("^ipscan$|^iplog$", "IPLOG") && !os_match("^ipscan$", "ipscand"));
    // OSSEC 3.3+'s conversion: lazy repeats, but greedy for one that ends its alternative (not before `$`).
    assert_eq!(translate(r"(\S+) x (\d+)", Repeat::Ossec).as_deref(), Ok("([^ ]+?) x ([0-9]+)"));
    assert_eq!(translate(r"(\S+) x (\d+)$", Repeat::Ossec).as_deref(), Ok("([^ ]+?) x ([0-9]+?)$"));
    assert_eq!(translate(r"\w+ \S*", Repeat::Lazy).as_deref(), Ok("[A-Za-z0-9@_-]+? [^ ]*?"));
    // Where the engines part: PCRE2 takes the leftmost match of any alternative, os_regex the first alternative
    // that matches anywhere; and a trailing greedy repeat takes more than a lazy one.
    let [in_order, _, ossec] = OsRegex::new(r"b(\w+)|a(\w+)").results("a1 b2");
    assert_eq!((in_order, ossec), (Some(vec!["2".to_owned()]), Some(vec!["1".to_owned()])));
    let [greedy, lazy, ossec] = OsRegex::new(r"x(\d+)").results("x123");
    assert_eq!((greedy.as_deref(), lazy.as_deref()), (Some(&["123".to_owned()][..]), Some(&["1".to_owned()][..])));
    assert_eq!(ossec, greedy);
}

// ---------------------------------------------------------------------------------------------
// JSON rules on ipscan's own JSON records
// ---------------------------------------------------------------------------------------------

/// One JSON line's fields as Wazuh's JSON decoder gives them to <field> (arrays and numbers as their JSON
/// text), after checking that it lands on exactly `want`.
fn check_json_line(rules: &[Rule], line: &str, want: u32) -> BTreeMap<String, String> {
    let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
    let fields: BTreeMap<String, String> = value
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    let input = RuleInput { decoded_as: "json", log: line, fields: &fields };
    assert_eq!(leaf_rules(rules, &input), [want], "{line}");
    fields
}

/// A distributed flood at `target` (`proto` a PROTO_* constant, `dports` the ports hit, `distinct` the kernel's
/// count of sources) as the daemon reports it: the tracker's line for the kernel's detection event, its line for
/// the kernel's report of the mode's end, and a sweep's end of a second mode whose state was gone (no sources),
/// each written through the daemon's own output (ipscan::log::output) to a log file and a JSON-lines file.
/// Returns the log file's lines, stamped as ipscan writes them, and the JSON lines.
fn daemon_flood(target: IpAddr, proto: u8, dports: &[u16], distinct: u32) -> (Vec<String>, Vec<String>) {
    use ipscan_common::{Detection, Event as KernelEvent, SourceKey};

    let (addr, family) = addr_family(target);
    let forged = if target.is_ipv4() {
        IpAddr::from([198, 19, 7, 7])
    } else {
        IpAddr::from([0x2001, 0xdb8, 0x19, 0, 0, 0, 7, 7])
    };
    // The key is the target's, with the probe's protocol.
    let key = SourceKey { _pad: [proto, 0], ..SourceKey::new(addr, family, Detection::DistFlood) };
    let base = detected(key, proto, (addr_bytes(forged), 40000), (addr, dports.first().copied().unwrap_or(0)), 28, 1);
    let mut ev = KernelEvent {
        rate_start_ns: base.ts_ns - 1_000_000_000,
        rate_count: 48000,
        packets: 48000,
        bytes: 48000 * 28,
        distinct,
        ..base
    };
    ev.nsports = fill(&mut ev.sports, dports);
    through_daemon(&ev)
}

/// An address as the kernel's events hold it: IPv4 in the first four bytes.
fn addr_bytes(a: IpAddr) -> [u8; 16] {
    addr_family(a).0
}

/// [`addr_bytes`], and the address's family (FAMILY_V4, FAMILY_V6).
fn addr_family(a: IpAddr) -> ([u8; 16], u8) {
    match a {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, ipscan_common::FAMILY_V4)
        }
        IpAddr::V6(a) => (a.octets(), ipscan_common::FAMILY_V6),
    }
}

/// A kernel's detection event for `key` at the tests' clock (its window opened `window_s` seconds
/// before): the packet of `proto` from `src` to `dst` (address and port each), of `payload` IP
/// payload bytes, counted once. The callers add their counts and lists.
fn detected(
    key: ipscan_common::SourceKey,
    proto: u8,
    (src, sport): ([u8; 16], u16),
    (dst, dport): ([u8; 16], u16),
    payload: u32,
    window_s: u64,
) -> ipscan_common::Event {
    use ipscan_common::{Event as KernelEvent, EventKind, PacketSummary};

    let second = 1_000_000_000u64;
    let at = 1_763_143_748 * second;
    KernelEvent {
        kind: EventKind::Detected as u8,
        detection: key.kind,
        ts_ns: at,
        mode_since_ns: at,
        first_ns: at - window_s * second,
        packets: 1,
        bytes: u64::from(payload),
        key,
        packet: PacketSummary {
            family: key.family,
            proto,
            src,
            dst,
            sport,
            dport,
            ttl: 64,
            ip_payload_len: payload,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Copies `ports` into an event's list `slots`, as many as it holds; how many.
fn fill(slots: &mut [u16], ports: &[u16]) -> u8 {
    for (slot, port) in slots.iter_mut().zip(ports) {
        *slot = *port;
    }
    ports.len().min(slots.len()) as u8
}

/// A distributed or decoy scan of `target`'s `dports` by `sources` sources (five meaning five or more), of which
/// `named` are known, as the daemon reports it (see [`daemon_flood`]): with `decoy` each source probed each port
/// (nmap -D), without it the ports were shared out (one probe each).
fn daemon_spread(
    target: IpAddr,
    dports: &[u16],
    sources: u8,
    named: &[IpAddr],
    decoy: bool,
) -> (Vec<String>, Vec<String>) {
    use ipscan_common::{Detection, Event as KernelEvent, SourceKey, packet::PROTO_TCP};

    let (addr, family) = addr_family(target);
    let key = SourceKey::new(addr, family, Detection::DistScan);
    let ports = dports.len() as u32;
    let packets = if decoy { u64::from(ports) * u64::from(sources) } else { u64::from(ports) };
    let src = named.first().map_or(addr, |a| addr_bytes(*a));
    let base = detected(key, PROTO_TCP, (src, 40000), (addr, dports.first().copied().unwrap_or(0)), 40, 10);
    let mut ev = KernelEvent { packets, bytes: packets * 40, distinct: ports, nsports: sources, ..base };
    ev.nports = fill(&mut ev.ports, dports);
    for (i, (slot, host)) in ev.hosts.iter_mut().zip(named).enumerate() {
        let b = addr_bytes(*host);
        for (w, chunk) in slot.iter_mut().zip(b.chunks_exact(4)) {
            *w = u32::from_ne_bytes(chunk.try_into().expect("four bytes"));
        }
        ev.hosts_known |= 1 << i;
    }
    through_daemon(&ev)
}

/// Rejected probes from `source` to `dest` (`proto` PROTO_TCP or PROTO_UDP): `dports` the ports refused, `sports` the
/// probes' source ports, as the kernel reports them (the egress program turns each reset or unreachable back into
/// the probe it refuses: the prober is the source, this host the destination; the key holds the protocol), through
/// the daemon (see [`through_daemon`], whose tracker has log_dest on).
fn daemon_rejected(
    source: IpAddr,
    dest: IpAddr,
    proto: u8,
    dports: &[u16],
    sports: &[u16],
) -> (Vec<String>, Vec<String>) {
    use ipscan_common::{Detection, Event as KernelEvent, SourceKey};

    let (addr, family) = addr_family(source);
    let key = SourceKey { _pad: [proto, 0], ..SourceKey::new(addr, family, Detection::Rejected) };
    let rejects = dports.len() as u64;
    let (sport, dport) = (sports.first().copied().unwrap_or(0), dports.last().copied().unwrap_or(0));
    let base = detected(key, proto, (addr, sport), (addr_bytes(dest), dport), 40, 2);
    let mut ev = KernelEvent { packets: rejects, bytes: rejects * 40, distinct: dports.len() as u32, ..base };
    ev.nports = fill(&mut ev.ports, dports);
    ev.nsports = fill(&mut ev.sports, sports);
    through_daemon(&ev)
}

/// A kernel's detection event through the daemon: the tracker's line for it, its line for the kernel's report of
/// the mode's end, and a sweep's end of a second mode whose state was gone, each written through the daemon's own
/// output (ipscan::log::output) to a log file and a JSON-lines file. Returns the log file's lines, stamped as
/// ipscan writes them, and the JSON lines.
fn through_daemon(ev: &ipscan_common::Event) -> (Vec<String>, Vec<String>) {
    use ipscan::{
        clock::WallClock,
        log::{output::Output, resolve::Plain, sink::Sink, tracker::Tracker},
    };
    use ipscan_common::{Config, Event as KernelEvent, EventKind};

    let dir = ipscan_tests::TempDir::new();
    let ev = *ev;
    let (at, second) = (ev.ts_ns, 1_000_000_000u64);
    let mut tracker = Tracker::new(true);
    let mut lines = Vec::new();
    lines.push(tracker.on_event(&ev, &mut Plain).expect("the detection's line"));
    let end = KernelEvent { kind: EventKind::Expired as u8, ts_ns: at + 10 * second, packets: 50000, ..ev };
    lines.push(tracker.on_event(&end, &mut Plain).expect("the kernel's end's line"));
    let again = KernelEvent { ts_ns: at + 20 * second, mode_since_ns: at + 20 * second, ..ev };
    tracker.on_event(&again, &mut Plain).expect("the second mode's line");
    // The kernel's state is gone (evicted): the end names no sources.
    lines.extend(tracker.sweep(at + 60 * second, &Config::default(), &mut Plain, |_| None, |_| {}));
    let (log, json_log) = (dir.join("ipscan.log"), dir.join("ipscan.json"));
    let mut out = Output {
        sink: Sink::file(&log).expect("log file"),
        json: Some(std::fs::File::create(&json_log).expect("JSON file")),
        clock: WallClock::epoch(),
    };
    for line in &lines {
        out.line(line).expect("written");
    }
    drop(out);
    let read =
        |p: &Path| -> Vec<String> { std::fs::read_to_string(p).expect("read").lines().map(str::to_owned).collect() };
    (read(&log), read(&json_log))
}

#[test]
fn ossec_json_records_hit_their_rules() {
    let rules = load_rules("ipscan_json_rules.xml");
    let t = FixedOffset::east_opt(0)
        .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 14, 18, 9, 8).single())
        .expect("valid time");
    let v4: IpAddr = "10.10.150.1".parse().expect("v4");
    let v6: IpAddr = "2001:db8::1".parse().expect("v6");
    let rec = |event, detection: Option<&str>, src| JsonRecord {
        detection: detection.map(str::to_owned),
        ..JsonRecord::new(t, event, src, String::from("line"))
    };
    let cases = [
        (rec(Event::Detected, Some("SYN scan"), v4), 100251),
        (rec(Event::Detected, Some("port scan"), v6), 100251),
        (rec(Event::Detected, Some("scan/flood"), v4), 100251),
        (rec(Event::Detected, Some("ping flood"), v4), 100252),
        (rec(Event::Detected, Some("smurf attack"), v6), 100252),
        (rec(Event::Packet, Some(json::packet::BOGUS_TCP_FLAGS), v6), 100253),
        (rec(Event::Packet, Some(json::packet::TRACEROUTE), v4), 100254),
        (rec(Event::Packet, Some(json::packet::OVERLAPPING_FRAGMENTS), v4), 100255),
        (rec(Event::Packet, None, v4), 100250),
        (rec(Event::Expired, Some("SYN scan"), v4), 100256),
        (rec(Event::Blocked, Some("SYN scan"), v6), 100257),
        (rec(Event::Unblocked, None, v6), 100258),
        (rec(Event::NotBlocked, Some("SYN scan"), v4), 100259),
        (rec(Event::WouldBlock, Some("SYN scan"), v4), 100260),
        (rec(Event::WouldUnblock, None, v6), 100261),
        (rec(Event::Detected, Some("tripwire"), v4), 100262),
        (rec(Event::Detected, Some("SYN sweep"), v4), JSON_SWEEP),
        (rec(Event::Detected, Some("sweep"), v6), JSON_SWEEP),
        (rec(Event::Detected, Some("ping sweep"), v6), JSON_SWEEP),
        (rec(Event::Expired, Some("ping sweep"), v4), 100256),
        (rec(Event::Blocked, Some("sweep"), v4), 100257),
        (rec(Event::Detected, Some(REJECTED_NAME), v4), JSON_REJECTED),
        (rec(Event::Detected, Some(REJECTED_NAME), v6), JSON_REJECTED),
        (rec(Event::Expired, Some(REJECTED_NAME), v6), 100256),
        (rec(Event::Blocked, Some(REJECTED_NAME), v4), 100257),
        (rec(Event::WouldBlock, Some(REJECTED_NAME), v6), 100260),
    ];
    let check = |record: &JsonRecord, want: u32| -> BTreeMap<String, String> {
        let line = json::to_line(record);
        let fields = check_json_line(&rules, &line, want);
        // No srcip field at all where the record has none (a distributed flood's), rather than an empty one.
        assert_eq!(fields.get("srcip").cloned(), record.srcip.map(|a| a.to_string()), "{line}");
        fields
    };
    for (record, want) in &cases {
        check(record, *want);
    }
    // Every detection's records as the daemon builds them (a sweep's with its hosts, and no destination).
    use ipscan_common::{
        DETECTIONS, Detection,
        packet::{PROTO_ICMP, PROTO_UDP},
    };
    for d in DETECTIONS {
        let want = match d {
            Detection::PortScan
            | Detection::SynScan
            | Detection::FinScan
            | Detection::NullScan
            | Detection::XmasScan
            | Detection::UdpScan
            | Detection::UdpFlood => JSON_SCAN,
            Detection::PingFlood | Detection::Smurf => JSON_FLOOD,
            Detection::Tripwire => 100262,
            Detection::TcpSweep | Detection::UdpSweep | Detection::PingSweep => JSON_SWEEP,
            Detection::DistFlood => JSON_DIST_FLOOD,
            Detection::DistScan => JSON_DIST_SCAN,
            // Its records as the daemon writes them are checked in ossec_rejected_probes_through_the_daemon.
            Detection::Rejected => JSON_REJECTED,
        };
        if d == Detection::DistScan {
            // Its records as the daemon writes them: the target as dstip, no srcip (the sources it names are in
            // srchosts, not for blocking); never blocked.
            for (target, named) in
                [("198.18.0.2", ["198.19.5.5", "198.18.0.1"]), ("2001:db8::2", ["2001:db8:9::1", "2001:db8:9::2"])]
            {
                let target: IpAddr = target.parse().expect("target");
                let named: Vec<IpAddr> = named.iter().map(|h| h.parse().expect("source")).collect();
                for decoy in [true, false] {
                    let (_, records) = daemon_spread(target, &(1..=15).collect::<Vec<u16>>(), 4, &named, decoy);
                    assert_eq!(records.len(), 3, "a detection and two ends: {records:?}");
                    for (i, line) in records.iter().enumerate() {
                        let fields = check_json_line(&rules, line, if i == 0 { want } else { 100256 });
                        assert!(!fields.contains_key("srcip"), "{line}");
                        assert_eq!(fields.get("dstip"), Some(&target.to_string()), "{line}");
                        assert_eq!(fields.get("detection").map(String::as_str), Some(DIST_SCAN_NAME), "{line}");
                        if i == 0 {
                            let ports = "[1,2,3,4,5,6,7,8,9,10]";
                            assert_eq!(fields.get("dports").map(String::as_str), Some(ports), "{line}");
                            assert_eq!(fields.get("sources").map(String::as_str), Some("4"), "{line}");
                            assert_eq!(fields.get("decoy"), Some(&decoy.to_string()), "{line}");
                            let listed = format!("[\"{}\",\"{}\"]", named[0], named[1]);
                            assert_eq!(fields.get("srchosts"), Some(&listed), "{line}");
                        }
                    }
                }
            }
            continue;
        }
        if d.per_target() {
            // Its records as the daemon writes them: the target as dstip, no srcip; never blocked.
            for (target, proto, dports) in [("198.18.0.2", PROTO_UDP, &[53u16][..]), ("2001:db8::2", PROTO_ICMP, &[])] {
                let target: IpAddr = target.parse().expect("target");
                let (_, records) = daemon_flood(target, proto, dports, 300);
                assert_eq!(records.len(), 3, "a detection and two ends: {records:?}");
                for (i, line) in records.iter().enumerate() {
                    let fields = check_json_line(&rules, line, if i == 0 { want } else { 100256 });
                    assert!(!fields.contains_key("srcip"), "{line}");
                    assert_eq!(fields.get("dstip"), Some(&target.to_string()), "{line}");
                    if i == 0 {
                        let ports = if dports.is_empty() { "[]" } else { "[53]" };
                        assert_eq!(fields.get("dports").map(String::as_str), Some(ports), "{line}");
                        assert_eq!(fields.get("sources").map(String::as_str), Some("360"), "{line}");
                        assert_eq!(fields.get("rate").map(String::as_str), Some("48000"), "{line}");
                    }
                }
            }
            continue;
        }
        let sweep = want == JSON_SWEEP;
        for (src, named) in [(v4, ["198.18.1.1", "198.18.1.2"]), (v6, ["2001:db8::1:1", "2001:db8::1:2"])] {
            let source = src.to_string();
            let hosts: Vec<IpAddr> = named.iter().map(|h| h.parse().expect("host")).collect();
            let dports: &[u16] = if d == Detection::PingSweep { &[] } else { &[22, 80] };
            let det = ipscan::log::format::Detected {
                detection: d,
                source: &source,
                dest: None,
                dports,
                dports_full: false,
                sports: if sweep { &[] } else { &[40000] },
                sports_full: false,
                hosts: sweep.then_some((10, &hosts[..])),
            };
            let dst = (!sweep).then(|| "10.10.150.2".parse().expect("dst"));
            let fields = check(&JsonRecord::from_detected(t, &det, src, dst), want);
            if sweep {
                assert_eq!(fields.get("hosts").map(String::as_str), Some("10"), "{fields:?}");
                let listed = format!("[\"{}\",\"{}\"]", named[0], named[1]);
                assert_eq!(fields.get("dsthosts"), Some(&listed), "{fields:?}");
                assert!(!fields.contains_key("dstip"), "{fields:?}");
            }
            let name = d.names().log_name;
            check(&rec(Event::Expired, Some(name), src), 100256);
            check(&rec(Event::Blocked, Some(name), src), 100257);
            check(&rec(Event::WouldBlock, Some(name), src), 100260);
        }
    }
    // Another program's JSON is not ours.
    let other: BTreeMap<String, String> = [("program", "suricata"), ("event", "detected"), ("detection", "SYN scan")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(leaf_rules(&rules, &RuleInput { decoded_as: "json", log: "{}", fields: &other }).is_empty());
}

/// A distributed flood names no source: every line of one, golden, built by ipscan's formatter or written by the
/// daemon's own output (Tracker and Output, to a log file), decodes in every shape to its target as dstip and
/// never to a srcip, and lands on 100214 or, for its end, 100206; every JSON record of one has no srcip and lands
/// on 100264 or 100256; neither rule is one that the README suggests for active response, and the active
/// response refuses an alert without a srcip.
#[test]
fn ossec_distributed_floods_never_decode_a_srcip() {
    use ipscan_common::packet::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

    let decoders = load_decoders();
    let rules = load_rules("ipscan_rules.xml");
    let json_rules = load_rules("ipscan_json_rules.xml");
    let no_srcip = |line: &str, target: &str, want: u32| {
        let (pre, decoded) = decode(&decoders, line);
        let d = decoded.unwrap_or_else(|| panic!("{line:?} ({pre:?}) is not decoded"));
        assert!(!d.fields.contains_key("srcip"), "{line:?} decodes a srcip: {:?}", d.fields);
        assert_eq!(d.fields.get("dstip").map(String::as_str), Some(target), "{line:?}: {:?}", d.fields);
        assert_eq!(d.fields.get("extra_data").map(String::as_str), Some(DIST_FLOOD_NAME), "{line:?}");
        let input = RuleInput { decoded_as: &d.decoded_as, log: pre.log, fields: &d.fields };
        assert_eq!(leaf_rules(&rules, &input), [want], "{line:?}");
    };
    let mut seen = 0;
    let (alerts, _) = every_form();
    let golden = GOLDEN.iter().map(|gl| (gl.msg.to_owned(), gl.srcip, gl.dstip, gl.rule));
    for (msg, srcip, dstip, rule) in golden.chain(alerts.into_iter().map(|f| (f.msg, f.srcip, f.dstip, f.rule))) {
        if !msg.contains("distributed flood") {
            continue;
        }
        assert_eq!(srcip, None, "{msg}");
        let target = dstip.expect("a target");
        for (line, _) in shapes(&msg) {
            no_srcip(&line, target, rule);
            seen += 1;
        }
    }
    // Through the daemon: the log file's own lines (file mode, as written), and each line in the other shapes.
    for target in ["198.18.0.2", "2001:db8::2"] {
        let addr: IpAddr = target.parse().expect("target");
        for (proto, dports) in [(PROTO_TCP, &[80u16, 443][..]), (PROTO_UDP, &[53][..]), (PROTO_ICMP, &[][..])] {
            for distinct in [20, 300, 1023] {
                let (text, records) = daemon_flood(addr, proto, dports, distinct);
                assert_eq!(text.len(), 3, "{text:?}");
                for (i, line) in text.iter().enumerate() {
                    let want = if i == 0 { DIST_FLOOD } else { EXPIRED };
                    no_srcip(line, target, want);
                    let msg = line.get(16..).expect("a stamped line");
                    assert!(
                        msg.contains(&format!(
                            "distributed flood {}",
                            if i == 0 { "detected to" } else { "mode expired for" }
                        )),
                        "{line}"
                    );
                    for (shaped, _) in shapes(msg) {
                        no_srcip(&shaped, target, want);
                    }
                    seen += 1;
                }
                assert!(text[1].ends_with(" sources."), "the kernel's end names its sources: {}", text[1]);
                assert!(text[2].ends_with(" bytes)."), "the sweep's end after eviction does not: {}", text[2]);
                assert_eq!(records.len(), 3, "{records:?}");
                for (i, line) in records.iter().enumerate() {
                    let fields = check_json_line(&json_rules, line, if i == 0 { JSON_DIST_FLOOD } else { 100256 });
                    assert!(!fields.contains_key("srcip"), "{line}");
                    assert_eq!(fields.get("dstip").map(String::as_str), Some(target), "{line}");
                    assert_eq!(fields.get("message"), Some(&text[i][16..].to_owned()), "{line}");
                }
            }
        }
    }
    assert!(seen > 1000, "{seen}");
    // Not for active response: the README's <rules_id> never lists them (nor the other floods).
    let readme = read("README.md");
    let mut listed = 0;
    for ids in readme.split("<rules_id>").skip(1) {
        let ids = ids.split("</rules_id>").next().expect("closed");
        for id in [DIST_FLOOD, JSON_DIST_FLOOD, FLOOD, JSON_FLOOD] {
            assert!(!ids.split(',').any(|i| i.trim() == id.to_string()), "{id} in <rules_id>{ids}</rules_id>");
        }
        listed += 1;
    }
    assert!(listed >= 2, "the README's active-response examples");
    // And should one be listed anyway, the script finds no srcip in the alert (Wazuh puts the decoded fields in
    // "data": here only dstip and extra_data) and blocks nothing, not even the target.
    let ar = ArDir::new("w-dist-flood");
    let mut message = wazuh_message("add", "198.18.0.2", &[]);
    let alert = &mut message["parameters"]["alert"];
    alert["rule"]["id"] = serde_json::json!(DIST_FLOOD.to_string());
    alert["full_log"] = serde_json::json!(
        "Nov 14 18:09:08 victim ipscan[812]: UDP: distributed flood detected to 198.18.0.2 [port 53] from about \
         360 sources (48000 packets/s)"
    );
    alert["data"] = serde_json::json!({"dstip": "198.18.0.2", "extra_data": DIST_FLOOD_NAME});
    let out = run_wazuh(&ar, &message, None);
    assert!(!out.success, "an alert without srcip accepted");
    assert!(out.stdout.is_empty(), "handshake sent: {:?}", out.stdout);
    assert!(ar.calls().is_empty(), "{:?}", ar.calls());
    assert!(ar.log().contains("no source address"), "{}", ar.log());
}

/// The rules contrib/ossec/README.md's active-response examples block on (`<rules_id>`), and their JSON
/// counterparts (the README: "with JSON, block on 100251, 100263 ... and 100266").
fn active_response_rules() -> (Vec<u32>, Vec<u32>) {
    let readme = read("README.md");
    let mut text: Vec<u32> = Vec::new();
    for chunk in readme.split("<rules_id>").skip(1) {
        let ids = chunk.split("</rules_id>").next().expect("closed");
        // Only the XML examples' lists (the prose mentions `<rules_id>` too).
        if let Ok(ids) = ids.split(',').map(|i| i.trim().parse::<u32>()).collect::<Result<Vec<_>, _>>() {
            text.extend(ids);
        }
    }
    text.sort_unstable();
    text.dedup();
    assert_eq!(text, [SCAN, SWEEP, REJECTED], "the README's <rules_id>");
    (text, vec![JSON_SCAN, JSON_SWEEP, JSON_REJECTED])
}

/// A distributed or decoy scan names its target and up to five sources, which are decoys (forged, nmap -D) or
/// many: every line of one, golden, built by ipscan's formatter or written by the daemon's own output (Tracker
/// and Output, to a log file), decodes in every shape to its target as dstip, never to a srcip nor to any of the
/// sources it lists, and lands on 100215 or, for its end, 100206; none of the rules the README suggests for
/// active response (100201, 100213, 100216) holds for it, though 100201's old "scan detected " would have;
/// every JSON record of one has no srcip and lands on 100265 or 100256, and none of the JSON rules to block on
/// holds; 100215 and 100265 are in no <rules_id> and not in the "scan" group; and the active response refuses
/// such an alert.
#[test]
fn ossec_distributed_scans_never_decode_a_srcip() {
    let decoders = load_decoders();
    let rules = load_rules("ipscan_rules.xml");
    let json_rules = load_rules("ipscan_json_rules.xml");
    let (ar_rules, ar_json_rules) = active_response_rules();
    fn rule(rules: &[Rule], id: u32) -> &Rule {
        rules.iter().find(|r| r.id == id).expect("rule")
    }
    let (rules, json_rules) = (&rules[..], &json_rules[..]);
    let no_srcip = |line: &str, target: &str, name: &str, want: u32, listed: &[String]| {
        let (pre, decoded) = decode(&decoders, line);
        let d = decoded.unwrap_or_else(|| panic!("{line:?} ({pre:?}) is not decoded"));
        assert!(!d.fields.contains_key("srcip"), "{line:?} decodes a srcip: {:?}", d.fields);
        assert_eq!(d.fields.get("dstip").map(String::as_str), Some(target), "{line:?}: {:?}", d.fields);
        assert_eq!(d.fields.get("extra_data").map(String::as_str), Some(name), "{line:?}");
        assert_eq!(d.fields.len(), 2, "{line:?}: {:?}", d.fields);
        for source in listed {
            assert!(!d.fields.values().any(|v| v.contains(source.as_str())), "{line:?}: {source} in {:?}", d.fields);
        }
        let input = RuleInput { decoded_as: &d.decoded_as, log: pre.log, fields: &d.fields };
        assert_eq!(leaf_rules(rules, &input), [want], "{line:?}");
        for id in &ar_rules {
            assert!(!rule_holds(rules, rule(rules, *id), &input), "{line:?} holds for {id}, an active response's");
        }
        if want == DIST_SCAN {
            // What 100201 matched before it named its scans.
            assert!(os_match("scan detected ", pre.log), "{line:?}");
        }
    };
    // The sources a line lists: "[a,b,...]" after "sources ".
    let listed_in = |msg: &str| -> Vec<String> {
        msg.split_once("sources [")
            .map(|(_, l)| l.trim_end_matches(']').split(',').filter(|s| *s != "...").map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut seen = 0;
    let (alerts, _) = every_form();
    let golden = GOLDEN.iter().map(|gl| (gl.msg.to_owned(), gl.srcip, gl.dstip, gl.extra, gl.rule));
    let mut forms = 0;
    for (msg, srcip, dstip, extra, want) in
        golden.chain(alerts.into_iter().map(|f| (f.msg, f.srcip, f.dstip, f.extra, f.rule)))
    {
        if !msg.contains("distributed scan ") && !msg.contains("decoy scan ") {
            continue;
        }
        assert_eq!(srcip, None, "{msg}");
        let target = dstip.expect("a target");
        let name = extra.expect("a name");
        let listed = listed_in(&msg);
        for (line, _) in shapes(&msg) {
            no_srcip(&line, target, name, want, &listed);
            seen += 1;
        }
        forms += 1;
    }
    assert!(forms > 100, "{forms}");
    // Through the daemon: the log file's own lines (file mode, as written), and each line in the other shapes.
    let ports: Vec<u16> = (1..=15).collect();
    for (target, hosts) in [
        ("198.18.0.2", ["198.19.5.5", "198.19.6.6", "198.19.7.7", "198.19.8.8", "198.18.0.1"]),
        ("2001:db8::2", ["2001:db8:9::1", "2001:db8:9::2", "2001:db8:9::3", "2001:db8:9::4", "2001:db8::1"]),
    ] {
        let addr: IpAddr = target.parse().expect("target");
        let hosts: Vec<IpAddr> = hosts.iter().map(|h| h.parse().expect("host")).collect();
        for (dports, sources, known) in
            [(&ports[..], 3, 3), (&ports[..], 4, 4), (&ports[..], 5, 5), (&ports[..3], 5, 2)]
        {
            for named in [&hosts[..known], &[][..]] {
                for decoy in [true, false] {
                    let (text, records) = daemon_spread(addr, dports, sources, named, decoy);
                    assert_eq!(text.len(), 3, "{text:?}");
                    let listed: Vec<String> = named.iter().map(ToString::to_string).collect();
                    for (i, line) in text.iter().enumerate() {
                        let (want, name) = match (i, decoy) {
                            (0, true) => (DIST_SCAN, DECOY_SCAN_NAME),
                            (0, false) => (DIST_SCAN, DIST_SCAN_NAME),
                            _ => (EXPIRED, DIST_SCAN_NAME),
                        };
                        let msg = line.get(16..).expect("a stamped line");
                        let what = if i == 0 { "detected to" } else { "mode expired for" };
                        assert!(msg.starts_with(&format!("TCP: {name} {what} {target} ")), "{line}");
                        if i == 0 {
                            assert_eq!(listed_in(msg), listed, "{line}");
                        }
                        no_srcip(line, target, name, want, &listed);
                        for (shaped, _) in shapes(msg) {
                            no_srcip(&shaped, target, name, want, &listed);
                        }
                        seen += 1;
                    }
                    assert_eq!(records.len(), 3, "{records:?}");
                    for (i, line) in records.iter().enumerate() {
                        let fields = check_json_line(json_rules, line, if i == 0 { JSON_DIST_SCAN } else { 100256 });
                        assert!(!fields.contains_key("srcip"), "{line}");
                        assert_eq!(fields.get("dstip").map(String::as_str), Some(target), "{line}");
                        assert_eq!(fields.get("message"), Some(&text[i][16..].to_owned()), "{line}");
                        let input = RuleInput { decoded_as: "json", log: line, fields: &fields };
                        for id in &ar_json_rules {
                            assert!(!rule_holds(json_rules, rule(json_rules, *id), &input), "{line} holds for {id}");
                        }
                    }
                }
            }
        }
    }
    assert!(seen > 500, "{seen}");
    // Not for active response: in no <rules_id> (above), and not in the "scan" group, which an active response
    // may be chosen by (<rules_group>).
    for (file, id) in [("ipscan_rules.xml", DIST_SCAN), ("ipscan_json_rules.xml", JSON_DIST_SCAN)] {
        assert!(!ar_rules.contains(&id) && !ar_json_rules.contains(&id), "{id}");
        let text = read(file);
        let doc = parse_xml(&text);
        let r = doc
            .descendants()
            .find(|n| n.has_tag_name("rule") && n.attribute("id") == Some(id.to_string().as_str()))
            .unwrap_or_else(|| panic!("{file}: no rule {id}"));
        let groups: Vec<String> = r
            .children()
            .filter(|n| n.has_tag_name("group"))
            .flat_map(|n| n.text().unwrap_or_default().split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        assert!(!groups.iter().any(|g| g == "scan"), "{file}: rule {id} in the scan group: {groups:?}");
    }
    // And should one be listed anyway, the script finds no srcip in the alert (only dstip and extra_data, not
    // the decoys) and blocks nothing.
    let ar = ArDir::new("w-dist-scan");
    let mut message = wazuh_message("add", "198.18.0.2", &[]);
    let alert = &mut message["parameters"]["alert"];
    alert["rule"]["id"] = serde_json::json!(DIST_SCAN.to_string());
    alert["full_log"] = serde_json::json!(
        "Nov 14 18:09:08 victim ipscan[812]: TCP: decoy scan detected to 198.18.0.2 [ports 1,2,3,4,5,6,7,8,9,10,...] \
         from 4 sources [198.19.5.5,198.19.6.6,198.19.7.7,198.18.0.1]"
    );
    alert["data"] = serde_json::json!({"dstip": "198.18.0.2", "extra_data": DECOY_SCAN_NAME});
    let out = run_wazuh(&ar, &message, None);
    assert!(!out.success, "an alert without srcip accepted");
    assert!(out.stdout.is_empty(), "handshake sent: {:?}", out.stdout);
    assert!(ar.calls().is_empty(), "{:?}", ar.calls());
    assert!(ar.log().contains("no source address"), "{}", ar.log());
}

/// Rejected probes, as the daemon writes them (Tracker and Output, to a log file and a JSON-lines file), TCP and
/// UDP, IPv4 and IPv6, a short port list and a full one: the detection line ("to D", the tracker having log_dest
/// on) decodes, as written (file mode) and in every shape, to its source as srcip, this host as dstip and
/// "rejected probes", and lands on 100216 alone (never on 100201); both ends (the kernel's, and the sweep's after
/// eviction) count the probes rejected, name the destination as the detection does and land on 100206; the JSON records land on 100266
/// and 100256 with the source as srcip; 100216 and 100266 are among the rules the README blocks on, and in the
/// "scan" group.
#[test]
fn ossec_rejected_probes_through_the_daemon() {
    use ipscan_common::packet::{PROTO_TCP, PROTO_UDP};

    let decoders = load_decoders();
    let rules = load_rules("ipscan_rules.xml");
    let json_rules = load_rules("ipscan_json_rules.xml");
    let (ar_rules, ar_json_rules) = active_response_rules();
    assert!(ar_rules.contains(&REJECTED) && ar_json_rules.contains(&JSON_REJECTED), "{ar_rules:?} {ar_json_rules:?}");
    let fifteen: Vec<u16> = (1..=15).collect();
    let sources: Vec<u16> = (40000..40007).collect();
    let mut seen = 0;
    for (src, dst) in [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "2001:db8::2")] {
        let (source, dest): (IpAddr, IpAddr) = (src.parse().expect("src"), dst.parse().expect("dst"));
        for (proto, name) in [(PROTO_TCP, "TCP"), (PROTO_UDP, "UDP")] {
            for (dports, sports) in [(&fifteen[..5], &sources[..1]), (&fifteen[..], &sources[..])] {
                let (text, records) = daemon_rejected(source, dest, proto, dports, sports);
                assert_eq!(text.len(), 3, "a detection and two ends: {text:?}");
                for (i, line) in text.iter().enumerate() {
                    let msg = line.get(16..).expect("a stamped line");
                    let (rule, dstip) = if i == 0 {
                        assert!(msg.starts_with(&format!("{name}: rejected probes detected to {dst} [")), "{line}");
                        assert!(msg.contains(&format!(" from {src} [")), "{line}");
                        (REJECTED, Some(dst))
                    } else {
                        assert!(
                            msg.starts_with(&format!("{name}: rejected probes mode to {dst} expired for {src} - ")),
                            "{line}"
                        );
                        assert!(msg.ends_with(" probes rejected."), "{line}");
                        (EXPIRED, Some(dst))
                    };
                    let gl = Golden {
                        msg,
                        srcip: Some(src),
                        dstip,
                        extra: Some(REJECTED_NAME),
                        extra_file: Some(REJECTED_NAME),
                        ports: None,
                        rule,
                    };
                    check_alert(&decoders, &rules, &gl);
                    // The line as written, with the daemon's own stamp.
                    let (pre, decoded) = decode(&decoders, line);
                    let d = decoded.unwrap_or_else(|| panic!("{line:?} ({pre:?}) is not decoded"));
                    let want: BTreeMap<String, String> =
                        [("srcip", Some(src)), ("dstip", dstip), ("extra_data", Some(REJECTED_NAME))]
                            .into_iter()
                            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
                            .collect();
                    assert_eq!(d.fields, want, "{line:?}");
                    let input = RuleInput { decoded_as: &d.decoded_as, log: pre.log, fields: &d.fields };
                    assert_eq!(leaf_rules(&rules, &input), [rule], "{line:?}");
                    seen += 1;
                }
                assert_eq!(records.len(), 3, "{records:?}");
                for (i, line) in records.iter().enumerate() {
                    let fields = check_json_line(&json_rules, line, if i == 0 { JSON_REJECTED } else { 100256 });
                    assert_eq!(fields.get("srcip").map(String::as_str), Some(src), "{line}");
                    assert_eq!(fields.get("detection").map(String::as_str), Some(REJECTED_NAME), "{line}");
                    assert_eq!(fields.get("message"), Some(&text[i][16..].to_owned()), "{line}");
                    if i == 0 {
                        assert_eq!(fields.get("dstip").map(String::as_str), Some(dst), "{line}");
                        let list = |ports: &[u16]| {
                            format!("[{}]", ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
                        };
                        let logged = &dports[..dports.len().min(10)];
                        assert_eq!(fields.get("dports"), Some(&list(logged)), "{line}");
                        assert_eq!(fields.get("sports"), Some(&list(&sports[..sports.len().min(5)])), "{line}");
                    }
                }
            }
        }
    }
    assert_eq!(seen, 24);
    // Blocked on, and in the "scan" group (which an active response may be chosen by, <rules_group>).
    for (file, id) in [("ipscan_rules.xml", REJECTED), ("ipscan_json_rules.xml", JSON_REJECTED)] {
        let text = read(file);
        let doc = parse_xml(&text);
        let r = doc
            .descendants()
            .find(|n| n.has_tag_name("rule") && n.attribute("id") == Some(id.to_string().as_str()))
            .unwrap_or_else(|| panic!("{file}: no rule {id}"));
        let groups: Vec<&str> = r
            .children()
            .filter(|n| n.has_tag_name("group"))
            .flat_map(|n| n.text().unwrap_or_default().split(','))
            .collect();
        assert!(groups.contains(&"scan"), "{file}: rule {id} not in the scan group: {groups:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// active response
// ---------------------------------------------------------------------------------------------

struct ArDir {
    dir: PathBuf,
}

impl ArDir {
    /// A fresh directory with a fake `ipscan` that appends its arguments to `calls` and exits with
    /// $FAKE_EXIT.
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ipscan-ossec-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fake = dir.join("ipscan");
        std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"$(dirname \"$0\")/calls\"\necho fake ipscan says hi\nexit \"${FAKE_EXIT:-0}\"\n")
            .expect("fake ipscan");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self { dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        // timeout(1) keeps a script stuck on stdin from hanging the suite.
        let mut c = Command::new("timeout");
        c.arg("20").arg("sh").arg(contrib("ipscan-block.sh")).args(args);
        c.env("IPSCAN", self.dir.join("ipscan"))
            .env("IPSCAN_AR_LOG", self.dir.join("ar.log"))
            .env_remove("IPSCAN_TTL")
            .env_remove("FAKE_EXIT");
        c
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .map(|s| s.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ar.log")).unwrap_or_default()
    }
}

impl Drop for ArDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct ArOutcome {
    success: bool,
    code: Option<i32>,
    /// Lines the script wrote on stdout (the check_keys message, if any).
    stdout: Vec<String>,
}

fn run_ossec(ar: &ArDir, args: &[&str], env: &[(&str, &str)]) -> ArOutcome {
    let mut c = ar.command(args);
    c.envs(env.iter().copied()).stdin(Stdio::null());
    let out = c.output().expect("run ipscan-block.sh");
    ArOutcome {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect(),
    }
}

/// Wazuh 4.2+: one JSON line in; for "add", read the check_keys line, then answer `reply`.
fn run_wazuh(ar: &ArDir, message: &serde_json::Value, reply: Option<&str>) -> ArOutcome {
    let mut child = ar
        .command(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ipscan-block.sh");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    // execd writes the message unformatted on one line (cJSON_PrintUnformatted).
    writeln!(stdin, "{message}").expect("write message");
    let mut lines = Vec::new();
    if let Some(reply) = reply {
        let mut keys = String::new();
        stdout.read_line(&mut keys).expect("read check_keys");
        lines.push(keys.trim_end().to_owned());
        let answer = serde_json::json!({
            "version": 1, "origin": {"name": "", "module": "wazuh-execd"},
            "command": reply, "parameters": {}
        });
        // A script that already exited (it should not have) makes this fail, and the asserts say why.
        let _ = writeln!(stdin, "{answer}");
    }
    drop(stdin);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    lines.extend(rest.lines().map(str::to_owned));
    let status = child.wait().expect("wait");
    ArOutcome { success: status.success(), code: status.code(), stdout: lines }
}

/// A Wazuh 4.x message as execd passes it, with a full alert around the decoded srcip. The full_log
/// carries a decoy `"srcip":"..."` that must not be picked up (it arrives escaped).
fn wazuh_message(command: &str, srcip: &str, extra_args: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "origin": {"name": "node01", "module": "wazuh-analysisd"},
        "command": command,
        "parameters": {
            "extra_args": extra_args,
            "alert": {
                "timestamp": "2026-11-14T18:09:08.123+0000",
                "rule": {"level": 10, "description": "ipscan: port scan detected.", "id": "100201",
                         "firedtimes": 1, "groups": ["ipscan", "recon", "scan"]},
                "agent": {"id": "000", "name": "victim"},
                "manager": {"name": "victim"},
                "id": "1763143748.1234",
                "full_log": format!("Nov 14 18:09:08 victim ipscan[812]: TCP: SYN scan detected [ports 21,1] from {srcip} [port 40000] \"srcip\":\"203.0.113.66\""),
                "decoder": {"name": "ipscan"},
                "data": {"srcip": srcip, "extra_data": "SYN scan"},
                "location": "/var/log/syslog"
            },
            "program": "active-response/bin/ipscan-block.sh"
        }
    })
}

fn check_keys(out: &ArOutcome, srcip: &str) {
    let first = out.stdout.first().unwrap_or_else(|| panic!("no check_keys message"));
    let v: serde_json::Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{first:?}: {e}"));
    assert_eq!(v["version"], 1);
    assert_eq!(v["command"], "check_keys");
    assert_eq!(v["origin"]["module"], "active-response");
    assert_eq!(v["origin"]["name"], "ipscan-block.sh");
    assert_eq!(v["parameters"]["keys"], serde_json::json!([srcip]));
}

#[test]
fn ar_wazuh_add_ipv4_handshake_continue() {
    let ar = ArDir::new("w-add4");
    let out = run_wazuh(&ar, &wazuh_message("add", "10.10.150.1", &[]), Some("continue"));
    check_keys(&out, "10.10.150.1");
    assert!(out.success, "exit {:?}; log:\n{}", out.code, ar.log());
    assert_eq!(ar.calls(), ["block add 10.10.150.1 --ttl 3600s"]);
    assert_eq!(out.stdout.len(), 1, "only the check_keys line on stdout: {:?}", out.stdout);
    assert!(ar.log().contains("fake ipscan says hi"), "ipscan's output is logged:\n{}", ar.log());
}

#[test]
fn ar_wazuh_add_ipv6_ttl_from_extra_args() {
    let ar = ArDir::new("w-add6");
    let out = run_wazuh(&ar, &wazuh_message("add", "2001:db8::1", &["--ttl", "15m"]), Some("continue"));
    check_keys(&out, "2001:db8::1");
    assert!(out.success, "log:\n{}", ar.log());
    let out = run_wazuh(&ar, &wazuh_message("add", "2001:db8:1:2::/64", &["--ttl=2h"]), Some("continue"));
    assert!(out.success, "log:\n{}", ar.log());
    assert_eq!(ar.calls(), ["block add 2001:db8::1 --ttl 15m", "block add 2001:db8:1:2::/64 --ttl 2h"]);
}

#[test]
fn ar_wazuh_abort_does_not_block() {
    let ar = ArDir::new("w-abort");
    let out = run_wazuh(&ar, &wazuh_message("add", "10.10.150.1", &[]), Some("abort"));
    check_keys(&out, "10.10.150.1");
    assert!(out.success, "abort is a normal end");
    assert!(ar.calls().is_empty(), "{:?}", ar.calls());
}

#[test]
fn ar_wazuh_delete_has_no_handshake() {
    let ar = ArDir::new("w-del");
    let out = run_wazuh(&ar, &wazuh_message("delete", "2001:db8::1", &[]), None);
    assert!(out.success, "log:\n{}", ar.log());
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let out = run_wazuh(&ar, &wazuh_message("delete", "10.10.150.1", &["--ttl", "1h"]), None);
    assert!(out.success);
    assert_eq!(ar.calls(), ["block del 2001:db8::1", "block del 10.10.150.1"]);
}

#[test]
fn ar_wazuh_rejects_malformed_addresses_before_the_handshake() {
    let ar = ArDir::new("w-bad");
    for bad in ["10.10.150.1; reboot", "999.1.1.1", "2001:db8::1::2", "0.0.0.0/0", "$(id)", "-h", "[2001:db8::1]", ""] {
        let out = run_wazuh(&ar, &wazuh_message("add", bad, &[]), None);
        assert!(!out.success, "{bad:?} accepted");
        assert!(out.stdout.is_empty(), "{bad:?}: handshake sent for a refused address: {:?}", out.stdout);
    }
    let out = run_wazuh(&ar, &wazuh_message("add", "10.0.0.1", &["--ttl", "1d"]), None);
    assert!(!out.success, "TTL with an unknown unit accepted");
    let out = run_wazuh(&ar, &wazuh_message("flush", "10.0.0.1", &[]), None);
    assert!(!out.success, "unknown command accepted");
    assert!(ar.calls().is_empty(), "{:?}", ar.calls());
    assert!(ar.log().contains("refusing invalid address"), "{}", ar.log());
}

#[test]
fn ar_wazuh5_enable_disable() {
    let ar = ArDir::new("w5");
    let msg = |command: &str, timeout: u64| {
        serde_json::json!({
            "wazuh": {"active_response": {"name": "ipscan-block", "executable": "ipscan-block.sh",
                      "location": "local", "agent_id": "001", "type": "stateful", "stateful_timeout": timeout},
                      "agent": {"id": "001", "name": "victim"}},
            "source": {"ip": "192.0.2.7"},
            "user": {"name": ""},
            "command": command
        })
    };
    assert!(run_wazuh(&ar, &msg("enable", 600), None).success, "log:\n{}", ar.log());
    assert!(run_wazuh(&ar, &msg("enable", 0), None).success);
    assert!(run_wazuh(&ar, &msg("disable", 600), None).success);
    assert_eq!(
        ar.calls(),
        ["block add 192.0.2.7 --ttl 600s", "block add 192.0.2.7 --ttl 3600s", "block del 192.0.2.7"]
    );
}

#[test]
fn ar_ossec_arguments_add_and_delete() {
    let ar = ArDir::new("o");
    let ossec = |action, ip| [action, "-", ip, "1763143748.1234", "100201", "(victim) any->/var/log/ipscan.log"];
    assert!(run_ossec(&ar, &ossec("add", "10.10.150.1"), &[]).success, "log:\n{}", ar.log());
    assert!(run_ossec(&ar, &ossec("add", "2001:db8::1"), &[("IPSCAN_TTL", "2h")]).success);
    assert!(
        run_ossec(&ar, &["add", "-", "198.51.100.0/24", "1.1", "100201", "agent", "file", "--ttl", "90s"], &[]).success
    );
    assert!(run_ossec(&ar, &ossec("delete", "2001:db8::1"), &[]).success);
    // Old agents pass only the first three.
    assert!(run_ossec(&ar, &["delete", "root", "10.10.150.1"], &[]).success);
    assert_eq!(
        ar.calls(),
        [
            "block add 10.10.150.1 --ttl 3600s",
            "block add 2001:db8::1 --ttl 2h",
            "block add 198.51.100.0/24 --ttl 90s",
            "block del 2001:db8::1",
            "block del 10.10.150.1",
        ]
    );
    assert!(ar.log().contains("input: add - 10.10.150.1"), "arguments are logged:\n{}", ar.log());
}

#[test]
fn ar_ossec_rejects_malformed_addresses() {
    let ar = ArDir::new("o-bad");
    for bad in [
        "10.10.150.256",
        "010.10.150.1",
        "10.10.150",
        "10.10.150.1.1",
        "10.10.150.1/7",
        "10.10.150.1/33",
        "10.10.150.1/",
        "2001:db8::1::2",
        "12345::1",
        "1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7:8:9",
        ":1::2",
        "fe80::1%eth0",
        "2001:db8::/31",
        "::/0",
        "1.2.3.4 5.6.7.8",
        "--help",
        "`id`",
    ] {
        let out = run_ossec(&ar, &["add", "-", bad, "1.1", "100201"], &[]);
        assert!(!out.success, "{bad:?} accepted");
    }
    assert!(!run_ossec(&ar, &["add", "-"], &[]).success, "missing address accepted");
    assert!(!run_ossec(&ar, &["drop", "-", "10.0.0.1"], &[]).success, "unknown action accepted");
    assert!(ar.calls().is_empty(), "{:?}", ar.calls());
    // And the forms that are valid do get through (the validator is not just refusing everything).
    for good in [
        "::",
        "::1",
        "1::",
        "::ffff:10.0.0.1",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:10.0.0.1",
        "0.0.0.0",
        "255.255.255.255/32",
    ] {
        assert!(run_ossec(&ar, &["delete", "-", good], &[]).success, "{good:?} refused");
    }
    assert_eq!(ar.calls().len(), 8);
}

#[test]
fn ar_ipscan_failure_is_an_error() {
    let ar = ArDir::new("fail");
    let out = run_ossec(&ar, &["add", "-", "10.0.0.1"], &[("FAKE_EXIT", "3")]);
    assert!(!out.success);
    assert_eq!(ar.calls(), ["block add 10.0.0.1 --ttl 3600s"]);
    assert!(ar.log().contains("ipscan exited with status 3"), "{}", ar.log());
}
