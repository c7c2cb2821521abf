//! systemd's words for a unit's state and for how its jobs and runs ended, as types. A word
//! this systemd does not know yet (a newer systemd may add some) is kept as `Other`.

use std::fmt;

use serde::{Serialize, Serializer};

/// An enum of systemd's words, each variant with its spelling and, where people read them,
/// the words' meanings; `Other` keeps any other word.
macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant,)*
            /// A word not listed here, or none (`""`) when systemd gave none.
            Other(String),
        }

        impl Default for $name {
            fn default() -> $name {
                $name::Other(String::new())
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)*
                    $name::Other(word) => word,
                }
            }
        }

        impl From<String> for $name {
            fn from(word: String) -> $name {
                match word.as_str() {
                    $($word => $name::$variant,)*
                    _ => $name::Other(word),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $word:literal => $meaning:literal,)* }) => {
        words! { $(#[$doc])* $name { $($variant = $word,)* } }

        impl $name {
            /// What the word means, for people.
            pub fn explain(&self) -> &'static str {
                match self {
                    $($name::$variant => $meaning,)*
                    $name::Other(_) => "systemd reported an unusual result",
                }
            }
        }
    };
}

words! {
    /// A unit's `ActiveState`.
    ActiveState {
        Active = "active",
        Reloading = "reloading",
        Inactive = "inactive",
        Failed = "failed",
        Activating = "activating",
        Deactivating = "deactivating",
        Maintenance = "maintenance",
    }
}

impl ActiveState {
    /// Neither running nor on its way up or down.
    pub fn is_down(&self) -> bool {
        matches!(self, ActiveState::Inactive | ActiveState::Failed)
    }
}

words! {
    /// How a job ended, as `JobRemoved` says it.
    JobResult {
        Done = "done" => "done",
        Skipped = "skipped" => "nothing to do",
        Canceled = "canceled" => "canceled by another job",
        Timeout = "timeout" => "timed out",
        Failed = "failed" => "failed",
        Dependency = "dependency" => "a unit it depends on failed",
        Invalid = "invalid" => "not applicable to this unit",
        Assert = "assert" => "an assertion of the unit failed",
        Unsupported = "unsupported" => "not supported by this unit type",
        Collected = "collected" => "garbage-collected before it ran",
        Once = "once" => "the unit may only run once",
    }
}

words! {
    /// How a service's last run ended: its `Result` property, or `UNIT_RESULT` in the journal.
    UnitResult {
        Success = "success" => "it ran without error",
        ExitCode = "exit-code" => "its process exited with a non-zero status",
        Signal = "signal" => "its process was killed by a signal",
        CoreDump = "core-dump" => "its process crashed and dumped core",
        Timeout = "timeout" => "it did not become ready, or stop, within its timeout",
        Watchdog = "watchdog" => "it stopped answering the watchdog and was killed",
        Resources = "resources" =>
            "systemd could not set up its resources (missing binary, directory, user or socket)",
        Protocol = "protocol" =>
            "it broke the service protocol (for example it never said READY=1)",
        StartLimitHit = "start-limit-hit" =>
            "it was started too often in a short time and systemd's start rate limit now \
             blocks it; an operator's start or restart clears the limit",
        ExecCondition = "exec-condition" => "a start condition of the unit was not met",
        Condition = "condition" => "a start condition of the unit was not met",
        OomKill = "oom-kill" => "the kernel's out-of-memory killer ended it",
    }
}

impl UnitResult {
    /// Whether the run ended in a way worth reporting: not success, and not "no run yet".
    pub fn is_failure(&self) -> bool {
        !matches!(self, UnitResult::Success) && !self.as_str().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_ones_are_kept() {
        assert_eq!(ActiveState::from("active".to_string()), ActiveState::Active);
        assert_eq!(
            UnitResult::from("oom-kill".to_string()).as_str(),
            "oom-kill"
        );
        let new = JobResult::from("frobnicated".to_string());
        assert_eq!(new, JobResult::Other("frobnicated".into()));
        assert_eq!(new.to_string(), "frobnicated");
        assert!(!UnitResult::default().is_failure());
        assert!(UnitResult::from("watchdog".to_string()).is_failure());
    }
}
