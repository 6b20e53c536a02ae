//! `ipscan check`: whether this kernel accepts the XDP program, and what verifying it costs,
//! function by function.
//!
//! The kernel verifies the entry program and each BPF global function on its own (a global
//! function once, whatever calls it), so the cost of verification is the sum of theirs. The
//! whole program is loaded as `ipscan run` loads it; each global function `ipscan_F` is then
//! verified alone through its harness program `ipscan_verify_F` (ipscan-ebpf's `verify.rs`),
//! which the kernel refuses on purpose after the function, so that the log's statistics line
//! gives that function's processed instructions, states and verification time. The entry's
//! own share is what the whole program costs beyond its global functions.

mod calls;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use aya::{
    EbpfLoader, VerifierLogLevel,
    programs::{ProgramError, SchedClassifier, Xdp},
};
use ipscan_common::{EGRESS_PROGRAM_NAME, GLOBAL_REPLAY_CLOCK, PROGRAM_NAME, verify};
use serde::Serialize;

use self::calls::Calls;
use crate::kernel::{
    loader::{LoadError, OBJECT},
    verifier::{KERNEL_LIMIT, VerifierStats, kernel_release, refusal_reason},
};

/// What `ipscan check` fails above by default: a fifth of the kernel's limit, so that kernels
/// that verify less cleverly than the tested ones still load the program.
pub const DEFAULT_BUDGET: u64 = 200_000;

/// The most the deepest call chain may use of the kernel's 512 bytes of stack: kernels count
/// frames differently (what they see of a frame depends on the paths they walk), and one more
/// local on that chain must not be what refuses the program.
pub const STACK_BUDGET: u64 = 448;

/// What one function may cost by default: a quarter of [`DEFAULT_BUDGET`]. A function past it
/// has paths that multiply (a branch whose sides never meet again, a value the verifier tracks
/// exactly that it need not): split it, or make the sides meet.
pub const DEFAULT_FUNCTION_BUDGET: u64 = 50_000;

/// One row of the report: a function the kernel verifies on its own.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub function: String,
    /// Processed instructions.
    pub processed: u64,
    /// States the verifier kept (None for the entry: a load that succeeds reports no log).
    pub states: Option<u64>,
    /// Verification time in microseconds (the entry's: its load, less its functions').
    pub time_us: Option<u64>,
    /// Why the kernel refused this function, if it did.
    pub refused: Option<String>,
    /// Bytes of stack its code uses (with the static functions inlined into it).
    pub frame: u64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `uname -r`.
    pub kernel: String,
    pub loads: bool,
    /// Why the kernel refused the program (one line), when it did.
    pub refusal: Option<String>,
    /// Processed instructions of the whole program (the kernel's count: `verified_insns`, or
    /// the log's statistics when refused). None on kernels before 5.16 when it loads.
    pub processed: Option<u64>,
    /// Wall time of the whole program's load (verification and JIT), in microseconds.
    pub load_us: u64,
    pub budget: u64,
    pub function_budget: u64,
    /// The deepest chain of calls from the entry, by the frames its code uses (each rounded up
    /// to 32 bytes as the kernel adds them), and what it adds up to; the kernel refuses a
    /// program whose chain passes [`calls::STACK_LIMIT`].
    pub stack_chain: Vec<String>,
    pub stack_bytes: u64,
    /// The entry program first, then the global functions in name order.
    pub functions: Vec<Row>,
    /// The egress program (reply-confirmed counting), loaded after the XDP program: it calls
    /// the same global functions, which the kernel verifies again for it.
    pub egress: Egress,
}

/// The egress program's share of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Egress {
    pub loads: bool,
    pub refusal: Option<String>,
    /// Processed instructions of the whole program, its global functions included.
    pub processed: Option<u64>,
    pub load_us: u64,
    pub stack_chain: Vec<String>,
    pub stack_bytes: u64,
}

impl Report {
    /// Whether the program loads with its processed instructions within the budget, and every
    /// function verifies on its own within its budget.
    pub fn within_budget(&self) -> bool {
        self.loads
            && self.egress.loads
            && self.egress.processed.is_none_or(|n| n <= self.budget)
            && self.egress.stack_bytes <= STACK_BUDGET
            && self.processed.is_none_or(|n| n <= self.budget)
            && self.functions.iter().all(|f| f.refused.is_none() && f.processed <= self.function_budget)
            && self.stack_bytes <= STACK_BUDGET
    }
}

/// The verifier log inside a program load error.
fn log_of(e: &ProgramError) -> Option<String> {
    match e {
        ProgramError::LoadError { verifier_log, .. } => Some(verifier_log.to_string()),
        _ => None,
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().try_into().unwrap_or(u64::MAX)
}

/// A harness's verification: the function's statistics (with the harness's own few
/// instructions), or the refusal when the function itself was refused.
fn verify_harness(ebpf: &mut aya::Ebpf, name: &str, logs: &mut Vec<(String, String)>) -> Result<VerifierStats, String> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("no program {name}"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())?;
    match prog.load() {
        Ok(()) => Err(format!("{name}: the kernel accepted the stop it must refuse")),
        Err(e) => {
            let log = log_of(&e).ok_or_else(|| e.to_string())?;
            logs.push((name.to_owned(), log.clone()));
            let stats = VerifierStats::parse(&log).ok_or_else(|| refusal_reason(&log))?;
            if log.contains(verify::STOP_REFUSAL) { Ok(stats) } else { Err(refusal_reason(&log)) }
        }
    }
}

/// Loads the program as `ipscan run` does (not attached), then each global function alone.
///
/// With `full_logs`, the verifier logs every instruction it walks (much slower), and the logs
/// are returned beside the report, program by program.
pub fn check(budget: u64, function_budget: u64, full_logs: bool) -> Result<(Report, Vec<(String, String)>), LoadError> {
    let level = if full_logs { VerifierLogLevel::VERBOSE | VerifierLogLevel::STATS } else { VerifierLogLevel::STATS };
    let mut logs = Vec::new();
    let calls = Calls::of(OBJECT).map_err(|source| LoadError::Calls { source })?;
    let mut ebpf = EbpfLoader::new()
        .verifier_log_level(level)
        .override_global(GLOBAL_REPLAY_CLOCK, &0u8, true)
        .load(OBJECT)
        .map_err(|source| LoadError::Object { source })?;
    let kernel = kernel_release();
    let prog: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or(LoadError::MissingProgram { name: PROGRAM_NAME })?
        .try_into()
        .map_err(|source| LoadError::ProgramType { name: PROGRAM_NAME, source })?;
    let start = Instant::now();
    let loaded = prog.load();
    let load_us = micros(start.elapsed());
    let info = prog.info();
    let (loads, refusal, processed) = load_outcome(PROGRAM_NAME, loaded, info, &mut logs);
    let nothing = verify_harness(&mut ebpf, verify::NOTHING, &mut logs).unwrap_or_default();
    // Each global function the entry reaches, verified through its harness: its cost with the
    // global functions it reaches in turn, less the stop.
    let mut alone: BTreeMap<String, Result<VerifierStats, String>> = BTreeMap::new();
    for function in calls.reached_from(PROGRAM_NAME) {
        let harness = format!("{}{}", verify::HARNESS_PREFIX, function.strip_prefix("ipscan_").unwrap_or(function));
        let result = if ebpf.program(&harness).is_none() {
            Err(format!("no harness program {harness} in the object (ipscan-ebpf's verify.rs)"))
        } else {
            verify_harness(&mut ebpf, &harness, &mut logs).map(|s| s.less(&nothing))
        };
        alone.insert(function.to_owned(), result);
    }
    // Its own cost: less what the global functions it reaches cost on their own.
    let mut own: BTreeMap<String, VerifierStats> = BTreeMap::new();
    let mut functions = Vec::new();
    for (function, result) in &alone {
        let row = match result {
            Ok(stats) => {
                let mut mine = *stats;
                for callee in calls.reached_from(function).filter(|c| c != function) {
                    if let Some(Ok(theirs)) = alone.get(callee) {
                        mine = mine.less(&own_cost(callee, &alone, &calls, &mut own, theirs));
                    }
                }
                own.insert(function.clone(), mine);
                Row {
                    function: function.clone(),
                    processed: mine.processed,
                    states: Some(mine.states),
                    time_us: mine.time_us,
                    refused: None,
                    frame: calls.frame(function),
                }
            }
            Err(reason) => Row {
                function: function.clone(),
                processed: 0,
                states: None,
                time_us: None,
                refused: Some(reason.clone()),
                frame: calls.frame(function),
            },
        };
        functions.push(row);
    }
    let own_insns: u64 = functions.iter().map(|r| r.processed).sum();
    let own_us: u64 = functions.iter().filter_map(|r| r.time_us).sum();
    let entry = Row {
        function: format!("{PROGRAM_NAME} (entry)"),
        processed: processed.unwrap_or(0).saturating_sub(own_insns),
        states: None,
        time_us: loads.then(|| load_us.saturating_sub(own_us)),
        refused: refusal.clone(),
        frame: calls.frame(PROGRAM_NAME),
    };
    functions.insert(0, entry);
    let (stack_chain, stack_bytes) = calls.deepest_chain(PROGRAM_NAME);
    let egress = check_egress(&mut ebpf, &calls, &mut logs)?;
    Ok((
        Report {
            kernel,
            loads,
            refusal,
            processed,
            load_us,
            budget,
            function_budget,
            stack_chain,
            stack_bytes,
            functions,
            egress,
        },
        logs,
    ))
}

/// What a program's load says: whether it loads, why not (its log kept in `logs`), and its
/// processed instructions (the kernel's count when it loads, the log's when refused).
fn load_outcome(
    name: &str,
    loaded: Result<(), ProgramError>,
    info: Result<aya::programs::ProgramInfo, ProgramError>,
    logs: &mut Vec<(String, String)>,
) -> (bool, Option<String>, Option<u64>) {
    match loaded {
        Ok(()) => (true, None, info.ok().and_then(|i| i.verified_instruction_count()).map(u64::from)),
        Err(e) => {
            let log = log_of(&e).unwrap_or_default();
            logs.push((name.to_owned(), log.clone()));
            (false, Some(refusal_reason(&log)), VerifierStats::parse(&log).map(|s| s.processed))
        }
    }
}

/// Loads the egress program as `ipscan run` does.
fn check_egress(ebpf: &mut aya::Ebpf, calls: &Calls, logs: &mut Vec<(String, String)>) -> Result<Egress, LoadError> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(EGRESS_PROGRAM_NAME)
        .ok_or(LoadError::MissingProgram { name: EGRESS_PROGRAM_NAME })?
        .try_into()
        .map_err(|source| LoadError::ProgramType { name: EGRESS_PROGRAM_NAME, source })?;
    let start = Instant::now();
    let loaded = prog.load();
    let load_us = micros(start.elapsed());
    let info = prog.info();
    let (loads, refusal, processed) = load_outcome(EGRESS_PROGRAM_NAME, loaded, info, logs);
    let (stack_chain, stack_bytes) = calls.deepest_chain(EGRESS_PROGRAM_NAME);
    Ok(Egress { loads, refusal, processed, load_us, stack_chain, stack_bytes })
}

/// A global function's own cost (memoised in `own`): its harness's, less its global callees'.
fn own_cost(
    function: &str,
    alone: &BTreeMap<String, Result<VerifierStats, String>>,
    calls: &Calls,
    own: &mut BTreeMap<String, VerifierStats>,
    stats: &VerifierStats,
) -> VerifierStats {
    if let Some(s) = own.get(function) {
        return *s;
    }
    let mut mine = *stats;
    for callee in calls.reached_from(function).filter(|c| *c != function) {
        if let Some(Ok(theirs)) = alone.get(callee) {
            mine = mine.less(&own_cost(callee, alone, calls, own, theirs));
        }
    }
    own.insert(function.to_owned(), mine);
    mine
}

/// Thousands separated by commas.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report as a table.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let verdict = if r.loads { "loads" } else { "is refused" };
    out.push_str(&format!("kernel {}: the XDP program {verdict}\n", r.kernel));
    if let Some(reason) = &r.refusal {
        out.push_str(&format!("  refusal: {reason}\n"));
    }
    out.push_str(&format!(
        "{:<28} {:>12} {:>8} {:>12} {:>7}\n",
        "verified on its own", "processed", "states", "time", "stack"
    ));
    for row in &r.functions {
        let states = row.states.map_or("-".into(), grouped);
        let time = row.time_us.map_or("-".into(), |t| format!("{:.1} ms", t as f64 / 1000.0));
        let over = if row.processed > r.function_budget { "  over its budget" } else { "" };
        match &row.refused {
            Some(reason) if row.processed == 0 => {
                out.push_str(&format!("{:<28} refused: {reason}\n", row.function));
            }
            _ => out.push_str(&format!(
                "{:<28} {:>12} {:>8} {:>12} {:>7}{over}\n",
                row.function,
                grouped(row.processed),
                states,
                time,
                row.frame
            )),
        }
    }
    let total = r.processed.map_or("unknown (kernel before 5.16)".into(), grouped);
    out.push_str(&format!(
        "{:<28} {:>12}   (budget {}, {} a function; kernel limit {}; load {:.1} ms)\n",
        "whole program",
        total,
        grouped(r.budget),
        grouped(r.function_budget),
        grouped(KERNEL_LIMIT),
        r.load_us as f64 / 1000.0
    ));
    let over = if r.stack_bytes > STACK_BUDGET { "  over its budget" } else { "" };
    out.push_str(&format!(
        "deepest call chain: {} bytes of stack (budget {STACK_BUDGET}, kernel limit {}): {}{over}\n",
        r.stack_bytes,
        calls::STACK_LIMIT,
        r.stack_chain.join(" > ")
    ));
    let e = &r.egress;
    match &e.refusal {
        Some(reason) => out.push_str(&format!("egress program {EGRESS_PROGRAM_NAME}: refused: {reason}\n")),
        None => {
            let over = if e.processed.is_some_and(|n| n > r.budget) { "  over its budget" } else { "" };
            out.push_str(&format!(
                "egress program {EGRESS_PROGRAM_NAME}: loads, {} processed with its functions (budget {}; load {:.1} ms){over}\n",
                e.processed.map_or("unknown".into(), grouped),
                grouped(r.budget),
                e.load_us as f64 / 1000.0
            ));
        }
    }
    let over = if e.stack_bytes > STACK_BUDGET { "  over its budget" } else { "" };
    out.push_str(&format!(
        "egress call chain: {} bytes of stack: {}{over}\n",
        e.stack_bytes,
        e.stack_chain.join(" > ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_000_001), "1,000,001");
    }
}
