//! A guard on the verifier's work: the program must stay well inside the kernel's
//! one-million-instruction budget (an open-coded rule loop once pushed it over, and the
//! per-detection path reached 643,000 before `ipscan_record_one` became a global function).
//! About 250,000 today (kernel 6.18); the guard leaves room for small changes and catches a
//! blowup.

#[test]
fn verified_instructions_stay_well_under_the_kernel_budget() {
    let p = ipscan_tests::Prog::load(&ipscan_common::Config::default());
    let prog: &aya::programs::Xdp =
        p.ebpf.program(ipscan_common::PROGRAM_NAME).expect("program").try_into().expect("xdp");
    let n = prog.info().expect("program info").verified_instruction_count().expect("kernel reports the count");
    eprintln!("verifier processed {n} instructions");
    assert!(n < 400_000, "verifier processed {n} instructions; the kernel's limit is 1,000,000");
}
