//! `ipscan generate man|completions DIR`: manual pages and shell completions made from the clap
//! definitions of [`super::command`], for packages (`cargo xtask deb`). Not part of that command
//! line: `ipscan --help` and the completions do not offer it.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use clap::Parser;
use clap_complete::Shell;
use clap_mangen::{
    Man,
    roff::{Roff, bold, roman},
};

use crate::kernel::{persist, pins};

/// The first argument that selects this command line instead of [`super::Cli`].
pub const NAME: &str = "generate";

/// Manual section of every page (system administration: the daemon needs root).
const SECTION: &str = "8";

/// Write ipscan's manual pages or shell completions (for packaging).
#[derive(Parser, Debug)]
#[command(name = "ipscan-generate", bin_name = "ipscan generate")]
struct GenerateCli {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Write ipscan.8 and one page per command (ipscan-run.8, ipscan-block-add.8, ...) to DIR.
    Man {
        /// Directory to write to (created if missing).
        dir: PathBuf,
    },
    /// Write bash (ipscan.bash), zsh (_ipscan) and fish (ipscan.fish) completions to DIR.
    Completions {
        /// Directory to write to (created if missing).
        dir: PathBuf,
    },
}

/// Runs `ipscan generate ...`; `args` starts with "generate".
pub(super) fn generate(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<()> {
    match GenerateCli::parse_from(args).what {
        What::Man { dir } => {
            create(&dir)?;
            for path in man_pages(&dir)? {
                println!("{}", path.display());
            }
        }
        What::Completions { dir } => {
            create(&dir)?;
            for path in completions(&dir)? {
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}

fn create(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Writes ipscan.8 and a page per visible command and subcommand; returns their paths.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = super::command().disable_help_subcommand(true);
    // Gives every subcommand its display name (ipscan-block-add), the page's title and file name.
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, dir, true, &mut written)?;
    Ok(written)
}

fn page(cmd: &clap::Command, dir: &Path, top: bool, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let man = Man::new(cmd.clone()).section(SECTION).manual("System Manager's Manual");
    let path = dir.join(man.get_filename());
    let mut text = Vec::new();
    man.render(&mut text)?;
    if top {
        files_section().to_writer(&mut text)?;
    }
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub, dir, false, written)?;
    }
    Ok(())
}

/// FILES and SEE ALSO of ipscan.8: where a packaged ipscan keeps what.
fn files_section() -> Roff {
    let files = [
        (
            "/etc/ipscan/ipscan.conf",
            "The configuration the systemd unit passes with --config: iplog.conf syntax, every \
             keyword described in the file's comments.",
        ),
        ("/var/log/ipscan/ipscan.log", "The log the systemd unit writes (--log-file)."),
        (pins::DEFAULT_PIN_ROOT, "The pinned maps of each interface's daemon (--pin-root)."),
        (persist::DEFAULT_STATE_DIR, "Blocks and allows saved to survive a reboot (--state-dir)."),
        (pins::LOCK_DIR, "One lock file per interface: one daemon per interface."),
        (
            "/usr/share/ipscan/ossec",
            "OSSEC and Wazuh decoders and rules for the log, and ipscan-block.sh, an active \
             response that runs ipscan block.",
        ),
    ];
    let mut roff = Roff::default();
    roff.control("SH", ["FILES"]);
    for (path, what) in files {
        roff.control("TP", [] as [&str; 0]);
        roff.text([bold(path)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "/usr/share/doc/ipscan/README.md: every command, the configuration, the detections and \
         blocking in detail. systemctl(1): the unit is ipscan.service, not enabled on install.",
    )]);
    roff
}

/// Writes bash, zsh and fish completions; returns their paths.
pub fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = super::command();
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "ipscan", dir)
            .with_context(|| format!("cannot write the {shell} completions to {}", dir.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ipscan-generate-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_page_per_command_and_none_for_generate() {
        let dir = scratch("man");
        let pages = man_pages(&dir).expect("pages");
        let mut names: Vec<String> =
            pages.iter().map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect();
        names.sort();
        for want in ["ipscan.8", "ipscan-run.8", "ipscan-replay.8", "ipscan-block.8", "ipscan-block-add.8"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        for want in ["ipscan-allow-flush.8", "ipscan-top.8", "ipscan-stats.8", "ipscan-check.8"] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate") || n.contains("help")), "{names:?}");
        let top = fs::read_to_string(dir.join("ipscan.8")).expect("ipscan.8");
        assert!(top.contains("\n.TH ipscan 8 "), "{top}");
        for sub in ["run", "replay", "block", "allow", "top", "stats", "check"] {
            assert!(top.contains(&format!("ipscan\\-{sub}(8)")), "ipscan-{sub}(8) in ipscan.8");
        }
        assert!(top.contains(".SH FILES") && top.contains("/etc/ipscan/ipscan.conf"));
        let run = fs::read_to_string(dir.join("ipscan-run.8")).expect("ipscan-run.8");
        assert!(run.contains("pin\\-root") && !run.contains("test\\-refusal"), "hidden options stay hidden");
        fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn completions_for_three_shells_without_generate() {
        let dir = scratch("completions");
        let paths = completions(&dir).expect("completions");
        assert_eq!(paths.len(), 3);
        for name in ["ipscan.bash", "_ipscan", "ipscan.fish"] {
            let text = fs::read_to_string(dir.join(name)).expect(name);
            assert!(text.contains("replay") && text.contains("flush"), "{name}");
            assert!(!text.contains("generate"), "{name} offers generate");
        }
        fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn generate_is_not_a_command_of_the_cli() {
        assert!(super::super::command().find_subcommand(NAME).is_none());
        let help = super::super::command().render_long_help().to_string();
        assert!(!help.contains(NAME));
    }
}
