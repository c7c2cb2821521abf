# Starting and stopping the servers a benchmark measures; sourced by the scripts beside it,
# which set WORK (logs go there).
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
