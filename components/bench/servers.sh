# Starting and stopping the servers a benchmark measures, and the sample catalog they serve;
# sourced by the scripts beside it, which set WORK (logs go there).
#
# Every server runs in its own process group (setsid), so that stopping it also stops the
# processes it forked (thumbor --processes).
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}
trap cleanup EXIT

# For the benchmarks of the sample catalog (they set ROOT, TARGET, BIN and WORK): checks that
# the tools "$@" are installed, builds the release daemons unless BIN names other ones, makes
# WORK afresh with the sample catalog and an empty configuration file ($WORK/empty.toml), and
# points the daemons at that catalog, without an access log.
prepare_sample_catalog() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
    done
    if [[ $BIN == "$TARGET/release" ]]; then
        echo "building release binaries"
        (cd "$ROOT" && cargo build -q --release -p imageserving-components -p xtask)
    fi
    rm -rf "$WORK" && mkdir -p "$WORK"
    "$BIN/xtask" sample-catalog "$WORK/catalog" >/dev/null
    : > "$WORK/empty.toml"
    export IMAGESERVING_CATALOG_ROOT=$WORK/catalog IMAGESERVING_PS_ACCESS_LOG=false
}

# Starts a server: launch NAME COMMAND...; its pid goes into the variable NAME, its output
# into $WORK/NAME.log.
launch() {
    local var=$1; shift
    setsid "$@" >"$WORK/$var.log" 2>&1 &
    PIDS+=($!)
    printf -v "$var" %s $!
}

# Waits (at most 30 s) until URL answers 200.
wait_ok() {
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2; exit 1
}
