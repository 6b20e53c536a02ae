//! BPF_PROG_TEST_RUN for XDP programs (aya 0.14 has no wrapper): runs the loaded program on a
//! frame in the kernel and returns its verdict. Used by replay, tests and benchmarks.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

/// `bpf(2)` command number of BPF_PROG_TEST_RUN.
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// Run the program on "live" frames that go out through the driver (a packet generator).
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The `test` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `struct xdp_md` as the test-run context (ingress interface for live frames).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

/// Outcome of one test run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// The XDP verdict (`XDP_PASS` = 2, `XDP_DROP` = 1, `XDP_ABORTED` = 0, ...).
    pub verdict: u32,
    /// Average nanoseconds per run as measured by the kernel.
    pub duration_ns: u32,
}

/// Runs `prog` on `frame` `repeat` times (0 and 1 both mean once).
pub fn run(prog: &impl AsFd, frame: &[u8], repeat: u32) -> io::Result<RunResult> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = TestRunAttr {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    sys_test_run(&mut attr)?;
    Ok(RunResult { verdict: attr.retval, duration_ns: attr.duration })
}

/// Sends `frame` `repeat` times as live frames through the program, then out of interface
/// `ifindex` when the program returns XDP_TX (the project's packet generator).
pub fn run_live(prog: &impl AsFd, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> io::Result<RunResult> {
    let ctx = XdpMd { data: 0, data_end: frame.len() as u32, ingress_ifindex: ifindex, ..Default::default() };
    let mut attr = TestRunAttr {
        prog_fd: prog.as_fd().as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..Default::default()
    };
    sys_test_run(&mut attr)?;
    Ok(RunResult { verdict: attr.retval, duration_ns: attr.duration })
}

fn sys_test_run(attr: &mut TestRunAttr) -> io::Result<()> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix of the given size; the kernel writes
    // only into it and into the out buffer whose size it was told.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, attr as *mut TestRunAttr, size_of::<TestRunAttr>() as u32)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
