//! The state directory of one sandbox on the host: the units it loads, its bus socket, its
//! journal, its console log, and what its PID 1 needs to set itself up.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::base_units;
use crate::cgroups::HarnessCgroups;
use crate::init_script;
use crate::ownership::{STATE_ROOT, SandboxId};
use crate::process::ProcessStamp;

/// Turns the host's accounting defaults (off on these hosts) on, so that services report their
/// CPU, memory and tasks; everything else, rate limits included, keeps systemd's defaults.
const ACCOUNTING: &str = "\
[Manager]
DefaultCPUAccounting=yes
DefaultMemoryAccounting=yes
DefaultTasksAccounting=yes
";

/// Where PrivateTmp= directories land on the host: the sandbox shares the host's /tmp (its state
/// directory is there, and so may be the tests' files), but not /var/tmp.
const SHARED_TMP: &str = "/tmp";

pub(crate) struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Creates the (empty) directory of a new sandbox launched by this process.
    pub fn create() -> io::Result<(SandboxId, Self)> {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let launcher = ProcessStamp::current()?;
        fs::create_dir_all(STATE_ROOT)?;
        loop {
            let id = SandboxId {
                launcher,
                serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            };
            let path = id.state_dir();
            match fs::create_dir(&path) {
                Ok(()) => return Ok((id, Self { path })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", path.display()),
                    ));
                }
            }
        }
    }

    /// The directory of an existing sandbox (to reap it).
    pub fn of(id: &SandboxId) -> Self {
        Self {
            path: id.state_dir(),
        }
    }

    /// Fills the directory with everything the boot needs, for a sandbox run in `cgroups`.
    pub fn populate(&self, cgroups: &HarnessCgroups) -> io::Result<()> {
        for dir in [
            "units",
            "base-units",
            "dbus",
            "journal",
            "gen-empty",
            "cg-stage",
            "etc-systemd/system",
            "etc-systemd/system.conf.d",
            "var/lib/systemd",
            "var/cache",
            "var/log",
            "var/tmp",
        ] {
            fs::create_dir_all(self.path.join(dir))?;
        }
        fs::set_permissions(
            self.path.join("var/tmp"),
            fs::Permissions::from_mode(0o1777),
        )?;
        // The host's manager and journald configuration, without its unit directories.
        for entry in fs::read_dir("/etc/systemd")? {
            let entry = entry?;
            if entry.file_type()?.is_file() && entry.path().extension().is_some_and(|e| e == "conf")
            {
                fs::copy(
                    entry.path(),
                    self.path.join("etc-systemd").join(entry.file_name()),
                )?;
            }
        }
        fs::write(
            self.path.join("etc-systemd/system.conf.d/sandbox.conf"),
            ACCOUNTING,
        )?;
        base_units::write(&self.path.join("base-units"))?;
        fs::write(self.boot_id_file(), format!("{}\n", random_boot_id()?))?;
        let script = self.init_script();
        fs::write(&script, init_script::render(&self.path, cgroups))?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn units(&self) -> PathBuf {
        self.path.join("units")
    }

    pub fn bus_socket(&self) -> PathBuf {
        self.path.join("dbus/system_bus_socket")
    }

    pub fn journal(&self) -> PathBuf {
        self.path.join("journal")
    }

    pub fn console_log(&self) -> PathBuf {
        self.path.join("console.log")
    }

    /// What the processes that start PID 1 say before it has a console (systemd-run's errors).
    pub fn launcher_log(&self) -> PathBuf {
        self.path.join("launcher.log")
    }

    pub fn init_script(&self) -> PathBuf {
        self.path.join("init.sh")
    }

    fn boot_id_file(&self) -> PathBuf {
        self.path.join("boot_id")
    }

    /// The last `lines` lines PID 1 and its launchers wrote, for error messages.
    pub fn console_tail(&self, lines: usize) -> String {
        let mut log = fs::read(self.launcher_log()).unwrap_or_default();
        log.extend(fs::read(self.console_log()).unwrap_or_default());
        let log = String::from_utf8_lossy(&log);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Removes the directory, and the PrivateTmp= directories the sandbox's services left in the
    /// host's /tmp (systemd names them after the sandbox's boot id). Another process removing the
    /// same leftovers at the same time is fine.
    pub fn remove(&self) -> io::Result<()> {
        if let Ok(boot_id) = fs::read_to_string(self.boot_id_file()) {
            let prefix = format!("systemd-private-{}-", boot_id.trim().replace('-', ""));
            for entry in fs::read_dir(SHARED_TMP)?.filter_map(Result::ok) {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    remove_tree(&entry.path())?;
                }
            }
        }
        remove_tree(&self.path)
    }
}

/// `remove_dir_all` that tolerates a concurrent removal of the same tree.
fn remove_tree(path: &Path) -> io::Result<()> {
    let mut attempts = 3;
    loop {
        match fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && path.exists() && attempts > 0 => {
                attempts -= 1;
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot remove {}: {e}", path.display()),
                ));
            }
            _ => return Ok(()),
        }
    }
}

/// A random version-4 UUID, the format of /proc/sys/kernel/random/boot_id.
fn random_boot_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}
