//! The unit files themselves: they load cleanly, and every service stays within the hardening
//! bar (`systemd-analyze security` exposure 1.5 or better).

use std::fs;
use std::process::Command;

use crate::fixture::{bin_dir, repo};

/// The highest exposure score a service may have ("OK" is up to 1.5 in systemd's own words).
const EXPOSURE_BAR: f64 = 1.5;

fn unit_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(repo().join("units"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_service_is_hardened_to_the_bar() {
    let services: Vec<_> = unit_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    assert_eq!(services.len(), 3);
    for service in services {
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&service)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no score for {}:\n{text}", service.display()));
        assert!(
            score <= EXPOSURE_BAR,
            "{} scores {score}, above {EXPOSURE_BAR}:\n{text}",
            service.display()
        );
    }
}

#[test]
fn unit_files_verify_cleanly() {
    // The shipped paths point into the package; verify against this build's daemons instead.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("verify-units");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for unit in unit_files() {
        let text = fs::read_to_string(&unit).unwrap().replace(
            "/usr/libexec/imageserving/",
            &format!("{}/", bin_dir().display()),
        );
        let path = dir.join(unit.file_name().unwrap());
        fs::write(&path, text).unwrap();
        files.push(path);
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );
}
