//! Builds the eBPF crate for bpfel-unknown-none with nightly and bpf-linker (via aya-build),
//! so that `include_bytes_aligned!` in `loader.rs` embeds the object.

use anyhow::{Context as _, anyhow};

/// Programs of the ipscan-ebpf crate that `include_bytes_aligned!` embeds.
const EBPF_BINS: [&str; 1] = ["ipscan"];

fn main() -> anyhow::Result<()> {
    if std::env::var_os("CARGO_FEATURE_WITHOUT_EBPF").is_some() {
        // The fuzz crate (fuzz/) links ipscan-user for its config parser only: an eBPF build
        // under the fuzzer's flags would cost minutes of CI for objects nothing loads.
        let out = std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?;
        for bin in EBPF_BINS {
            let path = std::path::Path::new(&out).join(bin);
            std::fs::write(&path, b"").with_context(|| format!("write {}", path.display()))?;
        }
        println!("cargo:warning=ipscan-user built without-ebpf: empty eBPF objects, loading fails");
        return Ok(());
    }
    let meta = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = meta
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "ipscan-ebpf")
        .ok_or_else(|| anyhow!("ipscan-ebpf package not found in the workspace"))?;
    let root = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    // The shared crate is a dependency of the eBPF crate: rebuild when it changes too.
    println!("cargo:rerun-if-changed={}", root.join("../ipscan-common/src"));
    aya_build::build_ebpf(
        [aya_build::Package { name: "ipscan-ebpf", root_dir: root.as_str(), ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
