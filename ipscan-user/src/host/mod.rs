//! Facts about the host the daemon runs on: its addresses, gateways and nameservers, its
//! listening sockets, its interfaces and their links.

pub mod hostinfo;
pub mod listen;
pub mod netif;
pub mod netlink;
