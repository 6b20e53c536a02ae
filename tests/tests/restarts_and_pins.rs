//! What outlives a daemon, end to end: its maps stay pinned and its blocks are saved in a state
//! file. A restart (also after `kill -9` during a flood) reuses the pins with one program attached
//! and takes over the active modes; a "reboot" (bpffs emptied) restores the blocks from the state
//! file; pins left by an older ipscan with other layouts, or without BLOCKCOUNTS or ALLOWCOUNTS,
//! are replaced or counted at start; pins removed under a running daemon are pinned again.

use std::{
    fs,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use ipscan_common::maps;
use ipscan_tests::{
    ATTACKER4, ATTACKER6, Capture, Daemon, Flood, Listener, OTHER4, TempDir, Testbed, VICTIM4, VICTIM6, cli, connects,
    count, counter, nmap_syn, pcap::syn_probes, stats_json, write_config, xdp_programs,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn kill_9_during_a_flood_then_restart_reuses_the_pinned_state() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let conf = write_config(&dir, "set scans_only\nblock syn_scan 60s\n");
    let args = ["--config", conf.to_str().expect("utf8")];
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &args);
    assert!(cli(&["block", "add", OTHER4, "--ttl", "1h", "-i", &i]).0);
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080));

    // A flood to one port (a busy client, not a scan) while the daemon dies.
    let flood = Flood::start(&bed.attacker, 60, &["-S", "-p", "8080", "-i", "u100", VICTIM4]);
    thread::sleep(Duration::from_secs(1));
    d.signal(libc::SIGKILL);
    let (status, _) = d.stop_after_exit();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    drop(d);
    // The XDP link is a file descriptor of the daemon: it died with it, so the interface runs
    // unprotected until the restart. The maps are pinned and stay.
    assert_eq!(xdp_programs(&bed.victim, &i), 0, "a killed daemon's link is gone");
    let killed = stats_json(&i, &[]);
    assert!(counter(&killed, "packets") > 0);

    let d = Daemon::start(&bed.victim, &i, &dir, &args);
    assert_eq!(xdp_programs(&bed.victim, &i), 1, "exactly one program after the restart");
    // The same STATS array counts on from where the killed daemon's program stopped.
    let deadline = Instant::now() + WAIT;
    while counter(&stats_json(&i, &[]), "packets") <= counter(&killed, "packets") {
        assert!(Instant::now() < deadline, "the flood is not counted after the restart");
        thread::sleep(Duration::from_millis(200));
    }
    // The block made before the kill still holds, during the flood.
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "block kept across kill -9");
    drop(flood);

    // Detection and blocking go on.
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    nmap_syn(&bed);
    let lines = d.wait_log("the block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1")));
    assert_eq!(count(&lines, "TCP: SYN scan detected"), 1, "{}", lines.join("\n"));
    assert_eq!(count(&lines, "Blocked 198.18.0.1 for 60 s (SYN scan)"), 1, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "new scanner blocked");
    let (_, json, _) = cli(&["block", "list", "--json", "-i", &i]);
    let v: Value = serde_json::from_str(&json).expect("json");
    let prefixes: Vec<&str> = v.as_array().expect("array").iter().filter_map(|r| r["prefix"].as_str()).collect();
    assert_eq!(prefixes, [OTHER4, ATTACKER4], "{json}");
}

#[test]
fn restart_keeps_blocks_with_one_program_and_a_reboot_restores_them() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(&dir, "window syn_scan 3s\nwindow portscan 3s\nset scans_only\n");
    let _srv = Listener::start(&bed.victim, 8080);
    let state = dir.join("state");
    let args = ["--config", conf.to_str().expect("utf8"), "--state-dir", state.to_str().expect("utf8")];
    let i = bed.victim_if.as_str();
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    assert!(cli(&["block", "add", OTHER4, "--ttl", "1h", "-i", i]).0);
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080));

    // A second daemon on the same interface is refused.
    let out = bed
        .victim
        .cmd(ipscan_tests::ipscan_bin())
        .args(["run", "--iface", i, "--stdout"])
        .output()
        .expect("second daemon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), format!("ipscan: another ipscan daemon is running on {i} (pid {})", d.pid()));

    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "block kept across a restart");
    let links = bed.victim.cmd("ip").args(["-d", "link", "show", "dev", i]).output().expect("ip");
    let text = String::from_utf8_lossy(&links.stdout);
    assert_eq!(text.matches("prog/xdp").count(), 1, "exactly one program attached: {text}");
    let (_, json, _) = cli(&["block", "list", "--json", "-i", i]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(v[0]["prefix"], OTHER4);

    // A reboot loses bpffs: the daemon puts the block back from its state file, with the
    // time it had left.
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    std::fs::remove_dir_all(std::path::Path::new("/sys/fs/bpf/ipscan").join(i)).expect("unpin");
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    d.wait_stderr("restored 1 blocks", Duration::from_secs(5));
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "block restored after a reboot");
    let (_, json, _) = cli(&["block", "list", "--json", "-i", i]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let left = v[0]["expires_in_s"].as_u64().expect("ttl");
    assert!((3500..=3600).contains(&left), "{json}");
    let _ = d.stop();
}

#[test]
fn a_mode_active_at_a_restart_still_expires_with_its_totals() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "window syn_scan 8s\nwindow portscan 8s\nset scans_only\n");
    let args = ["--config", conf.to_str().expect("utf8")];
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    let sent = Capture::start(&bed.attacker, &bed.attacker_if, "tcp and src host 198.18.0.1", dir.join("sent.pcap"));
    nmap_syn(&bed);
    sent.finish();
    let probes = syn_probes(&dir.join("sent.pcap"));
    let bytes: u64 = probes.iter().map(|p| p.payload).sum();
    d.wait_log("the detection", Duration::from_secs(15), |l| l.iter().any(|x| x.starts_with("TCP: SYN scan detected")));
    // Restart inside the 8 s window: the kernel keeps the mode in the pinned SOURCES map.
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    d.wait_stderr("active modes taken over from the pinned state", Duration::from_secs(5));
    let want = format!(
        "TCP: SYN scan mode expired for 198.18.0.1 - received a total of {} packets ({bytes} bytes).",
        probes.len()
    );
    let lines = d.wait_log("the expiry after the restart", Duration::from_secs(20), |l| l.contains(&want));
    assert_eq!(count(&lines, &want), 1, "{}", lines.join("\n"));
    let _ = d.stop();
}

/// Creates a BPF map with `bpf(BPF_MAP_CREATE)` and pins it at `path` (what an older ipscan
/// left behind); the pin keeps it after the descriptor is closed.
fn pin_map(path: &Path, map_type: u32, key: u32, value: u32, entries: u32) {
    pin_map_flags(path, map_type, key, value, entries, 0);
}

/// [`pin_map`] with map flags (an LPM trie needs BPF_F_NO_PREALLOC).
fn pin_map_flags(path: &Path, map_type: u32, key: u32, value: u32, entries: u32, flags: u32) {
    // union bpf_attr, BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, map_flags.
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map_type) | u64::from(key) << 32;
    attr[1] = u64::from(value) | u64::from(entries) << 32;
    attr[2] = u64::from(flags);
    // SAFETY: a zeroed bpf_attr with the MAP_CREATE fields set, of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), size_of_val(&attr)) };
    assert!(fd >= 0, "BPF_MAP_CREATE: {}", std::io::Error::last_os_error());
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // BPF_OBJ_PIN: pathname, bpf_fd.
    let mut pin = [0u64; 16];
    pin[0] = c.as_ptr() as u64;
    pin[1] = fd as u64;
    // SAFETY: as above; the path outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 6, pin.as_mut_ptr(), size_of_val(&pin)) };
    assert_eq!(r, 0, "BPF_OBJ_PIN {}: {}", path.display(), std::io::Error::last_os_error());
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd as i32) };
}

/// Pins left by an older ipscan with other layouts (an LRU hash AUTOBLOCK, a PROBATION array of
/// 56-byte probes) are discarded with a note naming each, and the new maps work: a scanner is
/// detected and blocked.
#[test]
fn pins_of_an_older_layout_are_discarded_with_a_note() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::create_dir_all(&pins).expect("pin directory");
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
    pin_map(&pins.join("AUTOBLOCK"), BPF_MAP_TYPE_LRU_HASH, 20, 48, 65_536);
    pin_map(&pins.join("PROBATION"), BPF_MAP_TYPE_ARRAY, 4, 56, 65_537);
    let conf = write_config(&dir, "set scans_only\nblock syn_scan 60s\n");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &["--config", conf.to_str().expect("utf8")]);
    let p = pins.display();
    d.wait_stderr(
        &format!("discarded pinned map {p}/AUTOBLOCK from an older ipscan (key/value 20/48 bytes, 65536 entries; now 4/72, 65537)"),
        WAIT,
    );
    d.wait_stderr(
        &format!("discarded pinned map {p}/PROBATION from an older ipscan (key/value 4/56 bytes, 65537 entries; now 4/256, 16385)"),
        WAIT,
    );
    let _srv = Listener::start(&bed.victim, 8080);
    nmap_syn(&bed);
    let lines = d.wait_log("the block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1")));
    assert_eq!(count(&lines, "Blocked 198.18.0.1 for 60 s (SYN scan)"), 1, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the scanner is blocked");
    // A restart of this build keeps every pin: no note, the block still holds.
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let d = Daemon::start(&bed.victim, &i, &dir, &["--config", conf.to_str().expect("utf8")]);
    let err = fs::read_to_string(&d.stderr).expect("stderr");
    assert!(!err.contains("discarded"), "{err}");
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "block kept across the restart");
}

/// A block list whose pin has an older layout (BLOCK4 with 4-byte addresses, before its keys
/// grew to keep the values 8-aligned) is made anew, and its blocks come back from the state
/// file, while a list that was kept (BLOCK6) keeps its own blocks, not doubled.
#[test]
fn a_block_list_of_an_older_layout_comes_back_from_the_state_file() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", ATTACKER4, "--ttl", "1h", "-i", &i]).0);
    assert!(cli(&["block", "add", "2001:db8:77::/48", "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // An older ipscan's BLOCK4: an LPM trie keyed by a prefix length and a 4-byte address.
    const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
    const BPF_F_NO_PREALLOC: u32 = 1;
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::remove_file(pins.join("BLOCK4")).expect("BLOCK4 pin");
    pin_map_flags(&pins.join("BLOCK4"), BPF_MAP_TYPE_LPM_TRIE, 8, 48, 65_536, BPF_F_NO_PREALLOC);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    d.wait_stderr(
        &format!(
            "discarded pinned map {}/BLOCK4 from an older ipscan (key/value 8/48 bytes, 65536 entries; now 12/48, 65536)",
            pins.display()
        ),
        WAIT,
    );
    d.wait_stderr("restored 1 blocks and 0 allows", WAIT);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the IPv4 block is back");
    let (ok, json, err) = cli(&["block", "list", "--json", "-i", &i]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&json).expect("json");
    let mut prefixes: Vec<&str> = v.as_array().expect("rows").iter().filter_map(|r| r["prefix"].as_str()).collect();
    prefixes.sort_unstable();
    assert_eq!(prefixes, ["198.18.0.1", "2001:db8:77::/48"], "{json}");
    let left = v.as_array().expect("rows").iter().find(|r| r["prefix"] == "198.18.0.1").expect("row")["expires_in_s"]
        .as_u64()
        .expect("ttl");
    assert!((3000..=3600).contains(&left), "the time it had left: {left}");
}

/// Prefixes blocked by hand that BLOCKCOUNTS never counted (kept from an ipscan before it, or
/// added by the CLI to such pins while no daemon ran) are counted when the daemon starts, so the
/// program looks their senders up: the blocks hold, IPv4 and IPv6, and lifting one lets its
/// sender through without taking another block's count with it.
#[test]
fn prefixes_kept_without_their_counts_are_counted_at_start() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", "198.18.0.0/24", "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "IPv6 not blocked yet");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // An ipscan before BLOCKCOUNTS: no pin. The CLI still edits the lists (without counts).
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::remove_file(pins.join("BLOCKCOUNTS")).expect("BLOCKCOUNTS pin");
    let (ok, _, err) = cli(&["block", "add", "2001:db8::/64", "-i", &i]);
    assert!(ok, "{err}");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(pins.join("BLOCKCOUNTS").exists(), "pinned anew");
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the kept IPv4 prefix is counted");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "the IPv6 prefix the CLI added is counted");

    // Lifting the IPv6 block lets its sender through and leaves the IPv4 block as it was; a
    // block added with the daemon running is counted on the spot.
    assert!(cli(&["block", "del", "2001:db8::/64", "-i", &i]).0);
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "unblocked");
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "still blocked");
    assert!(cli(&["block", "add", ATTACKER6, "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "blocked again");
    assert!(cli(&["block", "del", "198.18.0.0/24", "-i", &i]).0);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the IPv4 block lifted");

    let (status, err) = d.stop();
    assert!(status.success());
    assert!(!err.contains("restored"), "counted, not restored from the state file: {err}");
    drop(d);

    // A daemon running without the pin (an ipscan before BLOCKCOUNTS, which holds the lock as
    // this test does; this build's daemon pins it again within a second): the CLI could not
    // count a new prefix, which the running program would then not see, so it refuses the
    // block and changes nothing.
    fs::remove_file(pins.join("BLOCKCOUNTS")).expect("BLOCKCOUNTS pin");
    let lock = fs::File::open(Path::new("/run/ipscan").join(format!("{i}.lock"))).expect("lock file");
    // SAFETY: valid fd; the lock goes with the file.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let (ok, out, err) = cli(&["block", "add", "198.18.0.0/24", "-i", &i]);
    assert!(!ok, "refused: {out}");
    assert_eq!(
        err.trim(),
        format!(
            "ipscan: {i}: the running daemon's BLOCKCOUNTS map is not pinned (no {}): a block added now \
             would not take effect; restart `ipscan run` on {i} first",
            pins.join("BLOCKCOUNTS").display()
        )
    );
    let (_, list, _) = cli(&["block", "list", "-i", &i]);
    assert!(!list.contains("198.18.0.0/24"), "nothing added: {list}");
    drop(lock);
    let (ok, _, err) = cli(&["block", "add", "198.18.0.0/24", "-i", &i]);
    assert!(ok && err.contains("no daemon is running"), "accepted once no daemon runs: {err}");
}

/// Allows kept without ALLOWCOUNTS (from an ipscan before it) are counted when the daemon
/// starts, so that an address allowed inside a prefix blocked by hand still passes; the CLI
/// refuses an allow that a running daemon's program would not see.
#[test]
fn allows_kept_without_their_counts_are_counted_at_start() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    // A sender in a /16 of its own: the victim's own addresses, which the daemon allowlists,
    // count in 198.18.0.0/16's bucket, and would have it looked up whatever the pass did.
    const SENDER: &str = "198.19.0.1";
    bed.add_attacker_addr(&format!("{SENDER}/32"));
    bed.victim.ip(&["route", "add", &format!("{SENDER}/32"), "dev", &i]);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", "198.19.0.0/16", "-i", &i]).0);
    assert!(!connects(&bed.attacker, SENDER, VICTIM4, 8080), "blocked");
    assert!(cli(&["allow", "add", SENDER, "-i", &i]).0);
    assert!(connects(&bed.attacker, SENDER, VICTIM4, 8080), "allowed inside the blocked prefix");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::remove_file(pins.join("ALLOWCOUNTS")).expect("ALLOWCOUNTS pin");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(pins.join("ALLOWCOUNTS").exists(), "pinned anew");
    assert!(connects(&bed.attacker, SENDER, VICTIM4, 8080), "the kept allow is counted");
    assert!(cli(&["allow", "del", SENDER, "-i", &i]).0);
    assert!(!connects(&bed.attacker, SENDER, VICTIM4, 8080), "blocked once the allow went");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // A daemon running without the pin (holding the lock as this test does).
    fs::remove_file(pins.join("ALLOWCOUNTS")).expect("ALLOWCOUNTS pin");
    let lock = fs::File::open(Path::new("/run/ipscan").join(format!("{i}.lock"))).expect("lock file");
    // SAFETY: valid fd; the lock goes with the file.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let (ok, _, err) = cli(&["allow", "add", SENDER, "-i", &i]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "ipscan: {i}: the running daemon's ALLOWCOUNTS map is not pinned (no {}): an allow added now \
             would not take effect; restart `ipscan run` on {i} first",
            pins.join("ALLOWCOUNTS").display()
        )
    );
    let (_, list, _) = cli(&["allow", "list", "-i", &i]);
    assert!(!list.contains(SENDER), "nothing added: {list}");
}

/// Pins removed while the daemon runs (by hand, or a cleanup of /sys/fs/bpf) are pinned again
/// within a second, to the same maps: the CLI finds the blocks and edits them, and a restart
/// keeps them.
#[test]
fn pins_removed_under_a_running_daemon_are_pinned_again() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", ATTACKER4, "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));

    // The daemon may pin some again while the directory is being removed (then it is not
    // empty): removed again until it is gone.
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    while pins.exists() {
        let _ = fs::remove_dir_all(&pins);
    }
    d.wait_stderr(" again (the pins were removed)", WAIT);
    let deadline = Instant::now() + WAIT;
    while !maps::PINNED.iter().all(|name| pins.join(name).exists()) {
        assert!(Instant::now() < deadline, "not every map was pinned again");
        thread::sleep(Duration::from_millis(100));
    }
    let (ok, list, err) = cli(&["block", "list", "-i", &i]);
    assert!(ok, "{err}");
    assert!(list.contains(ATTACKER4), "the same maps: {list}");

    // One pin: pinned again alone; a block added afterwards is counted and takes effect.
    fs::remove_file(pins.join("BLOCKCOUNTS")).expect("BLOCKCOUNTS pin");
    d.wait_stderr(&format!("ipscan: {i}: pinned BLOCKCOUNTS again (the pins were removed)"), WAIT);
    let (ok, _, err) = cli(&["block", "add", ATTACKER6, "-i", &i]);
    assert!(ok, "{err}");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "blocked");
    assert!(cli(&["block", "del", ATTACKER4, "-i", &i]).0);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "lifted");

    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "kept across a restart");
    let (status, err) = d.stop();
    assert!(status.success());
    assert!(!err.contains("restored"), "kept in the pins, not restored from the state file: {err}");
}
