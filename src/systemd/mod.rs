//! The systemd client: a connection to a service manager over D-Bus, the few Manager methods the
//! tool needs, and unit properties read with one `GetAll` per interface.

mod words;

use serde::de::DeserializeOwned;
use zbus::{
    Connection, DBusError, DeserializeDict, MatchRule, MessageStream, OwnedObjectPath, Type, proxy,
};

pub use words::{ActiveState, JobResult, UnitResult};

use crate::remote::{Host, Tunnel, Unreachable};

const DESTINATION: &str = "org.freedesktop.systemd1";

/// Which service manager to talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// The system manager, on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` moves it).
    System,
    /// The calling user's manager, on the session bus (`DBUS_SESSION_BUS_ADDRESS`).
    User,
}

impl Manager {
    /// The command line an operator types for this manager, as the messages suggest it.
    pub fn tool(self) -> &'static str {
        match self {
            Manager::System => "ImageServing",
            Manager::User => "ImageServing --user",
        }
    }
}

/// A job systemd returned: its object path identifies it in `JobRemoved`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub path: OwnedObjectPath,
    pub unit: String,
    pub kind: String,
}

#[proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub(crate) trait Manager {
    /// Without a subscriber, systemd emits no job signals at all.
    fn subscribe(&self) -> zbus::Result<()>;

    /// Like StartUnit and friends, but also returns every other job of the transaction, so a
    /// stop of the target can be followed until each component is down.
    #[allow(clippy::type_complexity)]
    fn enqueue_unit_job(
        &self,
        name: &str,
        job_type: &str,
        job_mode: &str,
    ) -> zbus::Result<(
        u32,
        OwnedObjectPath,
        String,
        OwnedObjectPath,
        String,
        Vec<(u32, OwnedObjectPath, String, OwnedObjectPath, String)>,
    )>;

    /// Also clears the unit's start rate limit.
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// The `org.freedesktop.systemd1.Unit` properties the tool reads.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}", rename_all = "PascalCase")]
pub struct UnitProperties {
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    /// Wall-clock µs since the epoch; 0 = never.
    pub active_enter_timestamp: Option<u64>,
    /// 16 bytes, new on every start: the proof that a unit really restarted.
    #[zbus(rename = "InvocationID")]
    pub invocation_id: Option<Vec<u8>>,
    /// The job queued for the unit: id 0 when there is none.
    pub job: Option<(u32, OwnedObjectPath)>,
}

/// The `org.freedesktop.systemd1.Service` properties the tool reads. The accounting values are
/// `u64::MAX` when systemd has none.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}", rename_all = "PascalCase")]
pub struct ServiceProperties {
    #[zbus(rename = "MainPID")]
    pub main_pid: Option<u32>,
    pub memory_current: Option<u64>,
    #[zbus(rename = "CPUUsageNSec")]
    pub cpu_usage_nsec: Option<u64>,
    pub tasks_current: Option<u64>,
    #[zbus(rename = "NRestarts")]
    pub n_restarts: Option<u32>,
    pub result: Option<String>,
    /// The daemon's own one-line summary (sd_notify `STATUS=`).
    pub status_text: Option<String>,
}

/// The `org.freedesktop.systemd1.Slice` properties: the stack's totals.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}", rename_all = "PascalCase")]
pub struct SliceProperties {
    pub memory_current: Option<u64>,
    #[zbus(rename = "CPUUsageNSec")]
    pub cpu_usage_nsec: Option<u64>,
    pub tasks_current: Option<u64>,
}

/// The `org.freedesktop.systemd1.Socket` properties: where a socket unit listens.
#[derive(Debug, Default, DeserializeDict, Type)]
#[zbus(signature = "a{sv}", rename_all = "PascalCase")]
pub struct SocketProperties {
    /// (type, address) pairs: `("Stream", "[::]:8080")`.
    pub listen: Option<Vec<(String, String)>>,
}

/// A property interface of a unit, and the struct its `GetAll` decodes into.
pub trait Interface: DeserializeOwned + Type {
    const NAME: &'static str;
}

impl Interface for UnitProperties {
    const NAME: &'static str = "org.freedesktop.systemd1.Unit";
}

impl Interface for ServiceProperties {
    const NAME: &'static str = "org.freedesktop.systemd1.Service";
}

impl Interface for SocketProperties {
    const NAME: &'static str = "org.freedesktop.systemd1.Socket";
}

impl Interface for SliceProperties {
    const NAME: &'static str = "org.freedesktop.systemd1.Slice";
}

/// A connection to one service manager.
pub struct Systemd {
    connection: Connection,
    manager: ManagerProxy<'static>,
    kind: Manager,
    /// The host and the ssh the connection runs over, when it is remote.
    remote: Option<(Host, Tunnel)>,
}

impl Systemd {
    /// Connects to the bus of `manager`.
    pub async fn connect(kind: Manager) -> Result<Systemd, Error> {
        let (builder, address) = match kind {
            Manager::System => (
                zbus::connection::Builder::system(),
                std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                    .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into()),
            ),
            Manager::User => (
                zbus::connection::Builder::session(),
                std::env::var("DBUS_SESSION_BUS_ADDRESS")
                    .unwrap_or_else(|_| "the session bus".into()),
            ),
        };
        let unreachable = |cause: zbus::Error| Error::Unreachable {
            address: address.clone(),
            cause: cause.to_string(),
        };
        let connection = builder.build().await.map_err(unreachable)?;
        let manager = manager_proxy(&connection).await.map_err(unreachable)?;
        Ok(Systemd {
            connection,
            manager,
            kind,
            remote: None,
        })
    }

    /// Connects to the system manager of `host`, over ssh.
    pub async fn over_ssh(host: &Host) -> Result<Systemd, Unreachable> {
        let (connection, tunnel) = host.bridge().await?;
        let manager = manager_proxy(&connection).await.map_err(|e| Unreachable {
            host: host.to_string(),
            reason: crate::remote::Reason::Other,
            detail: e.to_string(),
        })?;
        Ok(Systemd {
            connection,
            manager,
            kind: Manager::System,
            remote: Some((host.clone(), tunnel)),
        })
    }

    /// The remote host, when the manager is one.
    pub fn host(&self) -> Option<&Host> {
        self.remote.as_ref().map(|(host, _)| host)
    }

    /// Which manager this is.
    pub fn kind(&self) -> Manager {
        self.kind
    }

    pub(crate) fn manager(&self) -> &ManagerProxy<'static> {
        &self.manager
    }

    /// Clears a unit's failed state and start rate limit. A unit systemd has not loaded has
    /// neither.
    pub async fn reset_failed(&self, unit: &str) -> Result<(), Error> {
        match self.manager.reset_failed_unit(unit).await {
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
            {
                Ok(())
            }
            other => other.map_err(|e| Error::call("reset", unit, e)),
        }
    }

    /// The `PropertiesChanged` signals of every unit, from now on. systemd sends them only
    /// while someone is subscribed, so this subscribes.
    pub async fn unit_changes(&self) -> Result<MessageStream, Error> {
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender(DESTINATION)
            .interface("org.freedesktop.DBus.Properties")
            .member("PropertiesChanged")
            .path_namespace("/org/freedesktop/systemd1/unit")
            .build()
            .map_err(|e| Error::call("watch the units of", "the manager", e))?;
        let changes = MessageStream::for_match_rule(rule, &self.connection, None)
            .await
            .map_err(|e| Error::call("watch the units of", "the manager", e))?;
        self.manager
            .subscribe()
            .await
            .map_err(|e| Error::call("subscribe to", "the manager", e))?;
        Ok(changes)
    }

    /// One `GetAll` of interface `I` on `unit`. Reading a unit's object loads it, so an
    /// uninstalled unit answers with `LoadState` `not-found` rather than an error.
    pub async fn properties<I: Interface>(&self, unit: &str) -> Result<I, Error> {
        let reply = self
            .connection
            .call_method(
                Some(DESTINATION),
                unit_path(unit).as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "GetAll",
                &(I::NAME,),
            )
            .await
            .map_err(|e| Error::call("read the properties of", unit, e))?;
        reply
            .body()
            .deserialize::<I>()
            .map_err(|e| Error::call("read the properties of", unit, e))
    }
}

/// A Manager proxy that reads every property anew: states change under the tool's feet.
async fn manager_proxy(connection: &Connection) -> zbus::Result<ManagerProxy<'static>> {
    ManagerProxy::builder(connection)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
}

/// The object path of a unit: `/org/freedesktop/systemd1/unit/` and the name with every byte
/// outside `[A-Za-z0-9]` (and a leading digit) escaped as `_xx`.
pub fn unit_path(unit: &str) -> String {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    for (i, byte) in unit.bytes().enumerate() {
        if byte.is_ascii_alphabetic() || (byte.is_ascii_digit() && i > 0) {
            path.push(byte as char);
        } else {
            path.push_str(&format!("_{byte:02x}"));
        }
    }
    path
}

/// What went wrong talking to systemd.
#[derive(Debug)]
pub enum Error {
    /// No connection to the bus could be made.
    Unreachable { address: String, cause: String },
    /// The bus or polkit refused the call.
    Denied {
        action: String,
        unit: String,
        /// polkit said no; otherwise the bus refused before polkit was asked.
        by_polkit: bool,
    },
    /// Any other failed call.
    Call {
        action: String,
        unit: String,
        cause: String,
    },
}

impl Error {
    /// The same refusal, told as the operator's action: an internal step such as clearing a
    /// failed state is refused because the action it serves is.
    pub fn into_part_of(self, operator_action: &str) -> Error {
        match self {
            Error::Denied {
                unit, by_polkit, ..
            } => Error::Denied {
                action: operator_action.to_string(),
                unit,
                by_polkit,
            },
            other => other,
        }
    }

    pub(crate) fn call(action: &str, unit: &str, error: zbus::Error) -> Error {
        let name = match &error {
            zbus::Error::FDO(e) => Some(e.name().to_string()),
            zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
            _ => None,
        };
        match name.as_deref() {
            Some(
                denied @ ("org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
            ) => Error::Denied {
                action: action.into(),
                unit: unit.into(),
                by_polkit: denied.ends_with("InteractiveAuthorizationRequired"),
            },
            _ => Error::Call {
                action: action.into(),
                unit: unit.into(),
                cause: describe(&error),
            },
        }
    }
}

/// A zbus error in words, without repeating the D-Bus error name when a description exists.
fn describe(error: &zbus::Error) -> String {
    match error {
        zbus::Error::FDO(e) => e.description().unwrap_or("no details").to_string(),
        zbus::Error::MethodError(name, Some(text), _) if !text.is_empty() => {
            format!("{text} ({name})")
        }
        other => other.to_string(),
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable { address, cause } => write!(
                f,
                "cannot reach systemd at {address}: {cause}; is systemd running on this machine?"
            ),
            Error::Denied {
                action,
                unit,
                by_polkit: true,
            } => write!(
                f,
                "not allowed to {action} {unit}: run as root, or ask an administrator to add you \
                 to the `imageserving` group (`adduser $USER imageserving`)"
            ),
            Error::Denied {
                action,
                unit,
                by_polkit: false,
            } => write!(
                f,
                "not allowed to {action} {unit}, refused before polkit was asked: run as root; \
                 members of the `imageserving` group also need polkitd and the imageserving \
                 package's polkit rule and bus policy installed"
            ),
            Error::Call {
                action,
                unit,
                cause,
            } => write!(f, "systemd could not {action} {unit}: {cause}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_escape_like_systemd() {
        assert_eq!(
            unit_path("imageserving-ps.service"),
            "/org/freedesktop/systemd1/unit/imageserving_2dps_2eservice"
        );
        assert_eq!(
            unit_path("1x.target"),
            "/org/freedesktop/systemd1/unit/_31x_2etarget"
        );
    }
}
