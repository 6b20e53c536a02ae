//! The seed's "more restrictions" in the kernel, end to end: `drop_synfin` (SYN+FIN dropped after
//! it is logged), `blackhole` (closed ports look filtered, open ones still answer) and `fool_nmap`
//! (judged by `nmap -O`'s own fingerprint).

use std::time::Duration;

use ipscan_tests::{
    ATTACKER4, Capture, Daemon, Listener, TempDir, Testbed, VICTIM4, connects, pcap, run_in, write_config,
};

const WAIT: Duration = Duration::from_secs(15);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn drop_synfin_drops_impossible_flags_after_logging_them() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "set drop_synfin\n");
    let _srv = Listener::start(&bed.victim, 80);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let sent = Capture::start(&bed.attacker, &bed.attacker_if, "tcp and src host 198.18.0.1", dir.join("sent.pcap"));
    let got = Capture::start(&bed.victim, &bed.victim_if, "tcp and src host 198.18.0.1", dir.join("got.pcap"));
    // hping3 exits 1 when nothing answers; the capture is the judge.
    let _ = bed
        .attacker
        .cmd("timeout")
        .args(["-s", "INT", "20", "hping3", "-S", "-F", "-p", "80", "-s", "5000", "-c", "5", "-i", "u20000", VICTIM4])
        .output();
    sent.finish();
    got.finish();
    let synfin = |p: &pcap::Packet| p.tcp_flags & 0x03 == 0x03;
    let sent: Vec<_> = pcap::packets(&dir.join("sent.pcap")).into_iter().filter(synfin).collect();
    let got: Vec<_> = pcap::packets(&dir.join("got.pcap")).into_iter().filter(synfin).collect();
    assert_eq!(sent.len(), 5, "hping3 sent five SYN+FIN packets");
    assert_eq!(got.len(), 0, "none reached the victim");
    let lines = d.wait_log("bogus flag lines", WAIT, |l| {
        l.iter().filter(|x| x.starts_with("TCP: Bogus TCP flags set by 198.18.0.1:")).count() == 5
    });
    for (i, p) in sent.iter().enumerate() {
        let want = format!("TCP: Bogus TCP flags set by 198.18.0.1:{} (dest port 80)", p.sport);
        assert!(lines.contains(&want), "packet {i}: want {want}\n{}", lines.join("\n"));
    }
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 80), "ordinary connections still work");
}

#[test]
fn blackhole_makes_closed_ports_look_filtered_and_leaves_open_ones() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let _srv = Listener::start(&bed.victim, 8080);
    // Without blackholing the closed ports answer (RST / port unreachable).
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &[]);
    let tcp = ["-sS", "-Pn", "-n", "-r", "--max-retries", "1", "-p", "1-20,8080", VICTIM4];
    let udp = ["-sU", "-Pn", "-n", "-r", "--max-retries", "1", "-p", "1000-1010", VICTIM4];
    let before = stdout(&run_in(&bed.attacker, 120, "nmap", &tcp));
    assert!(before.contains("closed"), "{before}");
    let before_udp = stdout(&run_in(&bed.attacker, 120, "nmap", &udp));
    assert!(before_udp.contains("closed"), "{before_udp}");
    drop(d);

    let conf = write_config(&dir, "blackhole tcp,udp\nset scans_only\n");
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let after = stdout(&run_in(&bed.attacker, 120, "nmap", &tcp));
    assert!(after.contains("8080/tcp open"), "the listening port still answers:\n{after}");
    assert!(!after.contains("closed"), "no closed port is visible:\n{after}");
    assert_eq!(after.lines().filter(|l| l.contains("/tcp ") && l.contains(" filtered ")).count(), 20, "{after}");
    let after_udp = stdout(&run_in(&bed.attacker, 120, "nmap", &udp));
    assert!(!after_udp.contains("closed"), "{after_udp}");
    assert!(after_udp.contains("open|filtered"), "{after_udp}");
    // The scan is still seen, and a client connection still works.
    d.wait_log("the scan", WAIT, |l| l.iter().any(|x| x.starts_with("TCP: SYN scan detected")));
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
}

/// The fingerprint block nmap prints after `TCP/IP fingerprint:` (with `-d` it prints it even
/// when the result is "not ideal", one test per line; otherwise wrapped in `OS:` lines),
/// joined into one string.
fn fingerprint(out: &str) -> String {
    let wrapped: String = out.lines().filter_map(|l| l.strip_prefix("OS:")).collect();
    if !wrapped.is_empty() {
        return wrapped;
    }
    out.lines()
        .skip_while(|l| !l.starts_with("TCP/IP fingerprint:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

fn test_result<'a>(fp: &'a str, name: &str) -> &'a str {
    // A test nmap got no answer at all for may be left out of the block: that is R=N too.
    let Some(start) = fp.find(&format!("{name}(")) else {
        return "";
    };
    let rest = &fp[start..];
    &rest[..rest.find(')').map_or(rest.len(), |e| e + 1)]
}

#[test]
fn fool_nmap_hides_the_hosts_answers_to_odd_probes() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let _srv = Listener::start(&bed.victim, 8080);
    // -d: print the fingerprint even when nmap finds it "not ideal" (as it will once U1 goes
    // unanswered).
    let os = ["-O", "-d", "-Pn", "-n", "-p", "1,8080", VICTIM4];
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &[]);
    let real_out = stdout(&run_in(&bed.attacker, 180, "nmap", &os));
    let real = fingerprint(&real_out);
    drop(d);
    assert!(!real.is_empty(), "nmap printed no fingerprint:\n{real_out}");
    // The host answers these probes when nothing hides it.
    let answered: Vec<&str> = ["T4", "T5", "T6", "T7", "ECN", "U1", "IE"]
        .into_iter()
        .filter(|t| test_result(&real, t).contains("R=Y") || !test_result(&real, t).contains("R=N"))
        .collect();
    assert!(answered.len() >= 4, "the real fingerprint answers most odd probes: {real}");

    let conf = write_config(&dir, "set fool_nmap\nset scans_only\n");
    let _d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let fooled_out = stdout(&run_in(&bed.attacker, 180, "nmap", &os));
    let fooled = fingerprint(&fooled_out);
    assert!(!fooled.is_empty(), "nmap printed no fingerprint:\n{fooled_out}");
    for t in ["T2", "T3", "T4", "T5", "T6", "T7", "ECN", "U1", "IE"] {
        let r = test_result(&fooled, t);
        assert!(r.is_empty() || r == format!("{t}(R=N)"), "{t}: real {}, fooled {r}\n{fooled}", test_result(&real, t));
    }
    // The ordinary SYN probe to the open port is still answered (nmap only guesses the TTL now,
    // TG= for T=, because the U1 answer it measures distance with is gone).
    assert!(test_result(&fooled, "T1").starts_with("T1(R=Y%DF=Y%"), "{fooled}");
    assert_eq!(test_result(&fooled, "WIN"), test_result(&real, "WIN"));
    assert_ne!(real, fooled);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "normal connections are unaffected");
}
