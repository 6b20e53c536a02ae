//! Builds the eBPF crate for bpfel-unknown-none with nightly and bpf-linker (via aya-build),
//! so that `include_bytes_aligned!` in `loader.rs` embeds the object.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "ipscan-ebpf")
        .ok_or_else(|| anyhow!("ipscan-ebpf package not found in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    // The shared crate is a dependency of the eBPF crate: rebuild when it changes too.
    println!("cargo:rerun-if-changed={}", root.join("../ipscan-common/src"));
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "ipscan-ebpf",
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
