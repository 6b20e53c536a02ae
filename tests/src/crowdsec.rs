//! A real CrowdSec Local API (Debian's `crowdsec`, run as `crowdsec -no-cs`: the LAPI alone) in
//! a namespace of its own, with its own configuration and SQLite database in a scratch
//! directory, joined to the victims of testbeds by veth pairs so their daemons reach it.

use std::{
    fs,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{NetNs, TempDir, Testbed, unique_tag};

/// The LAPI's port in its namespace.
pub const LAPI_PORT: u16 = 8080;

/// A running LAPI, stopped and removed on drop.
pub struct Lapi {
    pub ns: NetNs,
    pub dir: TempDir,
    child: Option<Child>,
    links: usize,
    tag: String,
}

impl Lapi {
    /// Starts the LAPI and waits until it answers.
    pub fn start() -> Self {
        let tag = unique_tag();
        let ns = NetNs::new(format!("ipst-{tag}-l"));
        let dir = TempDir::new();
        let d = dir.path.display().to_string();
        fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("{e}"));
        let config = format!(
            "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n\
             config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n  simulation_path: {d}/simulation.yaml\n  \
             hub_dir: {d}/hub/\n  index_path: {d}/hub/.index.json\n\
             db_config:\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n  use_wal: false\n\
             api:\n  client:\n    credentials_path: {d}/local_api_credentials.yaml\n  \
             server:\n    listen_uri: 0.0.0.0:{LAPI_PORT}\n    profiles_path: {d}/profiles.yaml\n    \
             trusted_ips:\n      - 127.0.0.1\n\
             prometheus:\n  enabled: false\n"
        );
        // The default profile: an alert that asks for remediation on an address bans it for 4 h.
        let profiles = "name: default_ip_remediation\nfilters:\n - Alert.Remediation == true && Alert.GetScope() == \"Ip\"\n\
                        decisions:\n - type: ban\n   duration: 4h\non_success: break\n";
        for (name, text) in [
            ("config.yaml", config.as_str()),
            ("profiles.yaml", profiles),
            ("simulation.yaml", "simulation: off\n"),
            ("local_api_credentials.yaml", &format!("url: http://127.0.0.1:{LAPI_PORT}/\n")),
        ] {
            fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let log = fs::File::create(dir.join("lapi.log")).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = ns.cmd("crowdsec");
        cmd.args(["-c", &format!("{d}/config.yaml"), "-no-cs"])
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("{e}")))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the LAPI dies with the test.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("crowdsec (apt-get install crowdsec): {e}"));
        let mut lapi = Self { ns, dir, child: Some(child), links: 0, tag };
        lapi.wait_ready();
        // The machine cscli itself uses for `decisions add` and `delete`.
        lapi.cscli(&[
            "machines",
            "add",
            "cscli",
            "--auto",
            "-f",
            &format!("{d}/local_api_credentials.yaml"),
            "--url",
            &format!("http://127.0.0.1:{LAPI_PORT}/"),
        ]);
        lapi
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let up = self
                .ns
                .cmd("python3")
                .args(["-c", &format!("import socket; socket.create_connection(('127.0.0.1', {LAPI_PORT}), 1)")])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("crowdsec exited ({status}): {}", self.log());
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("the LAPI did not come up: {}", self.log());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("lapi.log")).unwrap_or_default()
    }

    /// Runs `cscli -c CONFIG ARGS` in the LAPI's namespace; panics unless it succeeds. Returns
    /// its standard output.
    pub fn cscli(&self, args: &[&str]) -> String {
        let out = self
            .ns
            .cmd("cscli")
            .arg("-c")
            .arg(self.dir.join("config.yaml"))
            .args(args)
            .current_dir(&self.dir.path)
            .output()
            .unwrap_or_else(|e| panic!("cscli: {e}"));
        assert!(
            out.status.success(),
            "cscli {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Joins a testbed's victim to the LAPI by a veth pair of its own (198.19.N.0/30); returns
    /// the LAPI's URL as the victim reaches it.
    pub fn link(&mut self, bed: &Testbed) -> String {
        self.links += 1;
        let n = self.links;
        let (lapi_if, victim_if) = (format!("cl{n}{}", self.tag), format!("cv{n}{}", self.tag));
        let status = Command::new("ip")
            .args(["link", "add", &lapi_if, "netns", &self.ns.name, "type", "veth", "peer", "name", &victim_if])
            .args(["netns", &bed.victim.name])
            .status()
            .unwrap_or_else(|e| panic!("ip: {e}"));
        assert!(status.success(), "ip link add {lapi_if}");
        self.ns.ip(&["addr", "add", &format!("198.19.{n}.1/30"), "dev", &lapi_if]);
        self.ns.ip(&["link", "set", &lapi_if, "up"]);
        bed.victim.ip(&["addr", "add", &format!("198.19.{n}.2/30"), "dev", &victim_if]);
        bed.victim.ip(&["link", "set", &victim_if, "up"]);
        format!("http://198.19.{n}.1:{LAPI_PORT}/")
    }

    /// A bouncer's API key, written to a file in `dir` (as `crowdsec bouncer` reads it).
    pub fn bouncer(&self, name: &str, dir: &TempDir) -> std::path::PathBuf {
        let key: String = format!("{name}{}", "0123456789abcdef0123456789abcdef").chars().take(32).collect();
        self.cscli(&["bouncers", "add", name, "-k", &key]);
        let path = dir.join(&format!("{name}.key"));
        fs::write(&path, format!("{key}\n")).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    /// A machine's login with its password in a file in `dir` (as `crowdsec machine` reads it).
    pub fn machine(&self, name: &str, dir: &TempDir) -> std::path::PathBuf {
        let password = format!("{name}-password-0123456789");
        self.cscli(&["machines", "add", name, "--password", &password, "-f", "/dev/null"]);
        let path = dir.join(&format!("{name}.password"));
        fs::write(&path, format!("{password}\n")).unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
