//! Names shared by the verification harnesses of the eBPF object and `ipscan check`.

/// Programs whose name starts with this are harnesses: `ipscan_verify_F` makes the kernel
/// verify the global function `ipscan_F` on its own, then refuses the program.
pub const HARNESS_PREFIX: &str = "ipscan_verify_";

/// The harness that calls nothing but the stop: the cost every harness adds to its function.
pub const NOTHING: &str = "ipscan_verify_nothing";

/// The helper number the stop function calls: no kernel has it, so the verifier's refusal
/// names it (`invalid func unknown#32767`), which tells the stop from any other refusal.
pub const STOP_HELPER: u32 = 32767;

/// The refusal of the stop function, as the kernel words it.
pub const STOP_REFUSAL: &str = "unknown#32767";
