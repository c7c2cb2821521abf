# What the tests that boot Debian under systemd-nspawn share: waiting, the test's own cgroup
# on the host, and the container's lifecycle. Sourced by tests/package/run and
# tests/unified-host/run, which set:
#   cgroup       the test's cgroup, harness_<kind>_<pid>.slice
#   hierarchies  the host's cgroup hierarchies it is made in
#   nspawn, init the container's nspawn process and its PID 1 (empty when none runs)
# and define fail, which stops the test with a message.

# Runs "$@" every 0.2 s until it succeeds; false once SECS have passed.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Host PIDs of every process in the cgroup $1 (a container included).
cgroup_pids() {
    local dir=/sys/fs/cgroup/systemd/$1
    [[ -d $dir ]] && find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null
    return 0
}

# A function, so that wait_until reads the cgroup anew at each try.
cgroup_empty() { [[ -z $(cgroup_pids "$1") ]]; }

kill_cgroup() {
    local pid
    for pid in $(cgroup_pids "$1"); do kill -KILL "$pid" 2>/dev/null || true; done
    wait_until 10 cgroup_empty "$1"
}

remove_cgroup() {
    local h dir deadline=$((SECONDS + 20))
    for h in "${hierarchies[@]}"; do
        dir=/sys/fs/cgroup/$h/$1
        # Emptied cgroups can be removed only once the kernel is done with them.
        while [[ -d $dir ]]; do
            find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [[ -d $dir ]] || break
            ((SECONDS < deadline)) || {
                echo "cannot remove $dir: remove it by hand once empty" >&2
                return 1
            }
            sleep 0.2
        done
    done
}

# Leftovers of runs of the test $2 (cgroups harness_$1_PID.slice, folders
# /tmp/imageserving-$1_PID) that were killed before their own cleanup.
remove_stale() {
    local kind=$1 script=$2 dir owner
    for dir in /sys/fs/cgroup/systemd/harness_"$kind"_*.slice /tmp/imageserving-"$kind"_*; do
        [[ -e $dir ]] || continue
        owner=${dir##*"$kind"_}
        owner=${owner%.slice}
        if [[ $owner != "$$" ]] && ! grep -qs "$script" "/proc/$owner/cmdline"; then
            if [[ $dir == /sys/* ]]; then
                kill_cgroup "harness_${kind}_$owner.slice"
                remove_cgroup "harness_${kind}_$owner.slice"
            else
                rm -rf --one-file-system "$dir"
            fi
        fi
    done
}

# Installs packages "${@:3}" into the root file system $1 with apt, logging to $2.
chroot_install() {
    local dir=$1 log=$2
    shift 2
    unshare --mount --propagation private -- bash -c '
        mount -n -t proc proc "$1/proc" &&
        chroot "$1" apt-get update -q &&
        chroot "$1" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${@:2}" &&
        chroot "$1" apt-get clean' _ "$dir" "$@" >>"$log" 2>&1 || {
        tail -20 "$log" >&2
        fail "installing $* into the root file system: see the log above"
    }
}

find_init() {
    local pid
    for pid in $(cgroup_pids "$cgroup"); do
        if grep -Eqs '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$pid/status"; then
            init=$pid
            return 0
        fi
    done
    return 1
}

# Fails the test unless the container's PID 1 still runs.
container_alive() {
    grep -Eqs '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$init/status" || fail "the container is gone"
}

stop_container() {
    [[ -n $nspawn ]] || return 0
    # nspawn asks the container's systemd to power off, and exits when it has.
    kill -TERM "$nspawn" 2>/dev/null || true
    wait_until 30 cgroup_empty "$cgroup" || kill_cgroup "$cgroup"
    wait "$nspawn" 2>/dev/null || true
    nspawn=
    init=
}
