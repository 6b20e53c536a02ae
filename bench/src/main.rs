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
    /// Rounds of the per-packet section (default 15; the smoke run's 2): fewer for a quick
    /// comparison of two builds, whose medians then carry more noise.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rounds: Option<u32>,
    /// Instead of the sections: run one per-packet row (by id, the new-source rows too) for
    /// 20 s, for a profiler (`perf record -a`) beside it.
    #[arg(long, conflicts_with_all = ["only", "peers"])]
    profile: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    if let Some(id) = cli.profile {
        bench::profile(&id, 20);
        return;
    }
    if cli.peers {
        let path = cli.json.unwrap_or_else(|| bench::default_json_path().with_file_name("peers.json"));
        peers::run(cli.smoke, &path);
        return;
    }
    let path = cli.json.unwrap_or_else(bench::default_json_path);
    bench::run(cli.smoke, &cli.only, cli.rounds, &path);
}
