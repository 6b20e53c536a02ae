//! `log_ip`: reverse DNS for log lines, off the event path.
//!
//! A line is never held up by a lookup. The first time an address is seen it prints bare and a
//! lookup is queued for a small pool of worker threads (getnameinfo blocks, sometimes for the
//! resolver's whole timeout); once the answer is cached, later lines print `name (address)`,
//! as iplog's `log_ip` did. Waiting even a few milliseconds per new address would let a flood
//! of spoofed sources stall the event loop, so there is no wait at all.
//!
//! Unlike iplog, a name is only ever printed next to its address: the owner of an address
//! controls its PTR record, so a name alone would let a scanner choose what the log says.

use std::{
    collections::HashMap,
    ffi::CStr,
    net::IpAddr,
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

/// How long a found name is trusted.
pub const NAME_TTL: Duration = Duration::from_secs(3600);
/// How long "no name" is remembered before asking again.
pub const NO_NAME_TTL: Duration = Duration::from_secs(600);
/// Cached addresses; past this, expired entries go, then everything (a flood of new sources
/// must not grow memory without bound).
pub const CACHE_MAX: usize = 8192;
/// Lookups waiting for a worker; more are dropped (and retried the next time the address is seen).
pub const QUEUE_MAX: usize = 1024;
/// Worker threads: lookups of unanswered addresses take the resolver's full timeout each.
pub const WORKERS: usize = 4;

/// A reverse lookup: the name of an address, or `None`.
pub type LookupFn = dyn Fn(IpAddr) -> Option<String> + Send + Sync;

#[derive(Clone, Debug)]
enum Entry {
    Pending,
    Name(String, Instant),
    NoName(Instant),
}

type Cache = Arc<Mutex<HashMap<IpAddr, Entry>>>;

/// How sources are printed.
pub trait Namer {
    fn name(&mut self, addr: std::net::IpAddr) -> String;
}

/// Prints bare addresses.
pub struct Plain;
impl Namer for Plain {
    fn name(&mut self, addr: std::net::IpAddr) -> String {
        addr.to_string()
    }
}

/// A [`Namer`] that prints `name (address)` once a background lookup has found a name.
pub struct Resolver {
    cache: Cache,
    queue: mpsc::SyncSender<IpAddr>,
}

impl Resolver {
    /// A resolver using the system's getnameinfo (hosts file, DNS, per nsswitch.conf).
    pub fn system() -> Self {
        Self::with_lookup(Arc::new(reverse_lookup))
    }

    /// A resolver with its own lookup function (tests).
    pub fn with_lookup(lookup: Arc<LookupFn>) -> Self {
        let cache: Cache = Arc::default();
        let (tx, rx) = mpsc::sync_channel::<IpAddr>(QUEUE_MAX);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WORKERS {
            let (rx, cache, lookup) = (rx.clone(), cache.clone(), lookup.clone());
            // Workers end when the Resolver (the only sender) is dropped.
            thread::spawn(move || {
                loop {
                    let addr = {
                        let Ok(guard) = rx.lock() else { return };
                        match guard.recv() {
                            Ok(a) => a,
                            Err(_) => return,
                        }
                    };
                    let entry = match lookup(addr) {
                        Some(n) => Entry::Name(n, Instant::now() + NAME_TTL),
                        None => Entry::NoName(Instant::now() + NO_NAME_TTL),
                    };
                    if let Ok(mut c) = cache.lock() {
                        c.insert(addr, entry);
                    }
                }
            });
        }
        Self { cache, queue: tx }
    }

    /// What is known about an address now, queueing a lookup when nothing is.
    fn lookup_cached(&mut self, addr: IpAddr) -> Option<String> {
        let now = Instant::now();
        let Ok(mut cache) = self.cache.lock() else {
            return None;
        };
        match cache.get(&addr) {
            Some(Entry::Name(n, until)) if *until > now => return Some(n.clone()),
            Some(Entry::NoName(until)) if *until > now => return None,
            Some(Entry::Pending) => return None,
            _ => {}
        }
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, e| match e {
                Entry::Pending => true,
                Entry::Name(_, until) | Entry::NoName(until) => *until > now,
            });
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        if self.queue.try_send(addr).is_ok() {
            cache.insert(addr, Entry::Pending);
        }
        None
    }
}

impl Namer for Resolver {
    fn name(&mut self, addr: IpAddr) -> String {
        match self.lookup_cached(addr) {
            Some(name) => format!("{name} ({addr})"),
            None => addr.to_string(),
        }
    }
}

/// Whether a PTR answer is printable as a host name: letters, digits, `-`, `_` and `.` only (a
/// PTR record can hold any bytes, and log lines must not carry control characters or spaces),
/// and not an address itself (iplog's "ends in a digit" test, made exact).
pub fn plausible_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.parse::<IpAddr>().is_err()
}

/// getnameinfo(3) with NI_NAMEREQD: the name of an address, or `None`.
pub fn reverse_lookup(addr: IpAddr) -> Option<String> {
    // SAFETY: zeroed sockaddr structs are valid; we fill family, port and address.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        IpAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.octets();
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: valid sockaddr of `len` bytes, host buffer of the given size, no service buffer.
    let rc = unsafe {
        libc::getnameinfo(
            (&raw const storage).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates the host buffer on success.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) }.to_str().ok()?;
    plausible_name(name).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn wait_for(r: &mut Resolver, addr: IpAddr, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = r.name(addr);
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "still {got:?}, want {want:?}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn first_sight_is_bare_then_named_and_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let mut r = Resolver::with_lookup(Arc::new(move |a: IpAddr| {
            c.fetch_add(1, Ordering::SeqCst);
            // A slow resolver: the caller must not wait for it.
            thread::sleep(Duration::from_millis(50));
            (a.to_string() == "198.18.0.1").then(|| "scanner.test".to_owned())
        }));
        let a: IpAddr = "198.18.0.1".parse().expect("ip");
        let t = Instant::now();
        assert_eq!(r.name(a), "198.18.0.1", "never waits for the lookup");
        assert!(t.elapsed() < Duration::from_millis(40));
        wait_for(&mut r, a, "scanner.test (198.18.0.1)");
        let b: IpAddr = "2001:db8::9".parse().expect("ip");
        assert_eq!(r.name(b), "2001:db8::9");
        thread::sleep(Duration::from_millis(200));
        assert_eq!(r.name(b), "2001:db8::9", "no name: the address");
        for _ in 0..100 {
            r.name(a);
            r.name(b);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one lookup per address");
    }

    #[test]
    fn names_are_checked() {
        assert!(plausible_name("host-1.example.org"));
        for bad in ["", "1.2.3.4", "::1", "evil name", "a\nb", "x\u{1b}[31m"] {
            assert!(!plausible_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn system_lookup_of_loopback_does_not_crash() {
        // /etc/hosts normally names 127.0.0.1 "localhost"; either way the call must return.
        let n = reverse_lookup("127.0.0.1".parse().expect("ip"));
        assert!(n.as_deref().is_none_or(plausible_name));
    }
}
