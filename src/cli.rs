//! The command line: what operators type, with the original script's verbs and the Spanish
//! aliases its translated documentation uses.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::control::Action;
use crate::exit;
use crate::remote::{CONNECT_TIMEOUT_SECS, Host};
use crate::stack::Component;
use crate::systemd::Manager;

/// Shown after the options: what the components are, then the exit codes.
fn after_help() -> String {
    format!(
        "Components:
  ps   Platform Server, the HTTP front door (imageserving-ps.service)
  es   Image Server, image processing; `is` is accepted too (imageserving-es.service)
  svg  SVG server, SVG rendering (imageserving-svg.service)
The Supervisor is imageserving.target; the components are part of it.

{}",
        exit::help()
    )
}

/// Start, stop, restart and inspect the Image Serving stack through systemd.
#[derive(Debug, Parser)]
#[command(name = "ImageServing", version, after_help = after_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print machine-readable JSON on standard output.
    #[arg(long, global = true)]
    pub json: bool,

    /// Talk to the calling user's service manager instead of the system one.
    #[arg(long, global = true, conflicts_with_all = ["hosts", "hosts_file"])]
    pub user: bool,

    /// Act on the system manager of HOST, over ssh (`systemd-stdio-bridge` there; the ssh
    /// command line is IMAGESERVING_SSH when set); repeat the option or separate hosts with
    /// commas.
    #[arg(
        short = 'H',
        long = "host",
        global = true,
        value_name = "[USER@]HOST[:PORT]",
        value_delimiter = ','
    )]
    pub hosts: Vec<Host>,

    /// Read the hosts from FILE: one a line, `#` starts a comment.
    #[arg(long, global = true, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,

    /// With hosts, how long ssh waits for a host to answer, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value_t = CONNECT_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,

    /// With hosts, act on at most N of them at once (default: all).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,

    /// With hosts, act on one at a time, in the order given, each only once the one before is
    /// healthy again: every component active and the Platform Server answering /is/image.
    #[arg(long, global = true, conflicts_with = "parallel")]
    pub rolling: bool,

    /// With --rolling, how long a host may take to be healthy again, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value = "30", value_parser = parse_timeout)]
    pub health_timeout: Duration,

    /// With --rolling, go on to the next host after one that failed.
    #[arg(long, global = true, requires = "rolling")]
    pub keep_going: bool,

    /// Enqueue the jobs and return without waiting for them.
    #[arg(long, global = true)]
    pub no_block: bool,

    /// When to colour the output: `auto` does where the stream is a terminal and NO_COLOR is
    /// not set.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,

    /// How long to wait for systemd's jobs, in seconds.
    #[arg(long, global = true, value_name = "SECS", default_value = "90", value_parser = parse_timeout)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Act(ActCommand),
    /// Show uptime and memory of every component, or of the one named.
    #[command(visible_alias = "estado")]
    Status {
        /// The one component to report.
        component: Option<Component>,
        /// Keep showing the status: redrawn when a state changes, and every --interval.
        #[arg(long)]
        watch: bool,
        /// With --watch, how often to read the resource figures, which systemd does not signal.
        #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_timeout, requires = "watch")]
        interval: Duration,
    },
    /// Show the components' logs from the journal, merged in time order.
    Logs(LogsArgs),
}

/// The commands that change the stack's state: each becomes an [`Action`].
#[derive(Debug, Subcommand)]
pub enum ActCommand {
    /// Start the Supervisor and every component.
    #[command(visible_alias = "iniciar")]
    Start,
    /// Stop every component and the Supervisor.
    #[command(visible_alias = "detener")]
    Stop,
    /// Restart the whole stack, or just one component.
    #[command(visible_alias = "reiniciar")]
    Restart {
        /// The one component to restart; the others keep running.
        component: Option<Component>,
    },
}

/// What `logs` shows.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The one component whose log to show.
    pub component: Option<Component>,
    /// Keep showing new entries as they are logged.
    #[arg(short, long)]
    pub follow: bool,
    /// Show the last N entries.
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<u32>,
    /// Entries from TIME on ("2026-11-30 12:00:00", "today", "-1h": as journalctl reads it).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Entries up to TIME.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Entries of LEVEL and more urgent.
    #[arg(short, long, value_name = "LEVEL", value_parser = [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        "0", "1", "2", "3", "4", "5", "6", "7",
    ])]
    pub priority: Option<String>,
}

/// `--color`'s values, as other command-line tools spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Makes it the choice of every output stream.
    pub(crate) fn apply(self) {
        let choice = match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

impl Cli {
    /// Whether hosts are named: the command then runs on them, over ssh.
    pub(crate) fn remote(&self) -> bool {
        !self.hosts.is_empty() || self.hosts_file.is_some()
    }

    /// The service manager asked for, on each host or here.
    pub(crate) fn manager(&self) -> Manager {
        if self.user {
            Manager::User
        } else {
            Manager::System
        }
    }

    /// The command line that reaches the same managers, as the messages suggest it.
    pub(crate) fn tool(&self) -> String {
        let mut tool = self.manager().tool().to_string();
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
            tool.push_str(&format!(" -H {}", hosts.join(",")));
        }
        if let Some(file) = &self.hosts_file {
            tool.push_str(&format!(" --hosts-file {}", file.display()));
        }
        tool
    }

    /// The first option given that only means something with hosts.
    pub(crate) fn fleet_option(&self) -> Option<&'static str> {
        [
            (self.rolling, "--rolling"),
            (self.parallel.is_some(), "--parallel"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

impl Command {
    /// The action asked for; `None` for `status` and `logs`, which only read.
    pub(crate) fn action(&self) -> Option<Action> {
        match self {
            Command::Act(command) => Some(command.action()),
            Command::Status { .. } | Command::Logs(_) => None,
        }
    }
}

impl ActCommand {
    pub(crate) fn action(&self) -> Action {
        match *self {
            ActCommand::Start => Action::Start,
            ActCommand::Stop => Action::Stop,
            ActCommand::Restart { component } => Action::Restart(component),
        }
    }
}

impl ValueEnum for Component {
    fn value_variants<'a>() -> &'a [Self] {
        &Component::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(
            PossibleValue::new(self.name())
                .help(self.title())
                .aliases(self.aliases()),
        )
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err("expected a whole number of seconds, 1 or more".to_string()),
    }
}

/// The clap definition, for generated man pages and shell completions.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn is_is_the_image_server() {
        let cli = Cli::try_parse_from(["ImageServing", "restart", "is"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Act(ActCommand::Restart {
                component: Some(Component::Es)
            })
        ));
    }

    #[test]
    fn spanish_verbs_are_aliases() {
        let cli = Cli::try_parse_from(["ImageServing", "estado", "svg", "--json"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Status {
                component: Some(Component::Svg),
                watch: false,
                ..
            }
        ));
    }

    #[test]
    fn hosts_repeat_and_split_on_commas() {
        let cli = Cli::try_parse_from(["ImageServing", "-H", "a,root@b:2222", "-H", "c", "status"])
            .unwrap();
        let names: Vec<String> = cli.hosts.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["a", "root@b:2222", "c"]);
    }

    #[test]
    fn a_remote_user_manager_is_refused() {
        let error =
            Cli::try_parse_from(["ImageServing", "--user", "-H", "a", "status"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn keep_going_belongs_to_a_rolling_action() {
        let line = ["ImageServing", "-H", "a", "restart", "--keep-going"];
        assert_eq!(Cli::try_parse_from(line).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn the_fleet_options_are_named_when_no_host_is() {
        let cli = Cli::try_parse_from(["ImageServing", "restart", "es", "--rolling"]).unwrap();
        assert!(!cli.remote());
        assert_eq!(cli.fleet_option(), Some("--rolling"));
        let cli = Cli::try_parse_from([
            "ImageServing",
            "--hosts-file",
            "tier",
            "--parallel",
            "2",
            "stop",
        ])
        .unwrap();
        assert!(cli.remote());
        assert_eq!(cli.tool(), "ImageServing --hosts-file tier");
    }

    #[test]
    fn timeout_must_be_positive() {
        assert!(Cli::try_parse_from(["ImageServing", "start", "--timeout", "0"]).is_err());
        let cli = Cli::try_parse_from(["ImageServing", "--timeout", "5", "stop"]).unwrap();
        assert_eq!(cli.timeout, Duration::from_secs(5));
    }
}
