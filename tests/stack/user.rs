//! `--user`: the same commands against a user's own service manager, over its session bus. The
//! manager runs as a service of the sandbox's systemd, on units of the stack written for a user
//! manager, which cannot take the system units' dynamic user or their hardening.

use std::fs;
use std::path::{Path, PathBuf};

use crate::fixture::{COMPONENTS, Run, SUPERVISOR, Stack, bin_dir, unit};
use crate::serving::catalog;

const RUNTIME_DIR: &str = "/run/user/0";

/// The user manager's whole unit path, removed on drop: the stack, a session bus, and the
/// targets a user manager's services depend on by default.
struct UserUnits(PathBuf);

impl UserUnits {
    fn write(catalog: &Path) -> UserUnits {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("user-units-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| fs::write(dir.join(name), text).unwrap();
        write("default.target", "[Unit]\nWants=dbus.socket\n");
        for target in ["basic.target", "sockets.target", "shutdown.target"] {
            write(target, "[Unit]\n");
        }
        write("dbus.socket", "[Socket]\nListenStream=%t/bus\n");
        write(
            "dbus.service",
            "[Service]\nExecStart=/usr/bin/dbus-daemon --session --address=systemd: \
             --nofork --nopidfile --systemd-activation\n",
        );
        write("imageserving.slice", "[Slice]\n");
        let components: Vec<String> = COMPONENTS.iter().map(|c| unit(c)).collect();
        write(
            SUPERVISOR,
            &format!("[Unit]\nWants={}\n", components.join(" ")),
        );
        for component in COMPONENTS {
            let order = if component == "ps" {
                "After=imageserving-es.service imageserving-svg.service\n"
            } else {
                ""
            };
            write(
                &unit(component),
                &format!(
                    "[Unit]\nPartOf={SUPERVISOR}\n{order}[Service]\nType=notify\n\
                     ExecStart={}/imageserving-{component}\nSlice=imageserving.slice\n\
                     Environment=IMAGESERVING_CATALOG_ROOT={}\n",
                    bin_dir().display(),
                    catalog.display()
                ),
            );
        }
        UserUnits(dir)
    }
}

impl Drop for UserUnits {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Starts root's user manager as a service of the sandbox's systemd; returns once it is ready.
/// It is named as on a booted host, `user@0.service`: the journal tells user units apart by
/// that name in their cgroup's path.
fn start_user_manager(stack: &Stack, units: &UserUnits) {
    let status = stack
        .sandbox
        .command("systemd-run")
        .args(["--quiet", "--unit=user@0.service", "--property=Type=notify"])
        .args([
            "--property=Delegate=yes",
            "--property=RuntimeDirectory=user/0",
        ])
        .arg(format!("--setenv=XDG_RUNTIME_DIR={RUNTIME_DIR}"))
        .arg(format!("--setenv=SYSTEMD_UNIT_PATH={}", units.0.display()))
        .args(["/lib/systemd/systemd", "--user"])
        .status()
        .expect("run systemd-run in the sandbox");
    assert!(
        status.success(),
        "the user manager did not start:\n{}",
        stack.sandbox.journal("user@0.service")
    );
}

/// `ImageServing --user ARGS`, in the user manager's session.
fn user_cli(stack: &Stack, args: &[&str]) -> Run {
    stack.run(
        stack
            .tool()
            .arg("--user")
            .args(args)
            .env("XDG_RUNTIME_DIR", RUNTIME_DIR)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={RUNTIME_DIR}/bus"),
            ),
    )
}

fn invocation(status: &serde_json::Value, component: &str) -> String {
    let found = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == component);
    found.expect("the component is listed")["invocation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_commands_drive_a_users_manager_over_the_session_bus() {
    let stack = Stack::install();
    let units = UserUnits::write(&catalog("user-manager"));
    start_user_manager(&stack, &units);

    user_cli(&stack, &["start"])
        .expect(0)
        .stdout_says("Started the stack");
    let before = user_cli(&stack, &["status", "--json"]).expect(0).json();
    for c in before["components"].as_array().unwrap() {
        assert_eq!(c["active_state"], "active", "{c}");
        stack.assert_figures(c);
    }
    assert_eq!(
        stack.show(SUPERVISOR, "ActiveState"),
        "inactive",
        "the system manager's stack was started instead"
    );
    let response = stack.get("/is/image/shop/shoe?wid=200&fmt=png");
    assert_eq!(response.status, 200, "{}", response.text());

    user_cli(&stack, &["restart", "es"]).expect(0);
    let after = user_cli(&stack, &["status", "--json"]).expect(0).json();
    assert_ne!(invocation(&after, "es"), invocation(&before, "es"));
    assert_eq!(invocation(&after, "ps"), invocation(&before, "ps"));
    let logs = user_cli(&stack, &["logs", "es", "--lines", "20"]).expect(0);
    logs.stdout_says("imageserving-es");
    logs.stdout_says("listening on");

    user_cli(&stack, &["stop"]).expect(0);
    // The way back names the user manager's command line.
    user_cli(&stack, &["status"])
        .expect(3)
        .stdout_says("is not running (inactive). Start the stack with `ImageServing --user start`");
}
