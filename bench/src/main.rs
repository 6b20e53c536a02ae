//! `ipscan-bench`: the benchmark behind `cargo xtask bench` (needs root). Prints a table of
//! ratios against baselines measured in the same run and writes it as JSON.

mod bench;
mod objects;
mod peers;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(name = "ipscan-bench")]
struct Cli {
    /// A few-second run with tiny repeats and floods: checks that every row is produced; its
    /// numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Where to write the JSON (default: target/bench/bench.json in the workspace).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only these sections (default: all): per-packet, throughput, exhaustion, block,
    /// feeds.
    #[arg(long, value_delimiter = ',')]
    only: Vec<bench::Section>,
    /// Instead of the sections: ipscan against psad and a libpcap capture on the same traffic
    /// (default JSON: target/bench/peers.json).
    #[arg(long, conflicts_with = "only")]
    peers: bool,
}

fn main() {
    let cli = Cli::parse();
    if cli.peers {
        let path = cli.json.unwrap_or_else(|| bench::default_json_path().with_file_name("peers.json"));
        peers::run(cli.smoke, &path);
        return;
    }
    let path = cli.json.unwrap_or_else(bench::default_json_path);
    bench::run(cli.smoke, &cli.only, &path);
}
