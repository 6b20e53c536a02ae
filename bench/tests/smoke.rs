//! The benchmark keeps working: the smoke run (`ipscan-bench --smoke`: tiny repeats and floods)
//! produces every row of the table with positive numbers, and the blocking rows as "n/a" until
//! blocking exists. No timing is asserted: the smoke run's numbers mean nothing.

use std::{fs, process::Command};

use ipscan_tests::{TempDir, require_root};
use serde_json::Value;

/// Rows measured today.
const MEASURED: &[&str] = &[
    "cost_baseline_pass",
    "cost_baseline_drop",
    "cost_tcp_ack_v4",
    "cost_syn_scan_mode",
    "cost_udp_v4",
    "cost_icmp_echo_v4",
    "cost_tcp_ack_v6",
    "cost_syn_v6_scan_mode",
    "cost_malformed",
    "cost_tcp_ack_v4_autoblocking",
    "cost_tcp_ack_v6_autoblocking",
    "cost_tcp_ack_v4_manual_block",
    "cost_tcp_ack_v6_manual_block",
    "cost_syn_scan_mode_tripwires",
    "cost_udp_v4_tripwires",
    "cost_syn_scan_mode_per_source",
    "cost_udp_v4_per_source",
    "cost_icmp_echo_v4_per_source",
    "cost_syn_scan_mode_sweeps",
    "cost_udp_v4_sweeps",
    "cost_egress_off",
    "cost_egress_ack",
    "cost_egress_reset",
    "floor_detect_syn",
    "floor_detect_syn_v6",
    "floor_detect_udp",
    "floor_detect_echo",
    "floor_shared_syn",
    "floor_shared_syn_v6",
    "floor_shared_udp",
    "floor_shared_echo",
    "cost_syn_new_source",
    "cost_syn_fresh_sources",
    "cost_udp_fresh_sources",
    "cost_echo_fresh_sources",
    "floor_probation_syn",
    "floor_probation_udp",
    "floor_probation_echo",
    "cost_ack_fresh_sources_autoblocking",
    "tput_benign_v4_empty_pass",
    "tput_benign_v4_empty_drop",
    "tput_benign_v4",
    "tput_benign_v6_empty_pass",
    "tput_benign_v6_empty_drop",
    "tput_benign_v6",
    "tput_benign_many_autoblocking_empty_pass",
    "tput_benign_many_autoblocking_empty_drop",
    "tput_benign_many_autoblocking",
    "tput_benign_many_manual_block_empty_pass",
    "tput_benign_many_manual_block_empty_drop",
    "tput_benign_many_manual_block",
    "tput_syn_flood_v4_empty_pass",
    "tput_syn_flood_v4_empty_drop",
    "tput_syn_flood_v4",
    "exhaust_scan_detected",
    "exhaust_sources_entries",
    "exhaust_map_memory",
    "exhaust_daemon_rss",
    "cost_blocked",
    "cost_blocked_manual",
    "tput_syn_flood_autoblock",
    "time_to_block_userspace",
    "feed_load_v4",
    "feed_refresh_v4",
    "feed_load_v6",
    "feed_refresh_v6",
    "feed_read",
    "feed_kernel_memory",
    "feed_memory_per_prefix",
    "feed_memlock",
    "cost_tcp_ack_v4_feed_near",
    "cost_tcp_ack_v6_feed_near",
    "cost_feed_drop_v4",
    "cost_feed_drop_v6",
];

/// Detection rows reported against their floor row (issue 24), and that floor.
const WITH_FLOOR: &[(&str, &str)] = &[
    ("cost_syn_scan_mode", "floor_detect_syn"),
    ("cost_syn_v6_scan_mode", "floor_detect_syn_v6"),
    ("cost_udp_v4", "floor_detect_udp"),
    ("cost_icmp_echo_v4", "floor_detect_echo"),
    ("cost_syn_fresh_sources", "floor_probation_syn"),
    ("cost_udp_fresh_sources", "floor_probation_udp"),
    ("cost_echo_fresh_sources", "floor_probation_echo"),
];

/// Rows of the sections whose traffic comes from the live-frames generator: each section
/// reports one "not measured" row instead where the kernel refuses that mode.
fn generated(id: &str) -> bool {
    id.starts_with("tput_") || id.starts_with("exhaust_")
}

/// Whether this kernel runs XDP test runs on live frames: one frame through ipscan's own program
/// on `lo`, probed here apart from the bench's own probe.
fn live_frames_work() -> bool {
    let p = ipscan_tests::Prog::load(&ipscan_common::Config::default());
    let prog: &aya::programs::Xdp =
        p.ebpf.program(ipscan_common::PROGRAM_NAME).expect("program").try_into().expect("an XDP program");
    let lo = ipscan::kernel::loader::if_index("lo").expect("lo");
    let frame = ipscan_tests::frames::Frame::default().v4(
        ipscan_tests::frames::SRC4,
        ipscan_tests::frames::DST4,
        &ipscan_tests::frames::L4::tcp(40000, 443, 0x10),
    );
    ipscan::kernel::testrun::run_live(prog.fd().expect("fd"), &frame, lo, 1, 1).is_ok()
}

/// Rows whose value may be zero: packets that got past a block.
const COUNTS: &[&str] = &["time_to_block"];

fn positive(v: &Value) -> bool {
    v.as_f64().is_some_and(|x| x > 0.0 && x.is_finite())
}

#[test]
fn smoke_bench_writes_every_row() {
    require_root();
    let dir = TempDir::new();
    let path = dir.join("bench.json");
    let bench = env!("CARGO_BIN_EXE_ipscan-bench");
    let status = Command::new(bench)
        .arg("--smoke")
        .arg("--json")
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {bench}: {e}"));
    assert!(status.success(), "{bench} --smoke failed: {status}");
    let doc: Value = serde_json::from_str(&fs::read_to_string(&path).expect("JSON written")).expect("valid JSON");

    assert_eq!(doc["smoke"], true);
    assert!(doc["machine"]["cpu"].as_str().is_some_and(|s| !s.is_empty()), "{}", doc["machine"]);
    assert!(positive(&doc["machine"]["cores"]), "{}", doc["machine"]);
    assert!(doc["machine"]["kernel"].as_str().is_some_and(|s| !s.is_empty()));

    let rows = doc["rows"].as_array().expect("rows");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().expect("id")).collect();
    let live = live_frames_work();
    assert_eq!(doc["machine"]["live_frames_refused"].is_null(), live, "{}", doc["machine"]);
    for want in MEASURED.iter().chain(COUNTS).filter(|id| live || !generated(id)) {
        assert_eq!(ids.iter().filter(|i| *i == want).count(), 1, "row {want} missing or repeated in {ids:?}");
    }
    for id in ["tput_not_measured", "exhaust_not_measured"] {
        assert_eq!(ids.contains(&id), !live, "{id} in {ids:?} (live frames work: {live})");
    }
    if !live {
        assert!(!ids.iter().any(|id| generated(id) && !id.ends_with("_not_measured")), "{ids:?}");
    }
    for r in rows {
        let id = r["id"].as_str().expect("id");
        if id.ends_with("_not_measured") {
            assert!(r["value"].is_null() && r["status"] == "n/a", "{r}");
            assert!(r["note"].as_str().is_some_and(|n| n.contains("BPF_F_TEST_XDP_LIVE_FRAMES")), "{r}");
            continue;
        }
        if COUNTS.contains(&id) {
            // The kernel path lets no scanner packet through after the threshold packet.
            assert_eq!(r["value"].as_f64(), Some(0.0), "{r}");
            assert_eq!(r["status"], "pass", "{r}");
            continue;
        }
        assert!(positive(&r["value"]), "row without a positive value: {r}");
        if !r["baseline"].is_null() {
            assert!(positive(&r["baseline"]) && positive(&r["ratio"]), "{r}");
        }
        assert!(["pass", "miss", "info"].contains(&r["status"].as_str().expect("status")), "{r}");
        match WITH_FLOOR.iter().find(|(row, _)| *row == id) {
            Some((_, floor)) => {
                assert_eq!(r["to_floor"]["floor"], *floor, "{r}");
                assert!(positive(&r["to_floor"]["ratio"]), "{r}");
            }
            None if id == "cost_tcp_ack_v4" || id == "cost_ack_fresh_sources_autoblocking" => {
                assert!(r["to_floor"].is_null(), "{r}");
            }
            None => {}
        }
    }
}
