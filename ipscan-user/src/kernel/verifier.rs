//! What the kernel's verifier says of a program: the statistics at the end of its log, the
//! reason of a refusal, and which kernel said it.

use serde::Serialize;

/// The kernel's limit of processed instructions for one program.
pub const KERNEL_LIMIT: u64 = 1_000_000;

/// The statistics line(s) the verifier writes at the end of its log (BPF_LOG_STATS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifierStats {
    /// `processed N insns`.
    pub processed: u64,
    /// `total_states N`.
    pub states: u64,
    /// `peak_states N`.
    pub peak_states: u64,
    /// `verification time N usec` (kernel 5.2 and later print it at BPF_LOG_STATS).
    pub time_us: Option<u64>,
}

impl VerifierStats {
    /// These statistics less another load's (never below zero).
    pub fn less(&self, other: &Self) -> Self {
        Self {
            processed: self.processed.saturating_sub(other.processed),
            states: self.states.saturating_sub(other.states),
            peak_states: self.peak_states,
            time_us: self.time_us.map(|t| t.saturating_sub(other.time_us.unwrap_or(0))),
        }
    }

    /// Reads the statistics from a verifier log; None when the log has no `processed` line.
    pub fn parse(log: &str) -> Option<Self> {
        let after = |line: &str, word: &str| -> Option<u64> {
            let mut it = line.split_whitespace();
            it.by_ref().find(|w| *w == word)?;
            it.next()?.parse().ok()
        };
        let line = log.lines().rev().find(|l| l.trim_start().starts_with("processed "))?;
        let processed = after(line, "processed")?;
        let time_us =
            log.lines().rev().find(|l| l.trim_start().starts_with("verification time")).and_then(|l| after(l, "time"));
        Some(Self {
            processed,
            states: after(line, "total_states").unwrap_or(0),
            peak_states: after(line, "peak_states").unwrap_or(0),
            time_us,
        })
    }
}

/// The kernel release string.
pub fn kernel_release() -> String {
    // SAFETY: zeroed utsname is a valid out-parameter.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates release.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned()
}

/// The reason line of a refusal: the log's last line before its statistics.
pub fn refusal_reason(log: &str) -> String {
    let is_stat =
        |l: &&str| l.starts_with("verification time") || l.starts_with("stack depth") || l.starts_with("processed ");
    log.lines().map(str::trim).rfind(|l| !l.is_empty() && !is_stat(l)).unwrap_or("no reason given").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_from_a_refusal_log() {
        let log = "0: R1=ctx() R10=fp0\nBPF program is too large. Processed 1000001 insn\n\
                   verification time 13511157 usec\nstack depth 88+72+0\n\
                   processed 1000001 insns (limit 1000000) max_states_per_insn 30 total_states 45927 \
                   peak_states 110792 mark_read 0\n";
        let s = VerifierStats::parse(log).expect("stats");
        assert_eq!(
            s,
            VerifierStats { processed: 1_000_001, states: 45_927, peak_states: 110_792, time_us: Some(13_511_157) }
        );
        assert_eq!(refusal_reason(log), "BPF program is too large. Processed 1000001 insn");
    }

    #[test]
    fn no_stats_no_numbers() {
        assert_eq!(VerifierStats::parse("invalid func unknown#32767\n"), None);
    }
}
