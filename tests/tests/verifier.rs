//! The verifier's budget, guarded per function: `ipscan check` loads the program as `ipscan
//! run` does and verifies every global function alone; the whole program must stay within a
//! fifth of the kernel's one-million-instruction limit, each function within a quarter of
//! that, and the deepest call chain within 448 of the kernel's 512 bytes of stack. (The rule walk, open-coded and then a `bpf_loop` callback, once took one kernel past
//! the limit while another accepted it: the cost must add up, function by function, not
//! multiply.) `cargo xtask vm` runs the same check on the other kernels.

use std::process::Command;

use ipscan_tests::{ipscan_bin, require_root};

#[test]
fn every_function_verifies_on_its_own_within_its_budget() {
    require_root();
    let table = Command::new(ipscan_bin()).arg("check").output().expect("ipscan check");
    eprintln!("{}", String::from_utf8_lossy(&table.stdout));
    let out = Command::new(ipscan_bin()).args(["check", "--json"]).output().expect("ipscan check --json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    assert_eq!(report["loads"], true, "refused: {}", report["refusal"]);
    let processed = report["processed"].as_u64().expect("the kernel reports verified_insns (5.16 and later)");
    assert!(processed <= 200_000, "{processed} processed instructions, over the budget of 200,000");
    let functions = report["functions"].as_array().expect("functions");
    // The entry and the stages named in ipscan-ebpf: a global function that lost its harness
    // (or its `ipscan_` name) shows up here as missing or refused.
    for name in ["ipscan_parse", "ipscan_process", "ipscan_record_one", "ipscan_rules_ignored", "ipscan_autoblock"] {
        assert!(functions.iter().any(|f| f["function"] == name), "no row for {name}: {report}");
    }
    for f in functions {
        assert!(f["refused"].is_null(), "{} refused: {}", f["function"], f["refused"]);
        let n = f["processed"].as_u64().expect("processed");
        assert!(n <= 50_000, "{} takes {n} processed instructions, over its budget of 50,000", f["function"]);
    }
    let stack = report["stack_bytes"].as_u64().expect("stack_bytes");
    assert!(stack <= 448, "the deepest call chain takes {stack} of the kernel's 512 bytes: {}", report["stack_chain"]);
    let own: u64 = functions.iter().filter_map(|f| f["processed"].as_u64()).sum();
    assert_eq!(own, processed, "the rows add up to the whole program");
    assert!(out.status.success(), "ipscan check failed: {}", String::from_utf8_lossy(&out.stderr));
}
