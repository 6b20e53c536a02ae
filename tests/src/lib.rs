//! Shared harness for ipscan's root-only integration tests: network namespaces joined by a veth,
//! the daemon run inside one of them, real tools run in the other, and frame builders for
//! BPF_PROG_TEST_RUN.
//!
//! Every helper panics with a message instead of returning errors (STYLE rule 11), and every
//! namespace is removed on drop so a crashed run leaves nothing that breaks the next.
//!
//! | module | holds |
//! |---|---|
//! | [`util`] | the root check, commands that must succeed, unique names, scratch directories |
//! | [`ns`] | network namespaces, the attacker/victim testbed and its addresses, interface facts |
//! | [`daemon`] | `ipscan run` in a namespace, waiting for its lines; the CLI, `ipscan stats`, metrics |
//! | [`log`] | the log as tests read it: stamps checked and stripped, lines counted, port lists |
//! | [`tools`] | nmap, hping3 floods, scapy, python3 clients and listeners in a namespace |
//! | [`capture`] | tcpdump captures in a namespace |
//! | [`crowdsec`] | a real CrowdSec LAPI in a namespace of its own, its bouncers and machines |
//! | [`pcap`] | what a capture holds: packets and totals |
//! | [`frames`] | hand-built frames for BPF_PROG_TEST_RUN |
//! | [`prog`] | the XDP program under BPF_PROG_TEST_RUN: verdicts, maps, events, counters |
//!
//! The tests use the names below from the crate root.

pub mod capture;
pub mod crowdsec;
pub mod daemon;
pub mod frames;
pub mod log;
pub mod ns;
pub mod pcap;
pub mod prog;
pub mod tools;
pub mod util;

pub use capture::Capture;
pub use daemon::{Daemon, cli, counter, http_get, ipscan_bin, sample, stats_json, write_config};
pub use log::{count, json_records, log_lines, port_list, show};
pub use ns::{ATTACKER4, ATTACKER6, NetNs, OTHER4, OTHER6, Testbed, VICTIM4, VICTIM6, xdp_attached, xdp_programs};
pub use prog::{Probation, Prog, TC_ACT_OK, XDP_ABORTED, XDP_DROP, XDP_PASS, key4, key6};
pub use tools::{Flood, Listener, connects, nmap_syn, run_in, scapy};
pub use util::{TempDir, require_root, sh, unique_tag};
