//! Host network facts: the interface of the default route.

use std::fs;

/// The interface of the IPv4 default route (lowest metric), else of the IPv6 default route.
pub fn default_route_iface() -> Option<String> {
    if let Ok(text) = fs::read_to_string("/proc/net/route") {
        let mut best: Option<(u32, String)> = None;
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            if f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" {
                let metric = f[6].parse().unwrap_or(u32::MAX);
                if best.as_ref().is_none_or(|(m, _)| metric < *m) {
                    best = Some((metric, f[0].to_owned()));
                }
            }
        }
        if let Some((_, iface)) = best {
            return Some(iface);
        }
    }
    let text = fs::read_to_string("/proc/net/ipv6_route").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // dest prefixlen src srcprefixlen nexthop metric refcnt use flags iface
        (f.len() == 10 && f[0].chars().all(|c| c == '0') && f[1] == "00" && f[9] != "lo").then(|| f[9].to_owned())
    })
}
