//! Listening sockets of this network namespace, for `blackhole`: the LISTEN map holds
//! `(protocol << 16) | port` for every listening TCP port and every bound UDP port.

use std::{collections::BTreeSet, fs};

use aya::maps::{HashMap, MapData};

const PROTO_TCP: u32 = 6;
const PROTO_UDP: u32 = 17;
/// /proc/net/tcp state of a listening socket.
const TCP_LISTEN: &str = "0A";

/// Ports in one /proc/net/{tcp,udp}[6] table; `tcp` keeps only listening sockets.
pub fn ports_in(text: &str, tcp: bool) -> BTreeSet<u16> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(1)?;
            let state = f.get(3)?;
            if tcp && *state != TCP_LISTEN {
                return None;
            }
            let port = local.rsplit(':').next()?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

/// The map keys for the host's listening sockets now.
pub fn current() -> BTreeSet<u32> {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let mut keys = BTreeSet::new();
    for (file, proto, tcp) in [
        ("/proc/net/tcp", PROTO_TCP, true),
        ("/proc/net/tcp6", PROTO_TCP, true),
        ("/proc/net/udp", PROTO_UDP, false),
        ("/proc/net/udp6", PROTO_UDP, false),
    ] {
        for port in ports_in(&read(file), tcp) {
            keys.insert(proto << 16 | port as u32);
        }
    }
    keys
}

/// Makes the LISTEN map equal `want`; returns (added, removed).
pub fn sync(map: &mut HashMap<MapData, u32, u8>, want: &BTreeSet<u32>) -> (usize, usize) {
    let have: BTreeSet<u32> = map.keys().filter_map(Result::ok).collect();
    let mut added = 0;
    let mut removed = 0;
    for k in want.difference(&have) {
        if map.insert(k, 1, 0).is_ok() {
            added += 1;
        }
    }
    for k in have.difference(want) {
        if map.remove(k).is_ok() {
            removed += 1;
        }
    }
    (added, removed)
}

/// The first port of the ephemeral range (net.ipv4.ip_local_port_range), 32768 if unreadable.
pub fn ephemeral_low() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(32768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        assert_eq!(ports_in(tcp, true).into_iter().collect::<Vec<_>>(), vec![22]);
        let udp = "  sl  local_address rem_address   st\n  5: 00000000:0035 00000000:0000 07 0\n  6: 00000000:D431 0100007F:0035 01 0\n";
        assert_eq!(ports_in(udp, false).into_iter().collect::<Vec<_>>(), vec![53, 54321]);
    }
}
