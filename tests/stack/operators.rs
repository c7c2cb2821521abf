//! Operators who are not root. Members of the group `imageserving` run the stack through the
//! shipped polkit rule and bus policy; anyone else is refused with exit 4 and one line that
//! says why and what to do; everyone may read the status.
//!
//! polkitd runs inside the sandbox, started by the sandbox's bus on the first question exactly
//! as on a host, and reads the shipped rule. The users and the group exist only inside the
//! sandbox: its mount namespace gets private copies of /etc/passwd and /etc/group, of polkit's
//! and the bus's local configuration directories, and a copy of `ImageServing` that the users
//! can execute wherever the build lives.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::fixture::{COMPONENTS, Run, SUPERVISOR, Stack, repo, unit};

const GROUP: &str = "imageserving";
/// Where the sandbox keeps what this file adds: its private /run, gone with it.
const PRIVATE: &str = "/run/imageserving-operators";
/// Where the binary is copied: the users can reach it whatever the build directory's modes.
const TOOL: &str = "/run/imageserving-operators/ImageServing";
/// The first uid and gid tried for the users and the group (the first free ones are taken).
const FIRST_ID: u32 = 61000;
const POLKIT_UNIT: &str = "polkit.service";
/// A unit that has nothing to do with the stack.
const BYSTANDER: &str = "bystander.service";

/// Who runs a command inside the sandbox.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// A member of the group `imageserving`.
    Operator,
    /// A user outside the group.
    Outsider,
}

impl Who {
    fn user(self) -> &'static str {
        match self {
            Who::Operator => "isoperator",
            Who::Outsider => "isoutsider",
        }
    }
}

/// A sandbox with the stack installed, the two users, and the shipped bus policy.
struct Operators {
    stack: Stack,
}

impl Operators {
    /// Everything but polkit: on such a host systemd refuses every change by a non-root caller.
    fn without_polkit() -> Operators {
        let operators = Operators {
            stack: Stack::install(),
        };
        fs::create_dir(operators.host_path(PRIVATE)).expect("create the private directory");
        operators.add_users();
        operators.install_tool();
        operators.install_bus_policy();
        operators
    }

    /// With polkitd and the shipped rule, as the package installs them.
    fn with_polkit() -> Operators {
        let operators = Operators::without_polkit();
        operators.install_polkit();
        operators
    }

    /// The host's path of a path inside the sandbox.
    fn host_path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.stack.sandbox.pid1()))
    }

    /// Writes a world-readable file inside the sandbox.
    fn write(&self, inside: &str, contents: &str) {
        let path = self.host_path(inside);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// A directory inside the sandbox, readable by every user (polkitd reads as `polkitd`,
    /// the bus as `messagebus`).
    fn make_dir(&self, inside: &str) {
        let path = self.host_path(inside);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Bind-mounts `source` over `target` in the sandbox's mount namespace only.
    fn mount_over(&self, source: &str, target: &str) {
        let output = self
            .stack
            .sandbox
            .command("mount")
            .args(["-n", "--bind", source, target])
            .output()
            .expect("run mount in the sandbox");
        succeeded(&output, &format!("bind-mount {source} over {target}"));
    }

    /// The group `imageserving` with the operator in it, and the outsider, on uids and gids
    /// the host does not use. Every other account stays (polkitd runs as `polkitd`).
    fn add_users(&self) {
        let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let group = fs::read_to_string("/etc/group").expect("read /etc/group");
        let ours = [GROUP, Who::Operator.user(), Who::Outsider.user()];
        let others = |text: &str| -> String {
            text.lines()
                .filter(|line| !ours.contains(&line.split(':').next().unwrap_or("")))
                .map(|line| format!("{line}\n"))
                .collect()
        };
        let [group_id, operator_id, outsider_id] = free_ids(&passwd, &group);
        let (operator, outsider) = (Who::Operator.user(), Who::Outsider.user());
        self.write(
            &format!("{PRIVATE}/passwd"),
            &format!(
                "{}{operator}:x:{operator_id}:{operator_id}:Image Serving operator:/:/bin/sh\n\
                 {outsider}:x:{outsider_id}:{outsider_id}:Someone else:/:/bin/sh\n",
                others(&passwd)
            ),
        );
        self.write(
            &format!("{PRIVATE}/group"),
            &format!(
                "{}{GROUP}:x:{group_id}:{operator}\n{operator}:x:{operator_id}:\n\
                 {outsider}:x:{outsider_id}:\n",
                others(&group)
            ),
        );
        self.mount_over(&format!("{PRIVATE}/passwd"), "/etc/passwd");
        self.mount_over(&format!("{PRIVATE}/group"), "/etc/group");
    }

    fn install_tool(&self) {
        let path = self.host_path(TOOL);
        fs::copy(env!("CARGO_BIN_EXE_ImageServing"), &path).expect("copy ImageServing");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The shipped bus policy, as the only file of the bus's local configuration directory.
    fn install_bus_policy(&self) {
        let dir = format!("{PRIVATE}/dbus-system.d");
        self.make_dir(&dir);
        self.write(
            &format!("{dir}/imageserving.conf"),
            &shipped("polkit/imageserving-bus.conf"),
        );
        self.mount_over(&dir, "/etc/dbus-1/system.d");
        let output = self
            .stack
            .sandbox
            .command("busctl")
            .args([
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "ReloadConfig",
            ])
            .output()
            .expect("run busctl in the sandbox");
        succeeded(&output, "reload the bus configuration");
    }

    /// The shipped rule in polkit's local rules directory, and polkit.service, which the
    /// sandbox's whitelisted unit path otherwise lacks. The bus starts it on the first question.
    fn install_polkit(&self) {
        let dir = format!("{PRIVATE}/polkit-rules.d");
        self.make_dir(&dir);
        self.write(
            &format!("{dir}/imageserving.rules"),
            &shipped("polkit/imageserving.rules"),
        );
        // Runs before the shipped rule (rules run sorted by file name) and decides nothing: it
        // logs every question systemd asks, so the test sees the details the rule matches on.
        self.write(
            &format!("{dir}/00-questions.rules"),
            r#"polkit.addRule(function (action, subject) {
    if (action.id.indexOf("org.freedesktop.systemd1.") === 0) {
        polkit.log("asked " + action.id + " unit=" + action.lookup("unit") +
                   " verb=" + action.lookup("verb") + " user=" + subject.user);
    }
});
"#,
        );
        self.mount_over(&dir, "/etc/polkit-1/rules.d");

        let path = format!("/lib/systemd/system/{POLKIT_UNIT}");
        let unit = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("read {path} ({e}): polkit is not installed (apt-get install polkitd)")
        });
        let sandbox = &self.stack.sandbox;
        sandbox
            .write_unit_file(POLKIT_UNIT, &unit)
            .expect("install polkit.service");
        // With --no-debug polkitd logs to syslog only, which the sandbox does not have;
        // without it, to stderr, which the journal keeps.
        let exec_start = unit
            .lines()
            .find(|line| line.starts_with("ExecStart="))
            .expect("polkit.service has an ExecStart=")
            .replace(" --no-debug", "");
        sandbox
            .write_drop_in(
                POLKIT_UNIT,
                "50-log-to-journal",
                &format!("[Service]\nExecStart=\n{exec_start}\n"),
            )
            .expect("write the drop-in of polkit.service");
        sandbox.daemon_reload().expect("daemon-reload");
    }

    /// A command run inside the sandbox as `who`, with the groups the group database gives it.
    fn as_user(&self, who: Who, program: &str) -> Command {
        let mut command = self.stack.sandbox.command("setpriv");
        command
            .args([
                "--reuid",
                who.user(),
                "--regid",
                who.user(),
                "--init-groups",
                "--",
            ])
            .arg(program)
            // A login's environment, not the test's; a working directory every user can enter.
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/")
            .current_dir("/");
        command
    }

    /// `ImageServing ARGS` as `who`.
    fn cli(&self, who: Who, args: &[&str]) -> Run {
        let output = self
            .as_user(who, TOOL)
            .args(args)
            .output()
            .expect("run ImageServing as a user");
        Run::from(output)
    }

    /// `systemctl ARGS` as `who`, never asking for a password.
    fn systemctl(&self, who: Who, args: &[&str]) -> Output {
        self.as_user(who, "systemctl")
            .arg("--no-ask-password")
            .args(args)
            .output()
            .expect("run systemctl as a user")
    }

    fn invocations(&self) -> Vec<String> {
        COMPONENTS
            .iter()
            .map(|c| self.stack.invocation(c))
            .collect()
    }

    #[track_caller]
    fn assert_stack(&self, state: &str) {
        assert_eq!(self.stack.show(SUPERVISOR, "ActiveState"), state);
        for c in COMPONENTS {
            assert_eq!(self.stack.show(&unit(c), "ActiveState"), state, "{c}");
        }
    }

    /// Waits until polkitd has logged that systemd asked about `verb` on `unit` for `who`.
    #[track_caller]
    fn wait_for_question(&self, unit: &str, verb: &str, who: Who) {
        let question = format!(
            "asked org.freedesktop.systemd1.manage-units unit={unit} verb={verb} user={}",
            who.user()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.stack.sandbox.journal(POLKIT_UNIT);
            if log.contains(&question) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "polkitd never logged {question:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The text of a file shipped in the repository.
fn shipped(path: &str) -> String {
    let path = repo().join(path);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Three ids from `FIRST_ID` up that are neither a uid nor a gid on the host.
fn free_ids(passwd: &str, group: &str) -> [u32; 3] {
    let used: HashSet<u32> = passwd
        .lines()
        .chain(group.lines())
        .filter_map(|line| line.split(':').nth(2)?.parse().ok())
        .collect();
    let mut free = (FIRST_ID..).filter(|id| !used.contains(id));
    [(); 3].map(|()| free.next().expect("a free id"))
}

#[track_caller]
fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "cannot {what}: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Exit 4 and one line on stderr that says the call was refused and what to do about it.
#[track_caller]
fn assert_refused(run: Run) {
    let run = run.expect(4);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line on stderr:\n{}", run.stderr);
    let line = lines[0];
    assert!(line.contains("not allowed"), "does not say why: {line}");
    assert!(
        line.contains("root") && line.contains(GROUP),
        "does not say what to do: {line}"
    );
    assert_eq!(run.stdout, "", "stdout of a refused call");
}

#[test]
fn a_member_restarts_a_component_without_sudo() {
    let operators = Operators::with_polkit();
    operators.stack.cli(&["start"]).expect(0);
    let before = operators.stack.invocation("es");

    let run = operators.cli(Who::Operator, &["restart", "es"]).expect(0);
    run.stdout_says("Restarted es");
    assert_ne!(
        operators.stack.invocation("es"),
        before,
        "es did not restart"
    );
    operators.assert_stack("active");
    // What systemd 252 asks polkit for, the details the rule matches on: ResetFailedUnit, then
    // EnqueueUnitJob with the job type as the verb.
    let es = unit("es");
    operators.wait_for_question(&es, "reset-failed", Who::Operator);
    operators.wait_for_question(&es, "restart", Who::Operator);
}

#[test]
fn a_member_starts_restarts_and_stops_the_whole_stack() {
    let operators = Operators::with_polkit();
    operators.cli(Who::Operator, &["start"]).expect(0);
    operators.assert_stack("active");
    let before = operators.invocations();

    operators.cli(Who::Operator, &["restart"]).expect(0);
    operators.assert_stack("active");
    let after = operators.invocations();
    for (i, c) in COMPONENTS.iter().enumerate() {
        assert_ne!(before[i], after[i], "{c} kept its invocation");
    }

    operators.cli(Who::Operator, &["stop"]).expect(0);
    operators.assert_stack("inactive");
    operators.wait_for_question(SUPERVISOR, "stop", Who::Operator);
}

#[test]
fn an_outsider_may_look_but_not_touch() {
    let operators = Operators::with_polkit();
    operators.stack.cli(&["start"]).expect(0);
    let before = operators.invocations();

    for args in [&["restart", "es"][..], &["restart"], &["stop"], &["start"]] {
        assert_refused(operators.cli(Who::Outsider, args));
    }
    assert_eq!(
        operators.invocations(),
        before,
        "a refused call changed the stack"
    );
    operators.assert_stack("active");
    // The refusals came from polkit, which was asked.
    operators.wait_for_question(&unit("es"), "reset-failed", Who::Outsider);

    let status = operators.cli(Who::Outsider, &["status"]).expect(0);
    for c in COMPONENTS {
        let line = status
            .stdout
            .lines()
            .find(|line| line.contains(&unit(c)))
            .unwrap_or_else(|| panic!("no line for {c}:\n{}", status.stdout));
        assert!(line.contains("active/running"), "{line}");
    }
    // The components' logs are the system journal's, which outsiders may not read.
    let logs = operators.cli(Who::Outsider, &["logs"]).expect(4);
    logs.stderr_says("systemd-journal");
    assert_eq!(logs.stdout, "");
}

#[test]
fn the_rule_grants_the_stack_and_nothing_else() {
    let operators = Operators::with_polkit();
    let sandbox = &operators.stack.sandbox;
    sandbox
        .write_unit_file(
            BYSTANDER,
            "[Unit]\nDescription=A service that is not part of the stack\n\n\
             [Service]\nExecStart=/bin/sleep infinity\n",
        )
        .expect("install the bystander");
    sandbox.daemon_reload().expect("daemon-reload");
    succeeded(
        &operators.stack.systemctl(&["start", BYSTANDER]),
        "start the bystander",
    );
    operators.stack.cli(&["start"]).expect(0);
    let bystander = operators.stack.show(BYSTANDER, "InvocationID");
    let es_pid = operators.stack.show(&unit("es"), "MainPID");

    // Another unit, a verb the rule does not list, a unit of the stack the tool never asks for.
    let es = unit("es");
    for args in [
        &["stop", BYSTANDER][..],
        &["restart", BYSTANDER],
        &["kill", es.as_str()],
        &["stop", "imageserving-es.socket"],
    ] {
        let output = operators.systemctl(Who::Operator, args);
        assert!(
            !output.status.success(),
            "the operator could `systemctl {}`",
            args.join(" ")
        );
    }
    assert_eq!(operators.stack.show(BYSTANDER, "ActiveState"), "active");
    assert_eq!(operators.stack.show(BYSTANDER, "InvocationID"), bystander);
    assert_eq!(operators.stack.show(&es, "MainPID"), es_pid);
    assert_eq!(
        operators
            .stack
            .show("imageserving-es.socket", "ActiveState"),
        "active"
    );
    // The same verbs on the stack's own units are granted, through systemctl too.
    let output = operators.systemctl(Who::Operator, &["restart", &es]);
    succeeded(&output, "systemctl restart es as the operator");
}

#[test]
fn without_polkit_non_root_callers_are_refused_cleanly() {
    let operators = Operators::without_polkit();
    operators.stack.cli(&["start"]).expect(0);
    let before = operators.invocations();

    // systemd asks polkit, polkit is not there: systemd refuses, the tool says so in one line.
    assert_refused(operators.cli(Who::Operator, &["restart", "es"]));
    assert_refused(operators.cli(Who::Outsider, &["stop"]));
    assert_eq!(operators.invocations(), before);
    operators.cli(Who::Outsider, &["status"]).expect(0);
}
