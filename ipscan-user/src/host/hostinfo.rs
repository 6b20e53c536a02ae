//! Host facts for the default allowlist: own addresses, default gateways, nameservers.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Every address configured on an interface of this network namespace.
pub fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills ifap with a list we free below.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs made.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of the family it names.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                // SAFETY: AF_INET means sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            } else if fam == libc::AF_INET6 {
                // SAFETY: AF_INET6 means sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: ifap came from getifaddrs.
    unsafe { libc::freeifaddrs(ifap) };
    out.sort();
    out.dedup();
    out
}

/// Gateways of the default routes (IPv4 from /proc/net/route, IPv6 from /proc/net/ipv6_route).
pub fn default_gateways() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(text) = fs::read_to_string("/proc/net/route") {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 7
                && f[1] == "00000000"
                && f[7] == "00000000"
                && let Ok(gw) = u32::from_str_radix(f[2], 16)
                && gw != 0
            {
                out.push(IpAddr::V4(route_gateway(gw)));
            }
        }
    }
    if let Ok(text) = fs::read_to_string("/proc/net/ipv6_route") {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 10
                && f[1] == "00"
                && f[0].chars().all(|c| c == '0')
                && let Ok(n) = u128::from_str_radix(f[4], 16)
                && n != 0
            {
                out.push(IpAddr::V6(Ipv6Addr::from(n)));
            }
        }
    }
    out
}

/// /proc/net/route prints the gateway as the in-memory (network order) u32 read as a host
/// (little-endian) integer: `0100A8C0` is 192.168.0.1.
fn route_gateway(hex_value: u32) -> Ipv4Addr {
    Ipv4Addr::from(hex_value.to_le_bytes())
}

/// Where the nameservers are.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameservers of /etc/resolv.conf (one parser for the allowlist and `ignore_dns`).
pub fn nameservers() -> Vec<IpAddr> {
    nameservers_in(std::path::Path::new(RESOLV_CONF))
}

/// The nameserver addresses of a resolv.conf; an unreadable file has none.
pub fn nameservers_in(path: &std::path::Path) -> Vec<IpAddr> {
    std::fs::read_to_string(path).map(|t| parse_nameservers(&t)).unwrap_or_default()
}

/// `nameserver ADDR` lines of resolv.conf text (`#` and `;` comments; a zone index such as
/// `fe80::1%eth0` is dropped, since the address alone is what arrives on the wire).
pub fn parse_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let a = w.next()?;
            a.split('%').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_gateway_byte_order() {
        assert_eq!(route_gateway(0x0100_A8C0), Ipv4Addr::new(192, 168, 0, 1));
    }

    #[test]
    fn own_addresses_include_loopback() {
        assert!(own_addresses().contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
