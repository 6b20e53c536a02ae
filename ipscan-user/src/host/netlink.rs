//! Link notifications (rtnetlink RTMGRP_LINK): the daemon learns at once that an interface was
//! deleted or (re)created, instead of retrying on a timer as iplog did (every 30 s).
//!
//! Only the link's index and name are read; the daemon decides by looking the name up again, so
//! a lost or reordered notification costs nothing but time (its 1 s tick checks too).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a NETLINK_ROUTE socket: {source}")]
    Socket {
        #[source]
        source: io::Error,
    },
    #[error("cannot subscribe to link notifications: {source}")]
    Bind {
        #[source]
        source: io::Error,
    },
    #[error("reading link notifications: {source}")]
    Recv {
        #[source]
        source: io::Error,
    },
}

/// What a notification says about a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK: a link appeared or changed (up, down, renamed).
    New { index: u32, name: String },
    /// RTM_DELLINK: a link is gone.
    Del { index: u32, name: String },
    /// The socket overflowed (ENOBUFS): notifications were lost; look everything up again.
    Overrun,
}

/// A NETLINK_ROUTE socket subscribed to link notifications.
pub struct LinkWatch {
    fd: AsyncFd<OwnedFd>,
}

impl LinkWatch {
    /// Opens the socket in the caller's network namespace. Needs no privilege.
    pub fn open() -> Result<Self, NetlinkError> {
        // SAFETY: plain socket(2).
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(NetlinkError::Socket { source: io::Error::last_os_error() });
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is valid; we set the family and groups.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: valid fd and address of the stated size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(NetlinkError::Bind { source: io::Error::last_os_error() });
        }
        // SAFETY: the AsyncFd owns the socket; nothing else closes or reuses the fd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| NetlinkError::Socket { source: io::Error::from(e) })?;
        Ok(Self { fd })
    }

    /// Waits for notifications and returns every one queued.
    pub async fn next(&self) -> Result<Vec<LinkEvent>, NetlinkError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut guard = self.fd.readable().await.map_err(|source| NetlinkError::Recv { source })?;
            let mut events = Vec::new();
            loop {
                // SAFETY: valid fd and buffer of the stated length.
                let n = unsafe { libc::recv(guard.get_inner().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) => {
                            guard.clear_ready();
                            break;
                        }
                        Some(libc::EINTR) => continue,
                        Some(libc::ENOBUFS) => {
                            events.push(LinkEvent::Overrun);
                            continue;
                        }
                        _ => return Err(NetlinkError::Recv { source: e }),
                    }
                }
                events.extend(parse(buf.get(..n as usize).unwrap_or_default()));
            }
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}

const NLMSG_HDRLEN: usize = 16;
const IFINFO_LEN: usize = 16;
const RTA_HDRLEN: usize = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The link events in one netlink datagram (other messages are skipped; a truncated message
/// ends the parse).
pub fn parse(buf: &[u8]) -> Vec<LinkEvent> {
    let mut out = Vec::new();
    let mut off = 0;
    while let (Some(len), Some(ty)) = (u32_at(buf, off), u16_at(buf, off + 4)) {
        let len = len as usize;
        let Some(msg) = buf.get(off..off + len).filter(|_| len >= NLMSG_HDRLEN) else {
            break;
        };
        if (ty == libc::RTM_NEWLINK || ty == libc::RTM_DELLINK)
            && let Some(ev) = link(msg, ty)
        {
            out.push(ev);
        }
        off += align4(len);
    }
    out
}

/// One RTM_NEWLINK/RTM_DELLINK message: ifinfomsg, then attributes (IFLA_IFNAME wanted).
fn link(msg: &[u8], ty: u16) -> Option<LinkEvent> {
    // struct ifinfomsg { u8 family, u8 pad, u16 type, i32 index, u32 flags, u32 change }
    let index = u32_at(msg, NLMSG_HDRLEN + 4)?;
    let mut off = NLMSG_HDRLEN + IFINFO_LEN;
    let mut name = None;
    while let (Some(len), Some(kind)) = (u16_at(msg, off), u16_at(msg, off + 2)) {
        let len = len as usize;
        if len < RTA_HDRLEN {
            break;
        }
        let data = msg.get(off + RTA_HDRLEN..off + len)?;
        if kind == libc::IFLA_IFNAME {
            let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
            name = Some(String::from_utf8_lossy(data.get(..end)?).into_owned());
        }
        off += align4(len);
    }
    let name = name?;
    Some(if ty == libc::RTM_NEWLINK { LinkEvent::New { index, name } } else { LinkEvent::Del { index, name } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, index: u32, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let nlen = RTA_HDRLEN + name.len() + 1;
        attr.extend_from_slice(&(8u16).to_ne_bytes());
        attr.extend_from_slice(&(libc::IFLA_MTU).to_ne_bytes());
        attr.extend_from_slice(&1500u32.to_ne_bytes());
        attr.extend_from_slice(&(nlen as u16).to_ne_bytes());
        attr.extend_from_slice(&libc::IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.push(0);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = NLMSG_HDRLEN + IFINFO_LEN + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0, 0, 1, 0]);
        m.extend_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn parses_new_and_del() {
        let mut buf = msg(libc::RTM_NEWLINK, 7, "veth0");
        buf.extend(msg(libc::RTM_DELLINK, 7, "veth0"));
        buf.extend(msg(libc::RTM_NEWADDR, 7, "ignored"));
        assert_eq!(
            parse(&buf),
            vec![LinkEvent::New { index: 7, name: "veth0".into() }, LinkEvent::Del { index: 7, name: "veth0".into() },]
        );
    }

    #[test]
    fn truncated_input_is_not_a_panic() {
        let buf = msg(libc::RTM_NEWLINK, 3, "eth0");
        for n in 0..buf.len() {
            let _ = parse(&buf[..n]);
        }
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&2u32.to_ne_bytes());
        assert!(parse(&bad).is_empty());
    }
}
