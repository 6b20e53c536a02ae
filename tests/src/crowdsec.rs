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
    /// `https` with a certificate of its own CA ([`Lapi::ca`]), else `http`.
    scheme: &'static str,
}

impl Lapi {
    /// Starts the LAPI over plain HTTP and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts the LAPI over HTTPS, with a certificate (for the addresses of [`Lapi::link`])
    /// signed by a CA made for it, `ca.pem` in its directory ([`Lapi::ca`]).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The CA of [`Lapi::start_tls`].
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(tls: bool) -> Self {
        let tag = unique_tag();
        let ns = NetNs::new(format!("ipst-{tag}-l"));
        let dir = TempDir::new();
        let d = dir.path.display().to_string();
        fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("{e}"));
        let scheme = if tls { "https" } else { "http" };
        let (server_tls, client_tls) = if tls {
            make_certs(&dir);
            (
                format!("    tls:\n      cert_file: {d}/lapi.pem\n      key_file: {d}/lapi.key\n"),
                "    insecure_skip_verify: true\n".to_owned(),
            )
        } else {
            (String::new(), String::new())
        };
        let config = format!(
            "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n\
             config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n  simulation_path: {d}/simulation.yaml\n  \
             hub_dir: {d}/hub/\n  index_path: {d}/hub/.index.json\n\
             db_config:\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n  use_wal: false\n\
             api:\n  client:\n    credentials_path: {d}/local_api_credentials.yaml\n{client_tls}  \
             server:\n    listen_uri: 0.0.0.0:{LAPI_PORT}\n    profiles_path: {d}/profiles.yaml\n{server_tls}    \
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
            ("local_api_credentials.yaml", &format!("url: {scheme}://127.0.0.1:{LAPI_PORT}/\n")),
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
        let mut lapi = Self { ns, dir, child: Some(child), links: 0, tag, scheme };
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
            &format!("{scheme}://127.0.0.1:{LAPI_PORT}/"),
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
        format!("{}://198.19.{n}.1:{LAPI_PORT}/", self.scheme)
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

/// A CA and the LAPI's certificate signed by it, for 127.0.0.1 and the addresses of
/// [`Lapi::link`], made with openssl in `dir`.
fn make_certs(dir: &TempDir) {
    let sans: Vec<String> =
        std::iter::once("IP:127.0.0.1".to_owned()).chain((1..=4).map(|n| format!("IP:198.19.{n}.1"))).collect();
    let ext = dir.join("lapi.ext");
    fs::write(&ext, format!("subjectAltName={}\n", sans.join(","))).unwrap_or_else(|e| panic!("{e}"));
    let d = |name: &str| dir.join(name).display().to_string();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ipscan test CA",
            "-keyout",
            &d("ca.key"),
            "-out",
            &d("ca.pem"),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=lapi",
            "-keyout",
            &d("lapi.key"),
            "-out",
            &d("lapi.csr"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &d("lapi.csr"),
            "-CA",
            &d("ca.pem"),
            "-CAkey",
            &d("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &d("lapi.ext"),
            "-out",
            &d("lapi.pem"),
        ],
    ] {
        let out = Command::new("openssl").args(&args).output().unwrap_or_else(|e| panic!("openssl: {e}"));
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
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
