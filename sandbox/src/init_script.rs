//! The shell script that runs as PID 1 of the new namespaces, makes the host safe from what
//! systemd does at boot and at halt, then execs systemd.

use std::path::Path;

use crate::base_units::BASE_TARGET;
use crate::cgroups::{HIERARCHIES, HarnessCgroups, Layout, PAYLOAD, SUPERVISOR};

/// What the sandbox's /sys/fs/cgroup shows, bind-mounted from the host.
const SHOWN_HIERARCHIES: &str = "systemd unified cpuacct cpuset memory devices freezer blkio pids";

/// Hierarchies systemd 252 looks for but the host does not mount (or not as systemd assumes):
/// read-only empty placeholders keep systemd from creating new kernel-wide hierarchies.
const PLACEHOLDERS: &str =
    "cpu,cpuacct net_cls,net_prio net_cls net_prio perf_event hugetlb rdma misc";

/// The value of `container=`; without it PID 1 behaves as on real hardware (sets the clock,
/// loads security policies, writes to the kernel log).
const CONTAINER: &str = "imageserving-sandbox";

/// Renders the script for a sandbox whose state lives in `state` and which runs in `cgroups`.
pub(crate) fn render(state: &Path, cgroups: &HarnessCgroups) -> String {
    let s = quote(&state.to_string_lossy());
    let (enter_cgroup, cgroup_fs) = match cgroups.layout() {
        Layout::Hybrid => (enter_hybrid(cgroups.name()), hybrid_cgroup_fs()),
        Layout::Unified => (enter_unified(cgroups.name()), UNIFIED_CGROUP_FS.to_owned()),
    };
    format!(
        r#"#!/bin/sh
# PID 1 of the sandbox until it execs systemd. Every mount takes -n (no /run/mount/utab on the
# host) and every read-only remount takes bind (a plain remount,ro changes the host's mount).
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
S={s}

{enter_cgroup}

mount -n --bind /proc/sys /proc/sys
mount -n -o remount,bind,ro /proc/sys
# A boot id of its own, so that what systemd names after it (PrivateTmp= directories in the
# host's /tmp) can be found and removed at teardown.
mount -n --bind "$S/boot_id" /proc/sys/kernel/random/boot_id
mount -n -o remount,bind,ro /proc/sys/kernel/random/boot_id
if [ -e /proc/sysrq-trigger ]; then
    mount -n --bind /proc/sysrq-trigger /proc/sysrq-trigger
    mount -n -o remount,bind,ro /proc/sysrq-trigger
fi

{cgroup_fs}mount -n -o remount,bind,ro /sys

# /run, the bus and the journal live in the state directory, readable from the host.
console=$(readlink /proc/self/fd/0)
mount -n -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/dbus /run/log/journal /run/systemd/journald.conf.d /run/.newdev
mount -n --bind "$S/dbus" /run/dbus
mount -n --bind "$S/journal" /run/log/journal
printf '%s\n' '[Journal]' Storage=volatile ReadKMsg=no ForwardToSyslog=no ForwardToKMsg=no \
    ForwardToConsole=no ForwardToWall=no > /run/systemd/journald.conf.d/sandbox.conf
mount -n --bind "$S/etc-systemd" /etc/systemd
# What services write under /var (StateDirectory=, CacheDirectory=, LogsDirectory=, with
# DynamicUser= their private/ directories, PrivateTmp='s /var/tmp) and what systemd keeps in
# /var/lib/systemd stay in the state directory too.
for v in lib cache log tmp; do
    mount -n --bind "$S/var/$v" "/var/$v"
done

# A private /dev, built aside and moved into place; /dev/console is the pty of `script`.
d=/run/.newdev
mount -n -t tmpfs -o mode=755,nosuid tmpfs "$d"
mknod -m 666 "$d/null" c 1 3
mknod -m 666 "$d/zero" c 1 5
mknod -m 666 "$d/full" c 1 7
mknod -m 666 "$d/random" c 1 8
mknod -m 666 "$d/urandom" c 1 9
mknod -m 666 "$d/tty" c 5 0
mkdir "$d/pts" "$d/shm"
mount -n -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$d/pts"
ln -s pts/ptmx "$d/ptmx"
mount -n -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
ln -s /proc/self/fd "$d/fd"
ln -s /proc/self/fd/0 "$d/stdin"
ln -s /proc/self/fd/1 "$d/stdout"
ln -s /proc/self/fd/2 "$d/stderr"
: > "$d/console"
mount -n --bind "$console" "$d/console"
mount -n --move "$d" /dev
rmdir /run/.newdev

# A loopback of its own: components listen on fixed ports, sandboxes run in parallel.
ip link set lo up

# The unit path is a whitelist: nothing of /lib/systemd/system is visible.
exec env -i container={CONTAINER} \
    SYSTEMD_UNIT_PATH="/etc/systemd/system:$S/units:$S/base-units" \
    SYSTEMD_GENERATOR_PATH="$S/gen-empty" \
    SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$S/gen-empty" \
    /lib/systemd/systemd --unit={BASE_TARGET}
"#
    )
}

/// Into the harness cgroups first: systemd manages the cgroup it starts in.
fn enter_hybrid(cgroup: &str) -> String {
    let cgroup = quote(cgroup);
    let hierarchies = HIERARCHIES.join(" ");
    format!(
        r#"# Into the harness cgroups first: systemd manages the cgroup it starts in.
for h in {hierarchies}; do
    echo 0 > "/sys/fs/cgroup/$h/"{cgroup}/cgroup.procs
done"#
    )
}

/// From the supervisor cgroup of the delegated scope into its payload cgroup, which becomes the
/// root of a new cgroup namespace: systemd manages the cgroup it starts in, and nothing above.
fn enter_unified(scope: &str) -> String {
    let scope = quote(scope);
    format!(
        r#"# Run twice: first in the host's cgroup namespace, then (with an argument) in the new one.
if [ "$#" -eq 0 ]; then
    scope=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
    scope=${{scope%/{SUPERVISOR}}}
    if [ "${{scope##*/}}" != {scope} ]; then
        echo "PID 1 started in the cgroup $scope instead of the scope "{scope} >&2
        exit 1
    fi
    echo 0 > "$scope/{PAYLOAD}/cgroup.procs"
    # The scope's own cgroup now holds no process (cgroup v2 allows processes in leaves only
    # once controllers are handed down): every controller delegated to it goes to the payload,
    # where systemd hands them on to the units that account for them.
    for c in $(cat "$scope/cgroup.controllers"); do
        echo "+$c" > "$scope/cgroup.subtree_control"
    done
    exec unshare --cgroup "$0" in-cgroup-namespace
fi"#
    )
}

/// A private /sys/fs/cgroup of bind mounts and placeholders, on a hybrid host.
fn hybrid_cgroup_fs() -> String {
    format!(
        r#"# A private /sys/fs/cgroup: systemd remounts it read-only and would add hierarchies to it.
# cpuacct is shown at cpu/ too: systemd assumes cpu and cpuacct co-mounted and reports no CPU
# usage otherwise.
stage="$S/cg-stage"
mount -n -t tmpfs -o mode=755 tmpfs "$stage"
cd "$stage"
mkdir {SHOWN_HIERARCHIES} cpu {PLACEHOLDERS}
cd /
for h in {SHOWN_HIERARCHIES}; do
    mount -n --bind "/sys/fs/cgroup/$h" "$stage/$h"
done
mount -n --bind /sys/fs/cgroup/cpuacct "$stage/cpu"
for p in {PLACEHOLDERS}; do
    mount -n -t tmpfs -o ro,mode=555,size=4k tmpfs "$stage/$p"
done
mount -n --move "$stage" /sys/fs/cgroup
"#
    )
}

/// The cgroup2 file system of the new cgroup namespace: the payload cgroup and what is below.
/// The inherited mount goes first: mounting over it fails with EBUSY.
const UNIFIED_CGROUP_FS: &str = r#"umount -n -l /sys/fs/cgroup
mount -n -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
"#;

/// Single-quotes a word for sh.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
