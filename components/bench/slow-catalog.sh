#!/usr/bin/env bash
# What a slow catalog disk costs the Platform Server's other requests. Each of ps's stat,
# readlink and open calls is held for DELAY_US microseconds (strace's fault injection,
# seccomp-filtered so that no other call is slowed), as a network or overloaded disk would
# hold them. Cached image requests, whose every lookup resolves and stats catalog files, run
# at concurrency 8; beside them, the status document, which touches no catalog file, is timed
# against the same request with nothing else running (the baseline). Lookups run on tokio's
# blocking pool, so the I/O threads keep serving while they wait, and the status document
# should not wait for them.
#
# Usage: components/bench/slow-catalog.sh [DURATION]   (default 5 s per run)
# BIN=DIR takes the daemons (and xtask) from DIR instead of building release binaries.
# Needs: wrk and strace (apt-get install wrk strace).
set -euo pipefail

DURATION=${1:-5}
DELAY_US=${DELAY_US:-5000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}/slow-catalog
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release}
PS_PORT=29080 ES_PORT=29345 SVG_PORT=29346
URL="http://127.0.0.1:$PS_PORT/is/image/sample/landscape?wid=200"
STATUS_URL="http://127.0.0.1:$PS_PORT/is/image"

# shellcheck source=components/bench/servers.sh
source "$ROOT/components/bench/servers.sh"
prepare_sample_catalog wrk strace
export IMAGESERVING_ES_LISTEN=127.0.0.1:$ES_PORT IMAGESERVING_SVG_LISTEN=127.0.0.1:$SVG_PORT
export IMAGESERVING_PS_LISTEN=127.0.0.1:$PS_PORT
launch es "$BIN/imageserving-es" --config "$WORK/empty.toml"
launch svg "$BIN/imageserving-svg" --config "$WORK/empty.toml"

slowed=newfstatat,statx,readlink,readlinkat,openat
launch ps strace -f -qq --seccomp-bpf -o /dev/null -e trace="$slowed" \
    -e inject="$slowed":delay_enter="$DELAY_US" "$BIN/imageserving-ps" --config "$WORK/empty.toml"
wait_ok "$STATUS_URL"
wait_ok "$URL"

# Prints "req/s p99" of a wrk run: OUTPUT CONNECTIONS URL.
run_wrk() {
    wrk -t1 -c"$2" -d"${DURATION}s" --latency "$3" >"$WORK/$1.txt"
    awk '/Requests\/sec/ { rps = $2 } / 99%/ { p99 = $2 } END { print rps, p99 }' "$WORK/$1.txt"
}
read -r _ alone_p99 < <(run_wrk alone 1 "$STATUS_URL")
run_wrk images 8 "$URL" >"$WORK/images.result" &
images=$!
read -r _ loaded_p99 < <(run_wrk loaded 1 "$STATUS_URL")
wait "$images"
read -r images_rps images_p99 <"$WORK/images.result"

to_ms() { awk -v t="$1" 'BEGIN { if (t ~ /us$/) v = t / 1000; else if (t ~ /ms$/) v = t + 0; else v = t * 1000; print v }'; }
echo "ps with each catalog stat, readlink and open held ${DELAY_US} us, $DURATION s a run:"
printf '  cached images, concurrency 8:          %10s req/s   p99 %s\n' "$images_rps" "$images_p99"
printf '  status document alone (baseline):      p99 %s\n' "$alone_p99"
printf '  status document beside the images:     p99 %s\n' "$loaded_p99"
awk -v a="$(to_ms "$loaded_p99")" -v b="$(to_ms "$alone_p99")" \
    'BEGIN { printf "  ratio %.2fx (a lookup that held an I/O thread would hold this request too)\n", a / b }'
