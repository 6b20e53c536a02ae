//! Network namespaces and the veth testbed: an attacker and a victim namespace joined by a veth
//! pair, each removed on drop so a crashed run leaves nothing that breaks the next; and what the
//! tests read back about an interface (its MAC address, the XDP programs on it).

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::util::{require_root, sh, unique_tag};

fn ip(args: &[&str]) {
    sh(Command::new("ip").args(args));
}

/// A network namespace removed on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: String) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// A command that runs inside this namespace. `nsenter --net` keeps the host's /sys and
    /// bpffs visible, unlike `ip netns exec`.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path())).arg("--").arg(program);
        c
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        sh(self.cmd("sysctl").args(["-q", "-w", &format!("{key}={value}")]));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Addresses of the two ends (documentation ranges only, no default route).
pub const ATTACKER4: &str = "198.18.0.1";
pub const VICTIM4: &str = "198.18.0.2";
pub const OTHER4: &str = "198.18.0.3";
pub const ATTACKER6: &str = "2001:db8::1";
pub const VICTIM6: &str = "2001:db8::2";
pub const OTHER6: &str = "2001:db8::3";

/// Two namespaces, attacker and victim, joined by a veth pair.
pub struct Testbed {
    pub attacker: NetNs,
    pub victim: NetNs,
    /// The victim's interface, where ipscan attaches.
    pub victim_if: String,
    pub attacker_if: String,
}

impl Testbed {
    pub fn new() -> Self {
        require_root();
        let tag = unique_tag();
        let attacker = NetNs::new(format!("ipst-{tag}-a"));
        let victim = NetNs::new(format!("ipst-{tag}-v"));
        let attacker_if = format!("ia{tag}");
        let victim_if = format!("iv{tag}");
        for ns in [&attacker, &victim] {
            // Fast nmap UDP and ICMP answers: no ICMP rate limit inside the test namespaces.
            ns.sysctl("net.ipv4.icmp_ratelimit", "0");
            ns.sysctl("net.ipv6.icmp.ratelimit", "0");
        }
        let bed = Self { attacker, victim, victim_if, attacker_if };
        bed.make_link();
        bed
    }

    /// Creates the veth pair with its addresses and waits until both ends answer.
    fn make_link(&self) {
        ip(&[
            "link",
            "add",
            &self.attacker_if,
            "netns",
            &self.attacker.name,
            "type",
            "veth",
            "peer",
            "name",
            &self.victim_if,
            "netns",
            &self.victim.name,
        ]);
        for (ns, ifname, a4, a6) in [
            (&self.attacker, &self.attacker_if, ATTACKER4, ATTACKER6),
            (&self.victim, &self.victim_if, VICTIM4, VICTIM6),
        ] {
            ns.ip(&["addr", "add", &format!("{a4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{a6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        self.wait_link();
    }

    /// Deletes the veth pair (both ends go; any XDP program on them is detached by the kernel).
    pub fn delete_link(&self) {
        self.victim.ip(&["link", "del", &self.victim_if]);
    }

    /// Makes the veth pair again after [`Testbed::delete_link`]: same names, same namespaces,
    /// same addresses, new interface indexes.
    pub fn recreate_link(&self) {
        self.make_link();
    }

    /// Adds a second address to the attacker side (another source for "others still work").
    pub fn add_attacker_addr(&self, cidr: &str) {
        self.attacker.ip(&["addr", "add", cidr, "dev", &self.attacker_if, "nodad"]);
    }

    fn wait_link(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ok4 = self
                .attacker
                .cmd("ping")
                .args(["-c1", "-W1", VICTIM4])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let ok6 = self
                .attacker
                .cmd("ping")
                .args(["-6", "-c1", "-W1", VICTIM6])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok4 && ok6 {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("veth between {} and {} never came up", self.attacker.name, self.victim.name);
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // The daemon's pinned maps and lock outlive it by design; a test's do not.
        let _ = fs::remove_dir_all(Path::new("/sys/fs/bpf/ipscan").join(&self.victim_if));
        let _ = fs::remove_file(Path::new("/run/ipscan").join(format!("{}.lock", self.victim_if)));
    }
}

impl Default for Testbed {
    fn default() -> Self {
        Self::new()
    }
}

/// The MAC address of an interface in a namespace (`ip link`, since /sys is the host's).
pub fn mac_of(ns: &NetNs, iface: &str) -> String {
    let out = ns.cmd("ip").args(["link", "show", "dev", iface]).output().expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {text}"))
        .to_owned()
}

/// How many XDP programs `ip -d link` shows on an interface in a namespace.
pub fn xdp_programs(ns: &NetNs, iface: &str) -> usize {
    let out = ns.cmd("ip").args(["-d", "link", "show", "dev", iface]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).matches("prog/xdp").count()
}

/// Whether an XDP program is attached to an interface in a namespace.
pub fn xdp_attached(ns: &NetNs, iface: &str) -> bool {
    xdp_programs(ns, iface) > 0
}
