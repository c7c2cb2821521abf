#!/usr/bin/env bash
# What metrics cost: uncached throughput of a stack with metrics on (the default) against
# the same stack with metrics off (metrics_listen = "" for ps, es and svg), in one run.
#
# Both stacks run at once, each with its cache off (so every request goes through ps and is
# rendered by es), serving the sample catalog's 384x256 landscape at wid=200: a small image,
# so that the fixed cost per request, metrics included, weighs as much as it ever does. The
# two take turns, ROUNDS times DURATION seconds each at concurrency 4 with keep-alive
# clients, so that other load on the machine weighs on both alike; the stack with metrics is
# scraped once per round, as Prometheus would. Prints req/s and the CPU time per request
# (ps + es) of every run, then the medians and their ratios, on / off: the cost of metrics
# is 1 - the req/s ratio, and the CPU ratio - 1.
#
# Usage: components/bench/metrics-cost.sh [DURATION]   (default 10 s per run)
# ROUNDS (default 5); BIN=DIR takes the daemons (and xtask) from DIR instead of building
# release binaries.
# Needs: wrk and curl (apt-get install wrk curl).
set -euo pipefail

DURATION=${1:-10}
ROUNDS=${ROUNDS:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}/metrics-cost
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release}
URL_PATH="/is/image/sample/landscape?wid=200"

# shellcheck source=components/bench/servers.sh
source "$ROOT/components/bench/servers.sh"
prepare_sample_catalog wrk curl
export IMAGESERVING_PS_CACHE_BYTES=0

# Starts a stack: stack NAME PS_PORT ES_PORT SVG_PORT METRICS_PORT (0: metrics off). The
# daemons' pids go into NAME_ps, NAME_es and NAME_svg.
stack() {
    local name=$1 ps_port=$2 es_port=$3 svg_port=$4 metrics_port=$5 daemon
    local -a ports=(
        IMAGESERVING_PS_LISTEN=127.0.0.1:$ps_port
        IMAGESERVING_ES_LISTEN=127.0.0.1:$es_port
        IMAGESERVING_SVG_LISTEN=127.0.0.1:$svg_port
    )
    for daemon in es svg ps; do
        local metrics=""
        if [ "$metrics_port" != 0 ]; then
            case $daemon in
                ps) metrics=127.0.0.1:$metrics_port ;;
                es) metrics=127.0.0.1:$((metrics_port + 1)) ;;
                svg) metrics=127.0.0.1:$((metrics_port + 2)) ;;
            esac
        fi
        local upper=${daemon^^}
        launch "${name}_$daemon" env "${ports[@]}" "IMAGESERVING_${upper}_METRICS_LISTEN=$metrics" \
            "$BIN/imageserving-$daemon" --config "$WORK/empty.toml"
    done
    wait_ok "http://127.0.0.1:$ps_port$URL_PATH"
}
stack on 30080 30345 30346 30347
stack off 31080 31345 31346 0
ON_URL=http://127.0.0.1:30080$URL_PATH
OFF_URL=http://127.0.0.1:31080$URL_PATH
wait_ok http://127.0.0.1:30347/metrics
if grep -q "metrics at" "$WORK"/off_*.log; then
    echo "the stack without metrics serves them: $(grep -h "metrics at" "$WORK"/off_*.log)" >&2
    exit 1
fi

# CPU time (user + system, clock ticks) used so far by the processes given.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

# One wrk run: URL PIDS...; prints "req/s cpu" (cpu: ms of server CPU per request).
run() {
    local url=$1 before after
    shift
    before=$(cpu_ticks "$@")
    wrk -t2 -c4 -d"${DURATION}s" "$url" >"$WORK/wrk.out"
    after=$(cpu_ticks "$@")
    awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
        /Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 }
        /Non-2xx/ { bad = $NF }
        END { if (bad) { print "non-2xx responses: " bad > "/dev/stderr"; exit 1 }
              printf "%.1f %.3f\n", rps, ticks * 1000 / hz / n }' "$WORK/wrk.out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "uncached $URL_PATH, concurrency 4, $ROUNDS rounds of ${DURATION} s per stack"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$WORK/on" && : > "$WORK/off"
for round in $(seq "$ROUNDS"); do
    # Alternate which goes first, so that neither always follows the other's load.
    order=(on off)
    [ $((round % 2)) = 0 ] && order=(off on)
    for which in "${order[@]}"; do
        if [ "$which" = on ]; then
            result=$(run "$ON_URL" "$on_ps" "$on_es")
            curl -s -o /dev/null http://127.0.0.1:30347/metrics
        else
            result=$(run "$OFF_URL" "$off_ps" "$off_es")
        fi
        echo "$result" >>"$WORK/$which"
        printf "round %d  metrics %-3s %8s req/s  %6s ms CPU/req\n" "$round" "$which" $result
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
served=$(curl -s http://127.0.0.1:30347/metrics |
    awk '/^imageserving_http_requests_total\{route="image",status="200"\}/ { print $2 }')
echo "requests the stack with metrics counted: $served"

on_rps=$(cut -d' ' -f1 "$WORK/on" | median) off_rps=$(cut -d' ' -f1 "$WORK/off" | median)
on_cpu=$(cut -d' ' -f2 "$WORK/on" | median) off_cpu=$(cut -d' ' -f2 "$WORK/off" | median)
awk -v a="$on_rps" -v b="$off_rps" -v c="$on_cpu" -v d="$off_cpu" 'BEGIN {
    printf "median req/s: on %.1f, off %.1f: ratio on/off %.3f (cost %+.1f%%)\n", a, b, a / b, (1 - a / b) * 100
    printf "median CPU per request (ps + es): on %.3f ms, off %.3f ms: ratio on/off %.3f (cost %+.1f%%)\n", c, d, c / d, (c / d - 1) * 100
}'
