//! Impossible TCP flag combinations and IP fragment attacks end to end: hping3 and scapy from the
//! attacker namespace, `ipscan run` in the victim namespace. Bogus flags (SYN+FIN, SYN+RST, all
//! flags, IPv4 and IPv6) are logged and ECN is not; duplicate, overlapping, oversized and tiny
//! fragments are logged once each. (Malformed frames through the program itself: malformed.rs;
//! dropping SYN+FIN: hardening.rs.)

use std::process::Stdio;

use ipscan_tests::{ATTACKER4, ATTACKER6, Daemon, TempDir, Testbed, VICTIM4, VICTIM6, scapy};

#[test]
fn bogus_flag_combinations_but_not_ecn() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\n");
    let hp = |flags: &[&str], dport: &str, sport: &str| {
        let mut a = vec!["-q"];
        a.extend_from_slice(flags);
        a.extend(["-p", dport, "-s", sport, "-k", "-c", "1", VICTIM4]);
        // hping3 exits 1 when nothing answers (the victim ignores SYN+RST): not a failure here.
        let status = bed
            .attacker
            .cmd("timeout")
            .args(["-s", "INT", "10", "hping3"])
            .args(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run hping3");
        assert!(matches!(status.code(), Some(0 | 1)), "hping3 {a:?}: {status}");
    };
    hp(&["-S", "-F"], "80", "40000");
    hp(&["-S", "-R"], "81", "40001");
    hp(&["-A", "-X", "-Y"], "82", "40002"); // ACK with ECE and CWR: ordinary ECN traffic
    scapy(
        &bed,
        &format!(
            "send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40003, dport=83, flags='FSRPAUEC'),\n\
             IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40004, dport=84, flags='FR'),\n\
             IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40005, dport=85, flags='SEC')])\n\
             send6([IPv6(src='{ATTACKER6}', dst='{VICTIM6}')/TCP(sport=40006, dport=86, flags='SF')])"
        ),
    );
    let want: Vec<String> = [
        format!("{ATTACKER4}:40000 (dest port 80)"),
        format!("{ATTACKER4}:40001 (dest port 81)"),
        format!("{ATTACKER4}:40003 (dest port 83)"),
        format!("{ATTACKER4}:40004 (dest port 84)"),
        format!("[{ATTACKER6}]:40006 (dest port 86)"),
    ]
    .iter()
    .map(|t| format!("TCP: Bogus TCP flags set by {t}"))
    .collect();
    d.wait_exactly(&want, "ECN (ports 82, 85) is not bogus");
}

#[test]
fn fragment_attacks_v4_and_v6() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\n");
    scapy(
        &bed,
        &format!(
            "h = dict(src='{ATTACKER4}', dst='{VICTIM4}')\n\
             dup = IP(id=1000, flags='MF', frag=0, proto=17, **h)/Raw(b'a' * 16)\n\
             send4([dup, dup])\n\
             send4([IP(id=1001, flags='MF', frag=0, proto=17, **h)/Raw(b'a' * 24),\n\
                    IP(id=1001, flags='MF', frag=1, proto=17, **h)/Raw(b'b' * 16)])\n\
             send4([IP(id=1002, frag=8189, proto=17, **h)/Raw(b'c' * 100)])\n\
             send4([IP(id=1003, flags='MF', frag=0, proto=6, **h)/Raw(b'd' * 8)])\n\
             f6 = IPv6(src='{ATTACKER6}', dst='{VICTIM6}')/IPv6ExtHdrFragment(id=2000, offset=0, m=1, nh=17)/Raw(b'e' * 16)\n\
             send6([f6, f6])"
        ),
    );
    let want = vec![
        format!("Duplicate IP fragments from {ATTACKER4}"),
        format!("Overlapping IP fragments from {ATTACKER4}"),
        format!("Oversized IP fragment from {ATTACKER4}"),
        format!("Tiny IP fragment from {ATTACKER4}"),
        format!("Duplicate IP fragments from {ATTACKER6}"),
    ];
    d.wait_exactly(&want, "exactly these lines, once each");
}
