#!/usr/bin/env bash
# Throughput, latency and CPU cost of the Image Serving stack against thumbor, on loopback.
#
# Workload: a 2000x1333 noisy JPEG (quality 90) resized to 500 px wide, JPEG quality 80,
# through the Platform Server:
#   1. uncached: a Platform Server with IMAGESERVING_PS_CACHE_BYTES=0, so every request is
#      decoded, resized and encoded by the Image Server; with keep-alive clients (as a CDN or
#      proxy in front of it would connect) and with `Connection: close` ones;
#   2. cached: the same request answered from a second Platform Server's cache;
#   3. thumbor (PyPI, PIL engine, no storage or result storage) on the same image, at its
#      best on this machine: 2 processes with `Connection: close` (so connections spread over
#      both processes) and 1 process with keep-alive.
# Concurrency 1, 4 and 16, DURATION seconds each (default 10), wrk as load generator. All
# servers run at once and the series take turns at each concurrency, so that other load on
# the machine weighs on all of them alike.
# Prints req/s, p50 and p99 per run with the servers' CPU time per request (which other
# load distorts far less than throughput and latency), our uncached req/s and CPU time
# against thumbor's best, both response sizes, and each daemon's resident memory when idle
# (just started, and after the load; the Image Server's also after the corpus below).
#
# Then the real corpus: the JPEG photographs of Debian's mate-backgrounds (the nature
# wallpapers, Elephants_3840x2160.jpg and Elephants_5640x3172.jpg), each as delivered and
# re-encoded progressive without loss (jpegtran -progressive -copy all), resized to 500 px
# wide at quality 80, uncached, at concurrency 4: ours (Connection: close) against thumbor
# with 2 processes, CORPUS_DURATION seconds each (default 5), with the Image Server's CPU
# time per request and its peak resident memory while serving that photo. Beside thumbor's CPU
# time per request, its decode alone (pillow-decode.py: Pillow's libjpeg-turbo at the scale
# thumbor drafts) and the ratio of the two: the most any server that decodes the photo with
# libjpeg could gain on thumbor. Then the quality of both responses: their PSNR against
# ImageMagick's Lanczos resize of the fully decoded source, turned upright and converted to
# sRGB, at the response's size.
#
# Usage: components/bench/run.sh [DURATION]
# PHOTOS (default *) picks corpus photos by a file name pattern, e.g. 'Elephants_5640*'.
# BENCH_NOISE (default 0.02, a photo-like source of 156 KiB) is the share of noise blended
# into the generated photo: the more noise, the more of every request goes to JPEG entropy
# decoding, which no decoder skips, and the closer any two servers using libjpeg-turbo's
# code come. At 0.02 thumbor with 2 processes serves about 145 req/s here, the closest to
# the 160-170 req/s it was measured at on the photo the throughput target was set with;
# 0.05 gives 330 KiB, 0.35 gives 1.2 MiB.
# Needs: wrk (apt-get install wrk), jpegtran (libjpeg-turbo-progs), ImageMagick (imagemagick),
# sRGB.icc (icc-profiles-free), python3 with venv;
# installs thumbor into a venv under the scratch folder (BENCH_DIR, default target/bench)
# on first use, and fetches mate-backgrounds there with apt-get download.
set -euo pipefail

DURATION=${1:-10}
CORPUS_DURATION=${CORPUS_DURATION:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$WORK/venv
BIN=$TARGET/release
PS_PORT=28080 CACHED_PORT=28081 ES_PORT=28345 SVG_PORT=28346
THUMBOR2_PORT=28888 THUMBOR1_PORT=28889
URL_PATH="/is/image/bench/photo?wid=500&qlt=80"
THUMBOR_PATH="/unsafe/500x0/filters:quality(80)/photo.jpg"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v jpegtran >/dev/null ||
    { echo "jpegtran is missing: apt-get install libjpeg-turbo-progs" >&2; exit 1; }
command -v compare >/dev/null || { echo "ImageMagick is missing: apt-get install imagemagick" >&2; exit 1; }
SRGB=/usr/share/color/icc/sRGB.icc
[ -f "$SRGB" ] || { echo "$SRGB is missing: apt-get install icc-profiles-free" >&2; exit 1; }
mkdir -p "$WORK/catalog/bench"
if [ ! -x "$VENV/bin/thumbor" ]; then
    echo "installing thumbor into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q thumbor
fi

echo "building release binaries"
(cd "$ROOT" && cargo build -q --release -p imageserving-components)

NOISE=${BENCH_NOISE:-0.02}
PHOTO=$WORK/catalog/bench/photo.jpg
if [ "$(cat "$WORK/photo.noise" 2>/dev/null)" != "$NOISE" ]; then
    "$VENV/bin/python" - "$PHOTO" "$NOISE" <<'EOF'
import sys
from PIL import Image
w, h = 2000, 1333
gradient = Image.linear_gradient("L").resize((w, h))
base = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient.rotate(90).resize((w, h))))
noise = Image.effect_noise((w, h), 48).convert("RGB")
Image.blend(base, noise, float(sys.argv[2])).save(sys.argv[1], quality=90)
EOF
    echo "$NOISE" > "$WORK/photo.noise"
fi
echo "source: $(stat -c %s "$PHOTO") bytes, 2000x1333, quality 90, noise $NOISE"

CORPUS=$WORK/catalog/bench/corpus
if [ ! -f "$CORPUS/complete" ]; then
    echo "fetching mate-backgrounds into $WORK/deb"
    rm -rf "$WORK/deb" "$CORPUS"
    mkdir -p "$WORK/deb" "$CORPUS"
    (cd "$WORK/deb" && apt-get download -q mate-backgrounds)
    dpkg-deb -x "$WORK"/deb/mate-backgrounds_*.deb "$WORK/deb/root"
    backgrounds=$WORK/deb/root/usr/share/backgrounds/mate
    for source in "$backgrounds"/nature/*.jpg "$backgrounds"/abstract/Elephants_{3840x2160,5640x3172}.jpg; do
        name=$(basename "$source" .jpg)
        cp "$source" "$CORPUS/$name.jpg"
        jpegtran -progressive -copy all -outfile "$CORPUS/$name-progressive.jpg" "$source"
    done
    touch "$CORPUS/complete"
fi


# shellcheck source=components/bench/servers.sh
source "$ROOT/components/bench/servers.sh"

export IMAGESERVING_CATALOG_ROOT=$WORK/catalog
export IMAGESERVING_ES_LISTEN=127.0.0.1:$ES_PORT
export IMAGESERVING_SVG_LISTEN=127.0.0.1:$SVG_PORT
export IMAGESERVING_PS_ACCESS_LOG=false
CONFIG=$WORK/empty.toml
: > "$CONFIG"


# The quality reference for PHOTO at SIZE (WxH): ImageMagick's Lanczos resize of the whole
# decoded source, upright and in sRGB; made once, kept in the scratch folder.
reference() { # photo size
    local out=$WORK/reference/$(basename "$1" .jpg)-$2.png
    if [ ! -f "$out" ]; then
        mkdir -p "$WORK/reference"
        local srgb=()
        [[ $(identify -format '%[profiles]' "$1" 2>/dev/null) == *icc* ]] && srgb=(-profile "$SRGB")
        convert "$1" -auto-orient "${srgb[@]}" -filter Lanczos -resize "$2!" "$out"
    fi
    echo "$out"
}

# PSNR (dB) of the JPEG at URL against PHOTO's reference at the same size.
psnr() { # url photo
    local out=$WORK/response.jpg
    curl -sf -o "$out" "$1"
    compare -metric PSNR "$out" "$(reference "$2" "$(identify -format %wx%h "$out")")" null: 2>&1 |
        awk '{ print $1 }'
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# CPU time (user + system, clock ticks) used so far by the process groups given.
cpu_ticks() {
    local total=0 pid
    for pid in $(ps -eo pid=,pgid= | awk -v groups=" $* " 'index(groups, " " $2 " ") { print $1 }'); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}


launch es env "$BIN/imageserving-es" --config "$CONFIG"
launch svg env "$BIN/imageserving-svg" --config "$CONFIG"
launch ps env IMAGESERVING_PS_LISTEN=127.0.0.1:$PS_PORT IMAGESERVING_PS_CACHE_BYTES=0 \
    "$BIN/imageserving-ps" --config "$CONFIG"
# A second Platform Server needs its own metrics address; its metrics are not measured.
launch cached env IMAGESERVING_PS_LISTEN=127.0.0.1:$CACHED_PORT IMAGESERVING_PS_METRICS_LISTEN= \
    "$BIN/imageserving-ps" --config "$CONFIG"
cat > "$WORK/thumbor.conf" <<EOF
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '$WORK/catalog/bench'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
QUALITY = 80
ALLOW_UNSAFE_URL = True
EOF
for processes in 2 1; do
    port_var=THUMBOR${processes}_PORT
    launch "thumbor$processes" "$VENV/bin/thumbor" -i 127.0.0.1 -p "${!port_var}" \
        -c "$WORK/thumbor.conf" -l error --processes "$processes"
done
OURS=http://127.0.0.1:$PS_PORT$URL_PATH
CACHED=http://127.0.0.1:$CACHED_PORT$URL_PATH
THUMBOR2=http://127.0.0.1:$THUMBOR2_PORT$THUMBOR_PATH
THUMBOR1=http://127.0.0.1:$THUMBOR1_PORT$THUMBOR_PATH
wait_ok "http://127.0.0.1:$PS_PORT/is/image"
wait_ok "$THUMBOR2"
wait_ok "$THUMBOR1"
sleep 1
IDLE="ps $(rss_kib "$ps") KiB, es $(rss_kib "$es") KiB, svg $(rss_kib "$svg") KiB"
size() { curl -s -o /dev/null -w '%{size_download}' "$1"; }
echo "response: ours $(size "$OURS") bytes (baseline JPEG), thumbor $(size "$THUMBOR2") bytes (progressive JPEG)"
echo "thumbor $("$VENV/bin/thumbor" --version | awk '{print $2}'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# One wrk run: prints "req/s p50 p99 cpu" (milliseconds; cpu = server CPU time per
# request, which other load on the machine does not inflate the way it does latency).
load() { # concurrency url header groups...
    local c=$1 url=$2 header=$3 threads=1
    shift 3
    [ "$c" -ge 2 ] && threads=2
    local args=(-t "$threads" -c "$c" -d "${DURATION}s" --latency --timeout 10s)
    [ -n "$header" ] && args+=(-H "$header")
    local before after
    before=$(cpu_ticks "$@")
    wrk "${args[@]}" "$url" >"$WORK/wrk.out"
    after=$(cpu_ticks "$@")
    awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        / requests in / { n = $1 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { if (bad) { print "non-2xx responses: " bad > "/dev/stderr"; exit 1 }
              printf "%.1f %.1f %.1f %.2f\n", rps, p50, p99, ticks * 1000 / hz / n }' "$WORK/wrk.out"
}

declare -A RESULT
measure() { # label concurrency url header groups...
    local label=$1 c=$2
    shift 2
    RESULT[$label,$c]=$(load "$c" "$@")
    printf "%-28s c=%-3s %8s req/s  p50 %6s ms  p99 %6s ms  cpu %5s ms/req\n" "$label" "$c" ${RESULT[$label,$c]}
}

for c in 1 4 16; do
    measure "ours, uncached" "$c" "$OURS" "" "$ps" "$es"
    measure "ours, uncached, close" "$c" "$OURS" "Connection: close" "$ps" "$es"
    measure "thumbor, 2 procs, close" "$c" "$THUMBOR2" "Connection: close" "$thumbor2"
    measure "thumbor, 1 proc, keep-alive" "$c" "$THUMBOR1" "" "$thumbor1"
    measure "ours, cached" "$c" "$CACHED" "" "$cached"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 2
AFTER="ps $(rss_kib "$ps") KiB, es $(rss_kib "$es") KiB, svg $(rss_kib "$svg") KiB"

echo "== the real corpus, wid=500&qlt=80, uncached, c=4: ours (close) against thumbor (2 procs, close)"
echo "   req/s and their ratio; CPU time per request (ours: the Image Server) and its ratio; es peak RSS;"
echo "   thumbor's decode alone and its CPU per request over it (the most a libjpeg-decoding server gains);"
echo "   PSNR against ImageMagick's Lanczos resize of the whole source (ours, thumbor's, ours - thumbor's)"
printf "%-36s %-10s %-12s %8s %8s %6s %9s %9s %6s %8s %9s %6s %6s %6s %6s\n" \
    photo size kind ours thumbor ratio "ours cpu" "thb cpu" ratio "es peak" "thb dec" bound \
    "ours" "thb" "diff"
DURATION=$CORPUS_DURATION
for photo in "$CORPUS"/${PHOTOS:-*}.jpg; do
    name=$(basename "$photo" .jpg)
    info=$(file -b "$photo")
    kind=baseline
    [[ $info == *progressive* ]] && kind=progressive
    size=$(grep -oE '[0-9]+x[0-9]+,' <<<"$info" | tail -1 | tr -d ,)
    # The peak resident memory while serving this photo only: clear_refs resets VmHWM.
    echo 5 > "/proc/$es/clear_refs"
    ours_url="http://127.0.0.1:$PS_PORT/is/image/bench/corpus/$name?wid=500&qlt=80"
    their_url="http://127.0.0.1:$THUMBOR2_PORT/unsafe/500x0/filters:quality(80)/corpus/$name.jpg"
    read -r ours _ _ ours_cpu <<<"$(load 4 "$ours_url" "Connection: close" "$es")"
    peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$es/status")
    read -r theirs _ _ their_cpu <<<"$(load 4 "$their_url" "Connection: close" "$thumbor2")"
    decode=$("$VENV/bin/python" "$ROOT/components/bench/pillow-decode.py" "$photo" 500)
    awk -v n="$name" -v s="$size" -v k="$kind" -v o="$ours" -v t="$theirs" -v oc="$ours_cpu" \
        -v tc="$their_cpu" -v p="$peak" -v d="$decode" -v od="$(psnr "$ours_url" "$photo")" \
        -v td="$(psnr "$their_url" "$photo")" 'BEGIN {
        printf "%-36s %-10s %-12s %8.1f %8.1f %5.2fx %6.1f ms %6.1f ms %5.2fx %4s MiB %6.1f ms %5.2fx %6.2f %6.2f %+6.2f\n",
            n, s, k, o, t, o / t, oc, tc, tc / oc, p, d, tc / d, od, td, od - td }'
done
sleep 2
CORPUS_AFTER="es $(rss_kib "$es") KiB"
cleanup

# Prints, for each concurrency, the series LABEL against thumbor's best: req/s and p99, and
# CPU time per request.
versus() { # label
    echo "== $1 against thumbor's best: req/s and p99, CPU time per request"
    local c ours ours_p99 ours_cpu a a_p99 a_cpu b b_p99 b_cpu
    for c in 1 4 16; do
        read -r ours _ ours_p99 ours_cpu <<<"${RESULT[$1,$c]}"
        read -r a _ a_p99 a_cpu <<<"${RESULT[thumbor, 2 procs, close,$c]}"
        read -r b _ b_p99 b_cpu <<<"${RESULT[thumbor, 1 proc, keep-alive,$c]}"
        awk -v c="$c" -v o="$ours" -v op="$ours_p99" -v oc="$ours_cpu" \
            -v a="$a" -v ap="$a_p99" -v ac="$a_cpu" -v b="$b" -v bp="$b_p99" -v bc="$b_cpu" 'BEGIN {
            t = a; tp = ap; if (b > a) { t = b; tp = bp }
            tc = (ac < bc) ? ac : bc
            printf "c=%-3s %.2fx req/s (ours %.1f, p99 %.1f ms; thumbor %.1f, p99 %.1f ms)   %.2fx less CPU (ours %.2f ms, thumbor %.2f ms)\n", c, o / t, o, op, t, tp, tc / oc, oc, tc }'
    done
}
versus "ours, uncached"
versus "ours, uncached, close"
echo "== idle resident memory"
echo "after start: $IDLE"
echo "after load:  $AFTER"
echo "after the corpus: $CORPUS_AFTER"
