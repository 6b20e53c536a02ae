//! iplog's `log` / `ignore` rules, walked before any detection.

use crate::maps::{RULES, summary_slot};
use ipscan_common::{
    flat,
    rules::{ACTION_LOG, MAX_RULES},
};

/// Whether iplog's rules skip the packet in the SUMMARY slot: a matching `log` rule wins over
/// every `ignore` rule. Returns 1 to skip, 0 otherwise.
///
/// A global function: the verifier checks it once, on its own, whatever state reaches its
/// callers. The walk is a bounded loop with a branch-free body (both answers are OR-ed, and
/// read after the walk), so that each turn of it is one path.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_rules_ignored(nrules: u32) -> u32 {
    let Ok(p) = summary_slot() else {
        return 0;
    };
    let (mut ignore, mut log) = (0u64, 0u64);
    for i in 0..MAX_RULES as u32 {
        if i >= nrules {
            break;
        }
        if let Some(r) = RULES.get(i) {
            let m = r.match_word(p);
            let is_log = flat::eq(r.action as u64, ACTION_LOG as u64);
            ignore |= m & (is_log ^ 1);
            log |= m & is_log;
        }
    }
    (ignore & (log ^ 1)) as u32
}
