//! A tier of hosts for the fleet tests: each host a sandbox of its own, running the stack and a
//! real sshd (Debian's openssh-server, extracted, never installed) as a unit, with its host key,
//! authorized_keys and configuration in the sandbox's state directory. The tool reaches each
//! host with keys generated here, through an ssh configuration whose ProxyCommand enters the
//! host's network namespace: no host's stack sees another's, and nothing listens on the
//! machine's own network.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::fixture::{Run, Stack, repo};

/// The sshd unit inside each host.
pub const SSHD_UNIT: &str = "ssh.service";

/// sshd from Debian's openssh-server package, downloaded and unpacked once into the target
/// directory (`apt-get download`, `dpkg-deb -x`): nothing of the package is installed, so no
/// sshd starts on this machine and nothing is written to /etc/ssh.
fn sshd() -> PathBuf {
    static UNPACKED: Mutex<()> = Mutex::new(());
    let _once = UNPACKED.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openssh-server");
    let sshd = root.join("usr/sbin/sshd");
    if sshd.exists() {
        return sshd;
    }
    let download = root.with_extension("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download).expect("create the download directory");
    let fetched = Command::new("apt-get")
        .args(["download", "openssh-server"])
        .current_dir(&download)
        .output()
        .expect("run apt-get download (Debian's apt)");
    assert!(
        fetched.status.success(),
        "apt-get download openssh-server: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let deb = fs::read_dir(&download)
        .expect("read the download directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("apt-get download left a .deb");
    let unpacked = download.join("root");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .expect("run dpkg-deb");
    assert!(status.success(), "dpkg-deb -x {}", deb.display());
    fs::rename(&unpacked, &root).expect("move the unpacked package into place");
    let _ = fs::remove_dir_all(&download);
    sshd
}

/// Makes a key pair at `path` (and `path.pub`).
fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen (openssh-client)");
    assert!(status.success(), "ssh-keygen -f {}", path.display());
}

/// The public half of a key pair, as `authorized_keys` and `known_hosts` write it.
fn public_key(path: &Path) -> String {
    let text = fs::read_to_string(path.with_extension("pub")).expect("read a public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One host of the tier.
pub struct Host {
    pub name: String,
    pub stack: Stack,
    /// Its ssh files: host key, authorized_keys, sshd_config, passwd.
    ssh_dir: PathBuf,
}

impl Host {
    /// Boots a sandbox with the stack installed and started, and its sshd accepting
    /// `client_key`.
    fn boot(name: &str, client_key: &Path) -> Host {
        let stack = Stack::install();
        let ssh_dir = stack.sandbox.state_dir().join("ssh");
        fs::create_dir_all(&ssh_dir).expect("create the host's ssh directory");
        keygen(&ssh_dir.join("host_key"));
        fs::write(
            ssh_dir.join("authorized_keys"),
            public_key(client_key) + "\n",
        )
        .expect("write authorized_keys");
        // sshd wants its privilege separation user; the machine has none, so the unit sees a
        // passwd of its own that adds it.
        let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        fs::write(
            ssh_dir.join("passwd"),
            format!("{passwd}sshd:x:65533:65534:sshd:/run/sshd:/usr/sbin/nologin\n"),
        )
        .expect("write the unit's passwd");
        let dir = ssh_dir.display();
        fs::write(
            ssh_dir.join("sshd_config"),
            format!(
                "ListenAddress 127.0.0.1:22\nHostKey {dir}/host_key\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPidFile none\n"
            ),
        )
        .expect("write sshd_config");
        stack
            .sandbox
            .write_unit_file(
                SSHD_UNIT,
                &format!(
                    "[Unit]\nDescription=OpenSSH server of host {name}\n\n[Service]\n\
                     Type=notify\nExecStart={} -D -e -f {dir}/sshd_config\n\
                     RuntimeDirectory=sshd\nBindReadOnlyPaths={dir}/passwd:/etc/passwd\n",
                    sshd().display()
                ),
            )
            .expect("write the sshd unit");
        stack.sandbox.daemon_reload().expect("reload");
        let started = stack.systemctl(&["start", SSHD_UNIT, "imageserving.target"]);
        assert!(
            started.status.success(),
            "start sshd and the stack on {name}: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            stack.sandbox.journal(SSHD_UNIT)
        );
        Host {
            name: name.to_string(),
            stack,
            ssh_dir,
        }
    }

    /// The host's public host key, as `known_hosts` lists it.
    fn host_key(&self) -> String {
        public_key(&self.ssh_dir.join("host_key"))
    }

    /// Makes the host refuse every key.
    pub fn refuse_keys(&self) {
        fs::write(self.ssh_dir.join("authorized_keys"), "").expect("empty authorized_keys");
    }

    /// Makes the host one without systemd, as ssh sees it: its sessions find no
    /// systemd-stdio-bridge.
    pub fn hide_the_bridge(&self) {
        let config = self.ssh_dir.join("sshd_config");
        let mut text = fs::read_to_string(&config).expect("read sshd_config");
        text.push_str("SetEnv PATH=/nonexistent\n");
        fs::write(&config, text).expect("write sshd_config");
        let restarted = self.stack.systemctl(&["restart", SSHD_UNIT]);
        assert!(restarted.status.success(), "restart sshd on {}", self.name);
    }

    /// The host's journal, as `journalctl -o json` prints it there, one entry a line.
    pub fn journal_json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let output = self
            .stack
            .sandbox
            .command("journalctl")
            .args(["--output=json", "--no-pager"])
            .args(args)
            .output()
            .expect("run journalctl in the sandbox");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// Several hosts, and the operator's ssh configuration that reaches them.
pub struct Tier {
    pub hosts: Vec<Host>,
    /// The client key, known_hosts and ssh_config.
    dir: PathBuf,
}

impl Tier {
    /// Boots a host for each of `names`, all at once.
    pub fn boot(names: &[&str]) -> Tier {
        static TIERS: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tier-{}-{}",
            std::process::id(),
            TIERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the tier's directory");
        let client_key = dir.join("id_ed25519");
        keygen(&client_key);
        sshd();
        let hosts: Vec<Host> = thread::scope(|scope| {
            let boots: Vec<_> = names
                .iter()
                .map(|name| scope.spawn(|| Host::boot(name, &client_key)))
                .collect();
            boots
                .into_iter()
                .map(|b| b.join().expect("boot a host"))
                .collect()
        });
        let tier = Tier { hosts, dir };
        let known: String = tier
            .hosts
            .iter()
            .map(|h| format!("{} {}\n", h.name, h.host_key()))
            .collect();
        fs::write(tier.known_hosts(), known).expect("write known_hosts");
        // nc says why it could not connect (refused, say) only with -v: ssh passes that on as
        // it would say it itself on a direct connection.
        let mut config = String::new();
        for host in &tier.hosts {
            config.push_str(&format!(
                "Host {}\n  HostName 127.0.0.1\n  HostKeyAlias {}\n  \
                 ProxyCommand nsenter --target {} --net -- nc -v 127.0.0.1 22\n",
                host.name,
                host.name,
                host.stack.sandbox.pid1()
            ));
        }
        config.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n",
            client_key.display(),
            tier.known_hosts().display()
        ));
        fs::write(tier.ssh_config(), config).expect("write ssh_config");
        tier
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Writes a hosts file of `text` next to the tier's ssh configuration.
    pub fn hosts_file(&self, text: &str) -> PathBuf {
        let path = self.dir.join("hosts");
        fs::write(&path, text).expect("write the hosts file");
        path
    }

    /// The operator's ssh configuration for the tier, `ssh -F`'s file.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Puts another key than `name`'s own in known_hosts for it.
    pub fn forget_host_key(&self, name: &str) {
        let stranger = self.dir.join("stranger");
        keygen(&stranger);
        let text = fs::read_to_string(self.known_hosts()).expect("read known_hosts");
        let text: String = text
            .lines()
            .map(|line| match line.split_once(' ') {
                Some((host, _)) if host == name => format!("{name} {}\n", public_key(&stranger)),
                _ => format!("{line}\n"),
            })
            .collect();
        fs::write(self.known_hosts(), text).expect("write known_hosts");
    }

    /// `ImageServing ARGS`, run here as the operator, with the tier's ssh configuration.
    pub fn cli(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_ImageServing"))
            .args(args)
            .env(
                "IMAGESERVING_SSH",
                format!("ssh -F {}", self.ssh_config().display()),
            )
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .current_dir(repo())
            .output()
            .expect("run ImageServing");
        Run::from(output)
    }
}

impl Drop for Tier {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
