//! Just enough of the pcap format to count what a capture holds: the test's ground truth for
//! "received a total of N packets (B bytes)".

use std::{fs, path::Path};

/// Packets and IP payload bytes (IP length minus IP header, as iplog counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
}

/// Counts Ethernet frames carrying IPv4 or IPv6 in a classic pcap file (linktype 1).
pub fn totals(path: &Path) -> Totals {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: not a pcap file", path.display());
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let le = match magic {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        _ => panic!("{}: bad pcap magic {magic:#x}", path.display()),
    };
    let rd32 = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
    };
    let mut t = Totals::default();
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = rd32(&data[off + 8..]) as usize;
        let frame = &data[off + 16..(off + 16 + incl).min(data.len())];
        off += 16 + incl;
        if frame.len() < 14 {
            continue;
        }
        let mut et = u16::from_be_bytes([frame[12], frame[13]]);
        let mut l3 = 14;
        while (et == 0x8100 || et == 0x88a8) && frame.len() >= l3 + 4 {
            et = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]);
            l3 += 4;
        }
        let ip = &frame[l3.min(frame.len())..];
        match et {
            0x0800 if ip.len() >= 20 => {
                let ihl = ((ip[0] & 0x0f) as u64) * 4;
                let total = u16::from_be_bytes([ip[2], ip[3]]) as u64;
                t.packets += 1;
                t.bytes += total.saturating_sub(ihl);
            }
            0x86dd if ip.len() >= 40 => {
                t.packets += 1;
                t.bytes += u16::from_be_bytes([ip[4], ip[5]]) as u64;
            }
            _ => {}
        }
    }
    t
}

/// One captured IP packet, as much as the tests need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub ttl: u8,
    /// IP payload bytes.
    pub payload: u64,
}

/// Every IPv4/IPv6 packet in a capture (no IPv6 extension headers expected).
pub fn packets(path: &Path) -> Vec<Packet> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: not a pcap file", path.display());
    let le = matches!(u32::from_le_bytes([data[0], data[1], data[2], data[3]]), 0xa1b2c3d4 | 0xa1b23c4d);
    let rd32 = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = rd32(&data[off + 8..]) as usize;
        let f = &data[off + 16..(off + 16 + incl).min(data.len())];
        off += 16 + incl;
        if f.len() < 14 {
            continue;
        }
        let et = u16::from_be_bytes([f[12], f[13]]);
        let ip = &f[14..];
        let (src, dst, proto, ttl, payload, l4) = match et {
            0x0800 if ip.len() >= 20 => {
                let ihl = ((ip[0] & 0x0f) as usize) * 4;
                let total = u16::from_be_bytes([ip[2], ip[3]]) as u64;
                let s: [u8; 4] = ip[12..16].try_into().expect("4 bytes");
                let d: [u8; 4] = ip[16..20].try_into().expect("4 bytes");
                (s.into(), d.into(), ip[9], ip[8], total - ihl as u64, &ip[ihl.min(ip.len())..])
            }
            0x86dd if ip.len() >= 40 => {
                let s: [u8; 16] = ip[8..24].try_into().expect("16 bytes");
                let d: [u8; 16] = ip[24..40].try_into().expect("16 bytes");
                let pl = u16::from_be_bytes([ip[4], ip[5]]) as u64;
                (s.into(), d.into(), ip[6], ip[7], pl, &ip[40..])
            }
            _ => continue,
        };
        let (sport, dport) = if (proto == 6 || proto == 17) && l4.len() >= 4 {
            (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]))
        } else {
            (0, 0)
        };
        let tcp_flags = if proto == 6 && l4.len() >= 14 { l4[13] } else { 0 };
        out.push(Packet { src, dst, proto, sport, dport, tcp_flags, ttl, payload });
    }
    out
}

/// The first `n` distinct values of `f` over `packets`, in order.
pub fn first_distinct<T: PartialEq + Copy>(packets: &[Packet], n: usize, f: impl Fn(&Packet) -> T) -> Vec<T> {
    let mut v: Vec<T> = Vec::new();
    for p in packets {
        let x = f(p);
        if !v.contains(&x) {
            v.push(x);
            if v.len() == n {
                break;
            }
        }
    }
    v
}

/// Whether TCP flags are a SYN probe's: SYN without ACK, FIN or RST (ECN bits aside).
pub fn is_syn(flags: u8) -> bool {
    flags & 0x17 == 0x02
}

/// The SYN probes to ports 1-40 in a capture: what [`crate::tools::nmap_syn`] sends.
pub fn syn_probes(path: &Path) -> Vec<Packet> {
    packets(path).into_iter().filter(|p| p.proto == 6 && is_syn(p.tcp_flags) && p.dport <= 40).collect()
}

/// The detection line iplog would write for `pkts`, crossing at `threshold` distinct ports.
pub fn expected_detection(label: &str, src: &str, pkts: &[Packet], threshold: usize) -> String {
    let mut seen: Vec<u16> = Vec::new();
    let mut upto = Vec::new();
    for p in pkts {
        upto.push(p.clone());
        if !seen.contains(&p.dport) {
            seen.push(p.dport);
        }
        if seen.len() == threshold {
            break;
        }
    }
    assert_eq!(seen.len(), threshold, "the capture never reached {threshold} ports");
    let dports = first_distinct(&upto, 10, |p| p.dport);
    let sports = first_distinct(&upto, 5, |p| p.sport);
    format!(
        "{label} detected {} from {src} {}",
        crate::log::port_list(&dports, seen.len() >= 10),
        crate::log::port_list(&sports, sports.len() >= 5)
    )
}
