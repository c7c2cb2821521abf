//! The command lines of the three daemons, also used to generate their manual pages.

use std::path::PathBuf;

use clap::{Args, Command, FromArgMatches};

use crate::config::DEFAULT_PATH;

/// One of the three components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Platform,
    Image,
    Svg,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Platform, Component::Image, Component::Svg];

    /// The executable's name.
    pub fn binary(self) -> &'static str {
        match self {
            Component::Platform => "imageserving-ps",
            Component::Image => "imageserving-es",
            Component::Svg => "imageserving-svg",
        }
    }

    /// The short name used by `ImageServing restart es` and in the configuration.
    pub fn short(self) -> &'static str {
        match self {
            Component::Platform => "ps",
            Component::Image => "es",
            Component::Svg => "svg",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Component::Platform => {
                "Image Serving Platform Server (ps): the public HTTP front door (/is/image, /is/content)"
            }
            Component::Image => {
                "Image Serving Image Server (es): decodes, resizes and encodes catalog images for the Platform Server"
            }
            Component::Svg => {
                "Image Serving SVG server (svg): rasterises SVG sources for the Platform Server"
            }
        }
    }
}

/// The options every daemon takes.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DaemonArgs {
    /// Configuration file (TOML). Without it the default path is read, and a missing file
    /// there means all defaults; a file named here must exist
    #[arg(long, value_name = "PATH", env = "IMAGESERVING_CONFIG")]
    pub config: Option<PathBuf>,

    /// Check the configuration (file and IMAGESERVING_* variables), print it with every
    /// default filled in, and exit: 0 if valid, 1 if not
    #[arg(long)]
    pub check_config: bool,
}

/// The clap definition of one daemon.
pub fn command(component: Component) -> Command {
    let after = format!(
        "The default configuration file is {DEFAULT_PATH}. Any key can be overridden by an \
         environment variable named IMAGESERVING_<SECTION>_<KEY>, e.g. \
         IMAGESERVING_{}_LISTEN=127.0.0.1:9000 or IMAGESERVING_CATALOG_ROOT=/srv/catalog.\n\n\
         Under systemd the daemon reports readiness, a status line and watchdog pings \
         (Type=notify), and accepts its listening socket from a socket unit.",
        component.short().to_uppercase()
    );
    DaemonArgs::augment_args(Command::new(component.binary()))
        .about(component.about())
        .version(env!("CARGO_PKG_VERSION"))
        .after_long_help(after)
}

/// The clap definitions of all three daemons, named by binary, for manual pages.
pub fn commands() -> Vec<Command> {
    Component::ALL.into_iter().map(command).collect()
}

/// Parses the process's arguments for `component`, exiting with usage on error.
pub fn parse(component: Component) -> DaemonArgs {
    let matches = command(component).get_matches();
    DaemonArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_valid_command_per_binary() {
        let names: Vec<_> = commands().iter().map(|c| c.get_name().to_owned()).collect();
        assert_eq!(
            names,
            ["imageserving-ps", "imageserving-es", "imageserving-svg"]
        );
        for c in commands() {
            c.debug_assert();
        }
    }

    #[test]
    fn parses_config_path() {
        let m = command(Component::Image)
            .try_get_matches_from(["imageserving-es", "--config", "/x.toml", "--check-config"])
            .unwrap();
        let args = DaemonArgs::from_arg_matches(&m).unwrap();
        assert_eq!(args.config, Some(PathBuf::from("/x.toml")));
        assert!(args.check_config);
    }
}
