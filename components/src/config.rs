//! The configuration file shared by the three daemons, with environment overrides.
//!
//! One schema, [`Config::default`], drives everything: the keys a file may set, their
//! types, and the environment variables that override them (`IMAGESERVING_` followed by
//! the section and key in upper case, e.g. `IMAGESERVING_ES_LISTEN`,
//! `IMAGESERVING_CATALOG_ROOT`). Errors are one line naming the file (or variable) and key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::http::server::Limits;

/// Where the packaged configuration lives; a missing file there means all defaults.
pub const DEFAULT_PATH: &str = "/etc/imageserving/imageserving.toml";

/// Prefix of the environment variables that override single keys.
pub const ENV_PREFIX: &str = "IMAGESERVING_";

/// Everything the daemons can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder holding one sub-folder per catalog.
    pub catalog_root: PathBuf,
    pub ps: PlatformConfig,
    pub es: RendererConfig,
    pub svg: RendererConfig,
    pub image: ImageConfig,
    pub http: HttpConfig,
}

/// The Platform Server, the public front door.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    pub listen: SocketAddr,
    pub io_threads: usize,
    pub max_connections: usize,
    /// Byte budget of the response cache; 0 turns the cache off.
    pub cache_bytes: u64,
    /// `Cache-Control: max-age` of image responses, in seconds.
    pub cache_max_age: u64,
    /// Seconds to wait for the Image Server or the SVG server to answer.
    pub backend_timeout: u64,
    pub access_log: bool,
    pub metrics_listen: MetricsAddress,
    /// Seconds open connections are still served after SIGTERM, each answer closing its
    /// connection; at most `http.shutdown_timeout`.
    pub drain_window: u64,
}

/// The Image Server and the SVG server share this shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RendererConfig {
    pub listen: SocketAddr,
    pub io_threads: usize,
    /// Render threads; 0 means one per CPU core.
    pub workers: usize,
    pub max_connections: usize,
    pub metrics_listen: MetricsAddress,
    /// As the Platform Server's, but 0 by default: the renderers' one client, the Platform
    /// Server, retries a request whose pooled connection closed before any answer, so idle
    /// connections can close at once and a restart need not wait for them.
    pub drain_window: u64,
}

/// Size limits and defaults of the imaging protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub max_pix: Dimensions,
    pub default_pix: Dimensions,
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
    pub jpeg_quality: u8,
    /// Turn sources upright by their EXIF orientation tag before anything else.
    pub apply_orientation: bool,
}

/// Connection hygiene common to the three servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a client may take to send request headers (also the keep-alive idle time).
    pub header_timeout: u64,
    /// Seconds a response write may stall before the connection is dropped.
    pub write_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_timeout: u64,
    /// Seconds between two `STATUS=` updates sent to systemd.
    pub status_interval: u64,
}

impl Default for Config {
    fn default() -> Self {
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let renderer = |port: u16, metrics_port: u16| RendererConfig {
            listen: loopback(port),
            io_threads: 1,
            workers: 0,
            max_connections: 256,
            metrics_listen: MetricsAddress(Some(loopback(metrics_port))),
            drain_window: 0,
        };
        Config {
            catalog_root: PathBuf::from("/var/lib/imageserving/catalog"),
            ps: PlatformConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
                io_threads: 2,
                max_connections: 1024,
                cache_bytes: 64 << 20,
                cache_max_age: 36_000,
                backend_timeout: 30,
                access_log: true,
                metrics_listen: MetricsAddress(Some(loopback(27347))),
                drain_window: 1,
            },
            es: renderer(27345, 27348),
            svg: renderer(27346, 27349),
            image: ImageConfig {
                max_pix: Dimensions::new(2000, 2000),
                default_pix: Dimensions::new(1280, 1280),
                max_source_pixels: 50_000_000,
                max_source_bytes: 100 << 20,
                jpeg_quality: 80,
                apply_orientation: true,
            },
            http: HttpConfig {
                header_timeout: 10,
                write_timeout: 30,
                shutdown_timeout: 30,
                status_interval: 5,
            },
        }
    }
}

impl HttpConfig {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout)
    }
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }
    pub fn status_interval(&self) -> Duration {
        Duration::from_secs(self.status_interval)
    }
}

impl PlatformConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            drain_window: Duration::from_secs(self.drain_window),
        }
    }
}

impl RendererConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            drain_window: Duration::from_secs(self.drain_window),
        }
    }

    /// The number of render threads, with 0 resolved to the number of cores.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// A width and a height, written `"W,H"` as Image Serving's MaxPix and DefaultPix are.
/// `"0,0"` means no limit where the key allows it (default_pix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

impl Dimensions {
    pub const fn new(width: u32, height: u32) -> Self {
        Dimensions { width, height }
    }
    pub fn is_unlimited(&self) -> bool {
        self.width == 0 || self.height == 0
    }
}

impl FromStr for Dimensions {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected \"WIDTH,HEIGHT\" (e.g. \"2000,2000\"), got {s:?}");
        let (w, h) = s.split_once(',').ok_or_else(bad)?;
        let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| bad());
        Ok(Dimensions::new(parse(w)?, parse(h)?))
    }
}

impl TryFrom<String> for Dimensions {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Dimensions> for String {
    fn from(d: Dimensions) -> String {
        d.to_string()
    }
}

impl fmt::Display for Dimensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.width, self.height)
    }
}

/// Where a daemon serves its metrics (`/metrics`, Prometheus text), written as an address
/// (`"127.0.0.1:27347"`); `""` turns metrics off: nothing is recorded and nothing listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MetricsAddress(pub Option<SocketAddr>);

impl TryFrom<String> for MetricsAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(MetricsAddress(None));
        }
        s.trim()
            .parse()
            .map(|a| MetricsAddress(Some(a)))
            .map_err(|_| {
                format!(
                    "expected an address such as \"127.0.0.1:27347\", or \"\" for off; got {s:?}"
                )
            })
    }
}

impl From<MetricsAddress> for String {
    fn from(a: MetricsAddress) -> String {
        a.0.map_or_else(String::new, |a| a.to_string())
    }
}

/// A configuration problem, printed as one line: where, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or the environment variable, that carried the bad value.
    pub origin: String,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key `{key}`: {}", self.origin, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads the configuration: `explicit` (from `--config` or `IMAGESERVING_CONFIG`) must
    /// exist; without it the default path is read if present. Then the environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = explicit.unwrap_or(Path::new(DEFAULT_PATH));
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => None,
            Err(e) => {
                return Err(ConfigError {
                    origin: path.display().to_string(),
                    key: None,
                    message: format!("cannot read the configuration file: {e}"),
                });
            }
        };
        Config::from_sources(&path.display().to_string(), text.as_deref(), |name| {
            std::env::var(name).ok()
        })
    }

    /// Builds the configuration from a file's text (if any) and an environment lookup.
    pub fn from_sources(
        origin: &str,
        text: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut merged = Config::default().to_table();
        if let Some(text) = text {
            let user: Table = toml::from_str(text).map_err(|e| ConfigError {
                origin: origin.to_owned(),
                key: None,
                message: syntax_message(text, &e),
            })?;
            merge(&mut merged, user, "").map_err(|(key, message)| ConfigError {
                origin: origin.to_owned(),
                key: Some(key),
                message,
            })?;
        }
        let mut from_env = Vec::new();
        apply_env(&mut merged, "", &env, &mut from_env)?;
        // A bad value is blamed on the variable that set it, else on the file.
        let blame = |key: String, message: String| {
            let origin = from_env
                .iter()
                .find(|(k, _)| *k == key)
                .map_or_else(|| origin.to_owned(), |(_, var)| var.clone());
            ConfigError {
                origin,
                key: Some(key),
                message,
            }
        };
        let config: Config = serde_path_to_error::deserialize(Value::Table(merged))
            .map_err(|e| blame(e.path().to_string(), e.into_inner().message().to_owned()))?;
        config
            .validate()
            .map_err(|(key, message)| blame(key, message))?;
        Ok(config)
    }

    /// The configuration as TOML, as `--check-config` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the configuration always serialises")
    }

    fn to_table(&self) -> Table {
        Table::try_from(self).expect("the configuration always serialises")
    }

    /// Value checks that the types alone do not express.
    fn validate(&self) -> Result<(), (String, String)> {
        let positive = |key: &str, v: u64| {
            if v == 0 {
                Err((key.to_owned(), "must be greater than 0".to_owned()))
            } else {
                Ok(())
            }
        };
        if self.catalog_root.as_os_str().is_empty() {
            return Err(("catalog_root".into(), "must not be empty".into()));
        }
        for (section, threads, conns) in [
            ("ps", self.ps.io_threads, self.ps.max_connections),
            ("es", self.es.io_threads, self.es.max_connections),
            ("svg", self.svg.io_threads, self.svg.max_connections),
        ] {
            positive(&format!("{section}.io_threads"), threads as u64)?;
            positive(&format!("{section}.max_connections"), conns as u64)?;
        }
        positive("ps.backend_timeout", self.ps.backend_timeout)?;
        if self.image.max_pix.is_unlimited() {
            return Err((
                "image.max_pix".into(),
                "both width and height must be greater than 0".into(),
            ));
        }
        positive("image.max_source_pixels", self.image.max_source_pixels)?;
        positive("image.max_source_bytes", self.image.max_source_bytes)?;
        if !(1..=100).contains(&self.image.jpeg_quality) {
            return Err((
                "image.jpeg_quality".into(),
                "must be between 1 and 100".into(),
            ));
        }
        positive("http.header_timeout", self.http.header_timeout)?;
        positive("http.write_timeout", self.http.write_timeout)?;
        positive("http.status_interval", self.http.status_interval)?;
        for (key, window) in [
            ("ps.drain_window", self.ps.drain_window),
            ("es.drain_window", self.es.drain_window),
            ("svg.drain_window", self.svg.drain_window),
        ] {
            if window > self.http.shutdown_timeout {
                return Err((
                    key.into(),
                    format!(
                        "must be at most http.shutdown_timeout ({} s), which bounds the whole \
                         shutdown",
                        self.http.shutdown_timeout
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The environment variable that overrides `key` (a dotted path such as `es.listen`).
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase())
}

fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
}

/// Lays the user's table over the defaults, refusing keys the schema does not have.
fn merge(base: &mut Table, user: Table, prefix: &str) -> Result<(), (String, String)> {
    for (name, value) in user {
        let key = join(prefix, &name);
        match (base.get_mut(&name), value) {
            (None, _) => return Err((key, "unknown key".to_owned())),
            (Some(Value::Table(section)), Value::Table(inner)) => merge(section, inner, &key)?,
            (Some(Value::Table(_)), _) => {
                return Err((key, "must be a section ([...]), not a value".to_owned()));
            }
            (Some(_), Value::Table(_)) => {
                return Err((key, "must be a value, not a section".to_owned()));
            }
            (Some(slot), value) => *slot = value,
        }
    }
    Ok(())
}

/// Replaces every key whose environment variable is set, typed like its default.
fn apply_env(
    table: &mut Table,
    prefix: &str,
    env: &impl Fn(&str) -> Option<String>,
    applied: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (name, slot) in table.iter_mut() {
        let key = join(prefix, name);
        if let Value::Table(section) = slot {
            apply_env(section, &key, env, applied)?;
            continue;
        }
        let var = env_var_name(&key);
        let Some(raw) = env(&var) else { continue };
        let parsed = match slot {
            Value::Integer(_) => raw
                .trim()
                .parse::<i64>()
                .map(Value::Integer)
                .map_err(|_| format!("expected an integer, got {raw:?}")),
            Value::Boolean(_) => match raw.trim() {
                "true" | "1" | "yes" => Ok(Value::Boolean(true)),
                "false" | "0" | "no" => Ok(Value::Boolean(false)),
                _ => Err(format!("expected true or false, got {raw:?}")),
            },
            _ => Ok(Value::String(raw)),
        };
        *slot = parsed.map_err(|message| ConfigError {
            origin: var.clone(),
            key: Some(key.clone()),
            message,
        })?;
        applied.push((key, var));
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources("test.toml", Some(text), |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(load("", &[]).unwrap(), Config::default());
    }

    #[test]
    fn shipped_file_equals_defaults() {
        let text = include_str!("../imageserving.toml");
        assert_eq!(load(text, &[]).unwrap(), Config::default());
    }

    #[test]
    fn shipped_file_documents_every_key() {
        let text = include_str!("../imageserving.toml");
        let mut missing = Vec::new();
        fn walk(t: &Table, prefix: &str, text: &str, missing: &mut Vec<String>) {
            for (k, v) in t {
                let key = join(prefix, k);
                match v {
                    Value::Table(inner) => walk(inner, &key, text, missing),
                    _ if !text.contains(&format!("# {k} = ")) => missing.push(key),
                    _ => {}
                }
            }
        }
        walk(&Config::default().to_table(), "", text, &mut missing);
        assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    }

    #[test]
    fn file_values_apply() {
        let c = load(
            "catalog_root = \"/srv/cat\"\n[es]\nlisten = \"127.0.0.1:1\"\n[image]\nmax_pix = \"300,200\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.catalog_root, PathBuf::from("/srv/cat"));
        assert_eq!(c.es.listen.port(), 1);
        assert_eq!(c.svg.listen.port(), 27346);
        assert_eq!(c.image.max_pix, Dimensions::new(300, 200));
    }

    #[test]
    fn environment_overrides_file() {
        let c = load(
            "[ps]\ncache_bytes = 5\n",
            &[
                ("IMAGESERVING_PS_CACHE_BYTES", "0"),
                ("IMAGESERVING_CATALOG_ROOT", "/x"),
                ("IMAGESERVING_PS_ACCESS_LOG", "false"),
                ("IMAGESERVING_IMAGE_MAX_PIX", "10,20"),
            ],
        )
        .unwrap();
        assert_eq!(c.ps.cache_bytes, 0);
        assert_eq!(c.catalog_root, PathBuf::from("/x"));
        assert!(!c.ps.access_log);
        assert_eq!(c.image.max_pix, Dimensions::new(10, 20));
    }

    #[test]
    fn metrics_addresses_and_off() {
        let c = load(
            "[es]\nmetrics_listen = \"\"\n",
            &[("IMAGESERVING_SVG_METRICS_LISTEN", "127.0.0.1:9000")],
        )
        .unwrap();
        assert_eq!(c.es.metrics_listen, MetricsAddress(None));
        assert_eq!(
            c.svg.metrics_listen.0,
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(c.ps.metrics_listen.0.map(|a| a.port()), Some(27347));
        assert!(c.to_toml().contains("metrics_listen = \"\""));
        let e = load("[ps]\nmetrics_listen = \"here\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("key `ps.metrics_listen`"), "{e}");
    }

    #[test]
    fn errors_name_the_key_on_one_line() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 8] = [
            (
                "[es]\nlisten = \"nowhere\"\n",
                &[],
                "test.toml: key `es.listen`",
            ),
            (
                "[es]\nbogus = 1\n",
                &[],
                "test.toml: key `es.bogus`: unknown key",
            ),
            ("nonsense = [\n", &[], "test.toml: line"),
            (
                "[image]\njpeg_quality = 101\n",
                &[],
                "key `image.jpeg_quality`",
            ),
            ("[image]\nmax_pix = \"big\"\n", &[], "key `image.max_pix`"),
            ("es = 3\n", &[], "key `es`: must be a section"),
            (
                "[http]\nshutdown_timeout = 2\n[es]\ndrain_window = 3\n",
                &[],
                "key `es.drain_window`: must be at most",
            ),
            (
                "",
                &[("IMAGESERVING_PS_LISTEN", "x")],
                "IMAGESERVING_PS_LISTEN: key `ps.listen`",
            ),
        ];
        for (text, env, want) in cases {
            let e = load(text, env).unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
            assert!(!e.contains('\n'), "{e:?} is more than one line");
        }
    }

    #[test]
    fn env_var_names_follow_the_keys() {
        assert_eq!(env_var_name("es.listen"), "IMAGESERVING_ES_LISTEN");
        assert_eq!(env_var_name("catalog_root"), "IMAGESERVING_CATALOG_ROOT");
    }
}
