//! Builds the benchmark's own XDP programs (bench/ebpf) for bpfel-unknown-none with nightly and
//! bpf-linker (via aya-build), so that `include_bytes_aligned!` in `objects.rs` embeds them. The
//! ipscan program itself comes with the `ipscan` library, built by ipscan-user's build.rs.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let meta = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "ipscan-bench-ebpf")
        .ok_or_else(|| anyhow!("ipscan-bench-ebpf package not found in the workspace"))?;
    let root = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    // The shared crates are dependencies of the eBPF crate: rebuild when they change too.
    println!("cargo:rerun-if-changed={}", root.join("../../ipscan-common/src"));
    println!("cargo:rerun-if-changed={}", root.join("../common/src"));
    aya_build::build_ebpf(
        [aya_build::Package { name: "ipscan-bench-ebpf", root_dir: root.as_str(), ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
