#!/usr/bin/env bash
# Coffer's benchmark matrix, measured with coffer-bench (crates/coffer-bench) against a Coffer started here on a
# temp data dir, and optionally against other S3 endpoints ("peers"), side by side in one run.
#
#   bench/run.sh           the full matrix (release build): 4 KiB, 1 MiB and 64 MiB objects; PUT and GET; plain and
#                          SSE-C; HTTPS; concurrency 1 and 16 (and 4 for 64 MiB). Also runs ../shared/limit for the
#                          loopback ceiling when it is there. Writes docs/benchmarks.md (and docs/benchmarks.png when
#                          matplotlib can be had). Takes about 6-8 minutes for Coffer alone on 2 cores.
#   bench/run.sh --smoke   a tiny matrix (debug build, a few objects, 1 s per cell) plus every op once, with and
#                          without SSE-C: checks that every op succeeds and every report has the expected shape.
#                          Writes no doc. tests/e2e/test_bench_smoke.py runs it in CI.
#   bench/run.sh --scale   scale with data (release build): for each count in BENCH_SCALE_COUNTS, a fresh data dir
#                          filled by `coffer dev populate` (straight into the metadata store: through the API, 1M
#                          fsynced PUTs take half an hour) with that many zero-byte objects, plus as many in 1000
#                          "folders" in a second bucket, and a Coffer on it. Then, in rounds (BENCH_SCALE_ROUNDS),
#                          every cell against each count in turn, over HTTPS: ListObjectsV2 pages of 1000 keys (from
#                          the start, from the middle with start-after, under a prefix, 1000 folders with a
#                          delimiter), 4 KiB PUT and GET (plain and SSE-C, c1 and c16), each with the server's peak
#                          RSS. Writes docs/benchmarks-scale.md: median p50/p99 per op side by side, the ratio
#                          (issue 6: within 1.5x), populate time, memory. About 4 minutes per round on 2 cores.
#   bench/run.sh --scale --smoke   the same with 1000 and 5000 objects, concurrency 2, 1 s cells, debug build, no
#                          doc (tests/e2e/test_bench_smoke.py runs it with 0.3 s cells).
#
# Every cell records the server's peak RSS (VmHWM, reset through /proc/<pid>/clear_refs before the cell) against
# issue 6's bound of 64 MiB + 8 MiB per concurrent request.
#
# Settings (environment):
#   BENCH_DURATION=8 BENCH_WARMUP=2      seconds per cell (smoke: 1 and 0)
#   BENCH_SIZES="4KiB 1MiB 64MiB"        BENCH_CONC="1 16"     BENCH_CONC_64M="4" (extra concurrency for 64 MiB)
#   BENCH_OBJECTS=N                      objects per cell (default: 512 MiB / size, within 16..2000; smoke: 4)
#   BENCH_OUT=DIR                        per-cell JSON reports (default: target/bench/<UTC date>)
#   BENCH_DOC=FILE                       the Markdown report (default docs/benchmarks.md; "" for none; smoke: none)
#   BENCH_SKIP_BUILD=1                   use the binaries as they are
#   COFFER_BIN, COFFER_BENCH_BIN         the binaries (default: target/release/..., smoke: target/debug/...)
#   BENCH_LIMIT=0|1                      run ../shared/limit first (LIMIT_DIR; default 1 when it exists, smoke 0)
#   LIMIT_BIN=PATH                       a limit binary already built (else built from LIMIT_DIR into LIMIT_TARGET)
#   LIMIT_ARGS                           default: all --reps 1 --bytes 536870912 --streams 1,4 --cases tls-default+ssec
#   BENCH_CHART=0|1                      draw the PNG chart (default 1; needs matplotlib: tried in target/bench-venv)
#   BENCH_SCALE_COUNTS="1000 1000000"    --scale: object counts (each at least 1000; smoke: "1000 5000")
#   BENCH_SCALE_CONC="1 16"              --scale: concurrencies of every cell (smoke: "2")
#   BENCH_SCALE_ROUNDS=3                 --scale: rounds of every cell against every count (smoke: 1); the report
#                                        gives the median of the rounds. --scale cells: BENCH_DURATION=5 BENCH_WARMUP=1
#   BENCH_SCALE_DOC=FILE                 --scale: the report (default docs/benchmarks-scale.md; "" for none; smoke: none)
#   COFFER_HTTP=0|1                      also run Coffer over plain HTTP with its test-only --ssec-allow-plain-http
#                                        (default: 1 when a peer speaks plain HTTP, as Garage does)
# Peers, to run the same matrix against other servers:
#   PEERS="rgw garage" and, for each NAME (in upper case): PEER_<NAME>_ENDPOINT, PEER_<NAME>_ACCESS_KEY,
#   PEER_<NAME>_SECRET_KEY; optional PEER_<NAME>_REGION (us-east-1), PEER_<NAME>_CA_BUNDLE, PEER_<NAME>_INSECURE=1,
#   PEER_<NAME>_BUCKET (an existing bucket, e.g. for Garage, whose keys may not create buckets; default: one is
#   created), PEER_<NAME>_PID (the server's process id, for its CPU time).
#   One peer can also be given as PEER_ENDPOINT, PEER_ACCESS_KEY, PEER_SECRET_KEY, PEER_REGION, ... (name:
#   PEER_NAME, default "peer"). ../shared/peers/ has scripts that start Ceph RGW (https://127.0.0.1:7443) and Garage
#   (http://127.0.0.1:3900, region "garage").
#
# Exit status: 0 when every cell ran with no failed op, 1 otherwise (the report is still written).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
ORIG_ARGS=("$@")

SMOKE=${BENCH_SMOKE:-0}
SCALE=0
for arg in "$@"; do
    case $arg in
        --smoke) SMOKE=1 ;;
        --scale) SCALE=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] FAILED: $*" >&2; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
if [ "$SMOKE" = 1 ]; then
    PROFILE=debug
    DURATION=${BENCH_DURATION:-1}
    WARMUP=${BENCH_WARMUP:-0}
    SIZES=${BENCH_SIZES:-4KiB 1MiB}
    CONCS=${BENCH_CONC:-2}
    CONC_64M=${BENCH_CONC_64M:-}
    OBJECTS=${BENCH_OBJECTS:-4}
    DOC=${BENCH_DOC:-}
    RUN_LIMIT=${BENCH_LIMIT:-0}
    CHART=${BENCH_CHART:-0}
else
    PROFILE=release
    DURATION=${BENCH_DURATION:-8}
    WARMUP=${BENCH_WARMUP:-2}
    SIZES=${BENCH_SIZES:-4KiB 1MiB 64MiB}
    CONCS=${BENCH_CONC:-1 16}
    CONC_64M=${BENCH_CONC_64M-4}
    OBJECTS=${BENCH_OBJECTS:-}
    DOC=${BENCH_DOC-docs/benchmarks.md}
    RUN_LIMIT=${BENCH_LIMIT:-1}
    CHART=${BENCH_CHART:-1}
fi
if [ "$SCALE" = 1 ]; then
    if [ "$SMOKE" = 1 ]; then
        SCALE_COUNTS=${BENCH_SCALE_COUNTS:-1000 5000}
        SCALE_CONCS=${BENCH_SCALE_CONC:-2}
        SCALE_ROUNDS=${BENCH_SCALE_ROUNDS:-1}
        DOC=${BENCH_SCALE_DOC:-}
    else
        SCALE_COUNTS=${BENCH_SCALE_COUNTS:-1000 1000000}
        SCALE_CONCS=${BENCH_SCALE_CONC:-1 16}
        SCALE_ROUNDS=${BENCH_SCALE_ROUNDS:-3}
        DURATION=${BENCH_DURATION:-5}
        WARMUP=${BENCH_WARMUP:-1}
        DOC=${BENCH_SCALE_DOC-docs/benchmarks-scale.md}
    fi
    for n in $SCALE_COUNTS; do
        [[ $n =~ ^[0-9]+$ ]] && ((n >= 1000)) && ((n % 1000 == 0)) \
            || die "BENCH_SCALE_COUNTS: $n is not a multiple of 1000 (1000 at least)"
    done
    [[ $SCALE_ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SCALE_ROUNDS must be a positive number"
    RUN_LIMIT=0
    CHART=0
fi
COFFER=${COFFER_BIN:-$TARGET_DIR/$PROFILE/coffer}
BENCH=${COFFER_BENCH_BIN:-$TARGET_DIR/$PROFILE/coffer-bench}
OUT=${BENCH_OUT:-$TARGET_DIR/bench/$(date -u +%Y%m%dT%H%M%SZ)}
LIMIT_DIR=${LIMIT_DIR:-$REPO/../shared/limit}
LIMIT_ARGS=${LIMIT_ARGS:-all --reps 1 --bytes 536870912 --streams 1,4 --cases tls-default+ssec}
PYTHON=${PYTHON:-python3}

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (the report is written by a Python script)"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/cells.tsv"

# ---------------------------------------------------------------------------------------------------------------
# peers
declare -a TARGETS=() T_ENDPOINT=() T_AK=() T_SK=() T_REGION=() T_CA=() T_INSECURE=() T_BUCKET=() T_PID=() T_OWN=()
add_target() { # name endpoint access secret region ca insecure bucket pid [own: 1 for the Coffer started here]
    TARGETS+=("$1"); T_ENDPOINT+=("$2"); T_AK+=("$3"); T_SK+=("$4"); T_REGION+=("${5:-us-east-1}")
    T_CA+=("${6:-}"); T_INSECURE+=("${7:-0}"); T_BUCKET+=("${8:-}"); T_PID+=("${9:-}"); T_OWN+=("${10:-0}")
}
declare -a PEER_ARGS=()
if [ -n "${PEER_ENDPOINT:-}" ]; then
    PEER_ARGS+=("${PEER_NAME:-peer}|$PEER_ENDPOINT|${PEER_ACCESS_KEY:-}|${PEER_SECRET_KEY:-}|${PEER_REGION:-}|${PEER_CA_BUNDLE:-}|${PEER_INSECURE:-0}|${PEER_BUCKET:-}|${PEER_PID:-}")
fi
for name in ${PEERS:-}; do
    up=$(echo "$name" | tr '[:lower:]-' '[:upper:]_')
    v() { local var="PEER_${up}_$1"; echo "${!var:-}"; }
    [ -n "$(v ENDPOINT)" ] || die "PEERS names $name but PEER_${up}_ENDPOINT is not set"
    PEER_ARGS+=("$name|$(v ENDPOINT)|$(v ACCESS_KEY)|$(v SECRET_KEY)|$(v REGION)|$(v CA_BUNDLE)|$(v INSECURE)|$(v BUCKET)|$(v PID)")
done
if [ "$SCALE" = 1 ] && [ "${#PEER_ARGS[@]}" -gt 0 ]; then
    log "--scale measures Coffer only: the peers are left out"
    PEER_ARGS=()
fi
PEER_HTTP=0
for p in "${PEER_ARGS[@]+"${PEER_ARGS[@]}"}"; do
    case $p in *"|http://"*) PEER_HTTP=1 ;; esac
done
COFFER_HTTP=${COFFER_HTTP:-$PEER_HTTP}

# ---------------------------------------------------------------------------------------------------------------
# build
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    if [ "$PROFILE" = release ]; then
        log "cargo build --release -p coffer -p coffer-bench"
        cargo build --release -p coffer -p coffer-bench >&2 || die "cargo build"
    else
        log "cargo build -p coffer -p coffer-bench"
        cargo build -p coffer -p coffer-bench >&2 || die "cargo build"
    fi
fi
[ -x "$COFFER" ] || die "no coffer binary at $COFFER"
[ -x "$BENCH" ] || die "no coffer-bench binary at $BENCH"

# ---------------------------------------------------------------------------------------------------------------
# machine and versions
cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
git_rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -1)" ]; then git_rev="$git_rev (with uncommitted changes)"; fi
env_settings=
for var in $(env | grep -oE '^(BENCH_[A-Z0-9_]*|PEERS|PEER_[A-Z0-9_]*(ENDPOINT|REGION|BUCKET|INSECURE)|COFFER_HTTP|LIMIT_ARGS|LIMIT_BIN)=' | tr -d '=' | sort); do
    val=${!var}
    case $val in *[[:space:]]*) env_settings+="$var='$val' " ;; *) env_settings+="$var=$val " ;; esac
done
"$PYTHON" - "$OUT/meta.json" <<EOF
import json, sys
json.dump({
    "date_utc": "$(date -u '+%Y-%m-%d %H:%M UTC')",
    "command": "${env_settings}bench/run.sh ${ORIG_ARGS[*]+${ORIG_ARGS[*]}}".replace("  ", " ").strip(),
    "smoke": $SMOKE == 1,
    "scale": $SCALE == 1,
    "nproc": "$(nproc 2>/dev/null || echo '?')",
    "cpu_model": """$cpu_model""",
    "kernel": "$(uname -sr)",
    "memory": "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || echo '?')",
    "rustc": "$(rustc --version 2>/dev/null || echo '?')",
    "coffer": "$("$COFFER" --version 2>/dev/null | head -1 || echo '?')",
    "coffer_bench": "$("$BENCH" --version 2>/dev/null | head -1 || echo '?')",
    "git": "$git_rev",
    "profile": "$PROFILE",
    "duration_s": $DURATION, "warmup_s": $WARMUP,
    "load_start": "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')",
}, open(sys.argv[1], "w"), indent=1)
EOF

# ---------------------------------------------------------------------------------------------------------------
# the loopback ceiling (../shared/limit), before any server of ours runs
limit_bin=${LIMIT_BIN:-}
if [ "$RUN_LIMIT" = 1 ] && [ -z "$limit_bin" ] && [ -f "$LIMIT_DIR/Cargo.toml" ]; then
    limit_src=$TARGET_DIR/limit-src
    limit_target=${LIMIT_TARGET:-$TARGET_DIR/limit-target}
    # A copy: shared/ may be read-only, and cargo writes Cargo.lock next to Cargo.toml.
    rm -rf "$limit_src" && mkdir -p "$limit_src" && cp -r "$LIMIT_DIR/Cargo.toml" "$LIMIT_DIR/src" "$limit_src/"
    log "building ../shared/limit into $limit_target"
    if (cd "$limit_src" && CARGO_TARGET_DIR=$limit_target cargo build --release >&2); then
        limit_bin=$limit_target/release/limit
    else
        log "limit did not build; the report goes on without the ceiling"
    fi
fi
if [ "$RUN_LIMIT" = 1 ] && [ -n "$limit_bin" ]; then
    log "limit $LIMIT_ARGS"
    # shellcheck disable=SC2086
    if "$limit_bin" $LIMIT_ARGS >"$OUT/limit.txt"; then
        tail -n 1 "$OUT/limit.txt" >"$OUT/limit.json"
    else
        log "limit failed (see $OUT/limit.txt); the report goes on without the ceiling"
    fi
fi

# ---------------------------------------------------------------------------------------------------------------
# Coffer on a temp data dir
TMP=$(mktemp -d "${TMPDIR:-/tmp}/coffer-bench.XXXXXX")
COFFER_PID=
SERVER_PIDS=()
cleanup() {
    local pid
    for pid in "$COFFER_PID" "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
ROOT_AK="BENCH$(rand_hex 6 | tr 'a-f' 'A-F')"
ROOT_SK=$(rand_hex 20)
now() { date +%s.%N; }

# The server's peak RSS (VmHWM) in KiB; rss_reset sets it back to the current RSS (Linux >= 4.0).
rss_reset() { echo 5 2>/dev/null >"/proc/$1/clear_refs"; }
rss_peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# start_coffer DATA_DIR LOG: sets COFFER_PID, COFFER_HTTPS, COFFER_HTTP_URL, COFFER_CA, COFFER_READY_S (seconds
# from spawn to ready) and COFFER_START_PEAK_KIB (the peak RSS of the start, e.g. the start-up GC pass).
start_coffer() {
    local dir=$1 logf=$2
    local server_args=(server --data-dir "$dir" --https-listen 127.0.0.1:0 --http-listen 127.0.0.1:0
        --ready-file "$dir/ready.json" --log warn)
    [ "$COFFER_HTTP" = 1 ] && server_args+=(--ssec-allow-plain-http)
    rm -f "$dir/ready.json"
    log "starting $COFFER ${server_args[*]}"
    local t0
    t0=$(now)
    env -u COFFER_CONFIG COFFER_ROOT_ACCESS_KEY="$ROOT_AK" COFFER_ROOT_SECRET_KEY="$ROOT_SK" \
        "$COFFER" "${server_args[@]}" >"$logf" 2>&1 &
    COFFER_PID=$!
    for _ in $(seq 3000); do
        [ -s "$dir/ready.json" ] && break
        kill -0 "$COFFER_PID" 2>/dev/null || die "coffer exited before it was ready: $(tail -5 "$logf")"
        sleep 0.02
    done
    [ -s "$dir/ready.json" ] || die "coffer did not write $dir/ready.json in 60 s"
    COFFER_READY_S=$("$PYTHON" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$t0" "$(now)")
    COFFER_START_PEAK_KIB=$(rss_peak_kib "$COFFER_PID")
    ready() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]] or "")' "$dir/ready.json" "$1"; }
    COFFER_HTTPS=$(ready https)
    COFFER_HTTP_URL=$(ready http)
    COFFER_CA=$(ready ca_bundle)
    log "coffer pid $COFFER_PID: $COFFER_HTTPS, $COFFER_HTTP_URL (ready in $COFFER_READY_S s, peak RSS ${COFFER_START_PEAK_KIB:-?} KiB)"
}

# wait_idle PID: waits (at most 300 s) until the process has used no CPU for a second (e.g. the server's
# start-up GC pass over every record, which runs in the background once it is ready); prints the seconds waited.
wait_idle() {
    local t0 last cur
    t0=$(now)
    last=-1
    for _ in $(seq 600); do
        cur=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo gone)
        [ "$cur" = "$last" ] && break
        last=$cur
        sleep 1
    done
    "$PYTHON" -c 'import sys; print(f"{max(0.0, float(sys.argv[2]) - float(sys.argv[1]) - 1):.1f}")' "$t0" "$(now)"
}

stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

if [ "$SCALE" = 0 ]; then
    start_coffer "$TMP/data" "$OUT/coffer.log"
    add_target coffer "$COFFER_HTTPS" "$ROOT_AK" "$ROOT_SK" us-east-1 "$COFFER_CA" 0 "" "$COFFER_PID" 1
    if [ "$COFFER_HTTP" = 1 ]; then
        add_target coffer-http "$COFFER_HTTP_URL" "$ROOT_AK" "$ROOT_SK" us-east-1 "" 0 "" "$COFFER_PID" 1
    fi
fi
for p in "${PEER_ARGS[@]+"${PEER_ARGS[@]}"}"; do
    IFS='|' read -r n e a s r c i b pid <<<"$p"
    add_target "$n" "$e" "$a" "$s" "$r" "$c" "$i" "$b" "$pid"
done

# ---------------------------------------------------------------------------------------------------------------
# the matrix
SSEC_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
RUN_ID=$(rand_hex 4)
FAILED=0

objects_for() { # size -> object count
    if [ -n "$OBJECTS" ]; then echo "$OBJECTS"; return; fi
    local bytes
    bytes=$("$PYTHON" -c 'import re,sys
m=re.fullmatch(r"(\d+)(KiB|MiB|GiB)?",sys.argv[1]); u={"KiB":1<<10,"MiB":1<<20,"GiB":1<<30}
print(int(m.group(1))*u.get(m.group(2),1))' "$1")
    local n=$(((512 << 20) / bytes))
    ((n < 16)) && n=16
    ((n > 2000)) && n=2000
    echo "$n"
}

# run_cell TARGET_INDEX SIZE OP ENC CONC [extra coffer-bench args...]
# CELL_KIND names the cell when one op is measured several ways (--scale: list-start, list-middle, ...),
# CELL_TAG prefixes its file names, CELL_COUNT and CELL_ROUND (--scale) go into cells.tsv; all default to nothing.
CELL_KIND=
CELL_TAG=
CELL_COUNT=
CELL_ROUND=
run_cell() {
    local t=$1 size=$2 op=$3 enc=$4 conc=$5
    shift 5
    local name=${TARGETS[$t]}
    local kind=${CELL_KIND:-$op}
    local file="$OUT/${CELL_TAG}${name}__${size}__${kind}__${enc}__c${conc}.json"
    local args=(--endpoint "${T_ENDPOINT[$t]}" --access-key "${T_AK[$t]}" --secret-key "${T_SK[$t]}"
        --region "${T_REGION[$t]}" --bucket "${CELL_BUCKET}" --prefix "s${size}-${enc}/" --size "$size"
        --objects "$(objects_for "$size")" --concurrency "$conc" --op "$op" --json --quiet
        --label "$name/$size/$op/$enc/c$conc")
    [ -n "${T_CA[$t]}" ] && args+=(--ca-bundle "${T_CA[$t]}")
    [ "${T_INSECURE[$t]}" = 1 ] && args+=(--insecure)
    [ -n "${T_PID[$t]}" ] && args+=(--server-pid "${T_PID[$t]}")
    [ "$enc" = ssec ] && args+=(--ssec --ssec-key "$SSEC_KEY")
    # The server's peak RSS during the cell (prepare phase included), for the Coffer started here.
    local peak=
    local own_pid=
    [ "${T_OWN[$t]}" = 1 ] && [ -n "${T_PID[$t]}" ] && rss_reset "${T_PID[$t]}" && own_pid=${T_PID[$t]}
    local rc=0
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$BENCH" "${args[@]}" "$@" >"$file" 2>"${file%.json}.err" || rc=$?
    [ -n "$own_pid" ] && peak=$(rss_peak_kib "$own_pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$size" "$op" "$enc" "$conc" "$(basename "$file")" \
        "$rc" "${peak:-}" "$kind" "${CELL_COUNT:-}" "${CELL_ROUND:-}" >>"$OUT/cells.tsv"
    if [ "$rc" != 0 ]; then
        FAILED=1
        log "$(printf '%-12s %-6s %-14s %-5s c%-3s' "$name" "$size" "$kind" "$enc" "$conc") FAILED (exit $rc): $(tail -c 300 "${file%.json}.err" | tr '\n' ' ')"
    fi
    "$PYTHON" - "$file" "$name" "$size" "$kind" "$enc" "$conc" "${peak:-}" <<'EOF' >&2 || true
import json, sys
path, name, size, op, enc, conc, peak = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    sys.exit(0)
t = r["total"]
lat = [o["latency_ms"] for o in r["ops"].values() if o.get("latency_ms")]
p99 = f"p99 {lat[0]['p99']:8.2f} ms" if len(lat) == 1 else ""
rss = f"  RSS {int(peak) / 1024:6.1f} MiB" if peak else ""
print(f"[bench] {name:<12} {size:<6} {op:<14} {enc:<5} c{conc:<3} {t['mib_per_s']:9.1f} MiB/s {t['ops_per_s']:9.1f} ops/s"
      f" {p99}  errors {t['errors']}{rss}")
EOF
}

for t in "${!TARGETS[@]}"; do
    CELL_BUCKET=${T_BUCKET[$t]:-bench-$RUN_ID-${TARGETS[$t]//[^a-z0-9-]/-}}
    log "target ${TARGETS[$t]}: ${T_ENDPOINT[$t]} (bucket $CELL_BUCKET)"
    for size in $SIZES; do
        concs=$CONCS
        [ "$size" = 64MiB ] && [ -n "$CONC_64M" ] && concs="$concs $CONC_64M"
        for enc in plain ssec; do
            # SSE-C over plain HTTP only where the server allows it (Coffer's test switch; peers as they are).
            for conc in $concs; do
                run_cell "$t" "$size" put "$enc" "$conc" --duration "$DURATION" --warmup "$WARMUP"
            done
            # The first GET cell uploads the objects (at the highest concurrency); the others read them again.
            prepared=0
            for conc in $(echo "$concs" | tr ' ' '\n' | sort -rn); do
                extra=()
                [ "$prepared" = 1 ] && extra=(--no-prepare)
                run_cell "$t" "$size" get "$enc" "$conc" --duration "$DURATION" --warmup "$WARMUP" "${extra[@]+"${extra[@]}"}"
                prepared=1
            done
        done
    done
    if [ "$SMOKE" = 1 ]; then
        # Every op once more, each on its own (so deletes cannot make gets fail), with and without SSE-C.
        for enc in plain ssec; do
            for op in put get range-get head list delete multipart-put; do
                run_cell "$t" 1MiB "$op" "$enc" 2 --ops 6 --part-size 5MiB
            done
        done
    fi
done

# ---------------------------------------------------------------------------------------------------------------
# --scale: a data dir per count, each with a server, and every cell measured against each count in turn, in
# rounds (the count order reversed every other round), so that other work on the machine weighs on both alike
if [ "$SCALE" = 1 ]; then
    : >"$OUT/scale.tsv"
    : >"$OUT/rounds.tsv"
    SCALE_BUCKET=scale
    # Distinct keys of the PUT and GET cells (GETs read objects written in the same run).
    OBJECTS=${BENCH_OBJECTS:-$([ "$SMOKE" = 1 ] && echo 4 || echo 1000)}
    timed=(--duration "$DURATION" --warmup "$WARMUP")
    TARGETS=() T_ENDPOINT=() T_AK=() T_SK=() T_REGION=() T_CA=() T_INSECURE=() T_BUCKET=() T_PID=() T_OWN=()
    declare -a S_COUNT=() S_DIR=() S_AFTER=() S_MIDDLE_KEYS=() S_PREFIX=()
    for count in $SCALE_COUNTS; do
        dir=$TMP/scale-$count
        rm -rf "$dir"
        load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
        log "populating $count objects into $dir (bucket $SCALE_BUCKET, keys obj/00000000...)"
        t0=$(now)
        "$COFFER" dev populate --data-dir "$dir" --bucket "$SCALE_BUCKET" --count "$count" --prefix obj/ --width 8 \
            >"$OUT/populate-$count.txt" 2>&1 || die "coffer dev populate: $(tail -3 "$OUT/populate-$count.txt")"
        populate_s=$("$PYTHON" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$t0" "$(now)")
        log "$(cat "$OUT/populate-$count.txt") (wall $populate_s s)"
        # Folders: a second bucket of as many objects in 1000 "folders", listed with delimiter "/".
        "$COFFER" dev populate --data-dir "$dir" --bucket folders --count "$count" --prefix d/ --width 8 \
            --per-folder $((count / 1000)) >"$OUT/populate-$count-folders.txt" 2>&1 \
            || die "coffer dev populate: $(tail -3 "$OUT/populate-$count-folders.txt")"
        log "$(cat "$OUT/populate-$count-folders.txt")"
        meta_bytes=$(stat -c %s "$dir/meta.redb")
        start_coffer "$dir" "$OUT/coffer-$count.log"
        SERVER_PIDS+=("$COFFER_PID")
        gc_s=$(wait_idle "$COFFER_PID")
        start_peak_kib=$(rss_peak_kib "$COFFER_PID")
        idle_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$COFFER_PID/status")
        log "start-up pass done about $gc_s s after ready; peak RSS ${start_peak_kib:-?} KiB, now ${idle_kib:-?} KiB"
        add_target "coffer-$count" "$COFFER_HTTPS" "$ROOT_AK" "$ROOT_SK" us-east-1 "$COFFER_CA" 0 "" "$COFFER_PID" 1
        # ListObjectsV2 pages of 1000 keys. The middle page starts 500 keys before the middle key; the prefix selects
        # the 1000 keys around it.
        mid=$((count / 2))
        after_index=$((mid - 500))
        S_COUNT+=("$count")
        S_DIR+=("$dir")
        S_AFTER+=("$(printf 'obj/%08d' "$after_index")")
        middle_keys=$((count - after_index - 1))
        ((middle_keys > 1000)) && middle_keys=1000
        S_MIDDLE_KEYS+=("$middle_keys")
        S_PREFIX+=("$(printf 'obj/%05d' $((mid / 1000)))")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$count" "$populate_s" "$meta_bytes" "$COFFER_READY_S" \
            "${start_peak_kib:-}" "${idle_kib:-}" "$load_before" "${S_AFTER[-1]}" "${S_PREFIX[-1]}" \
            "$(tr '\t\n' '  ' <"$OUT/populate-$count.txt")" "$gc_s" >>"$OUT/scale.tsv"
    done

    # scale_cell KIND OP ENC CONC [extra args]: one cell against every count, in this round's order.
    scale_cell() {
        local kind=$1 op=$2 enc=$3 conc=$4
        shift 4
        local i extra
        for i in $ROUND_ORDER; do
            CELL_KIND=$kind CELL_COUNT=${S_COUNT[$i]} CELL_ROUND=$ROUND CELL_TAG="r${ROUND}__"
            CELL_BUCKET=$SCALE_BUCKET
            extra=()
            case $kind in
                list-start) extra=(--list-prefix "" --list-min-keys 1000) ;;
                list-middle) extra=(--list-prefix "" --list-start-after "${S_AFTER[$i]}" --list-min-keys "${S_MIDDLE_KEYS[$i]}") ;;
                list-prefix) extra=(--list-prefix "${S_PREFIX[$i]}" --list-min-keys 1000) ;;
                list-folders)
                    CELL_BUCKET=folders
                    extra=(--list-prefix d/ --list-delimiter / --list-min-keys 1000)
                    ;;
            esac
            run_cell "$i" 4KiB "$op" "$enc" "$conc" "${extra[@]+"${extra[@]}"}" "$@" "${timed[@]}"
        done
        CELL_KIND= CELL_COUNT= CELL_ROUND= CELL_TAG=
    }

    forward=$(seq 0 $((${#S_COUNT[@]} - 1)) | tr '\n' ' ')
    backward=$(seq $((${#S_COUNT[@]} - 1)) -1 0 | tr '\n' ' ')
    for ROUND in $(seq "$SCALE_ROUNDS"); do
        if ((ROUND % 2)); then ROUND_ORDER=$forward; else ROUND_ORDER=$backward; fi
        printf '%s\t%s\n' "$ROUND" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')" >>"$OUT/rounds.tsv"
        log "round $ROUND of $SCALE_ROUNDS"
        for conc in $SCALE_CONCS; do
            for kind in list-start list-middle list-prefix list-folders; do
                scale_cell "$kind" list plain "$conc" --no-prepare
            done
        done
        for enc in plain ssec; do
            for conc in $SCALE_CONCS; do
                scale_cell put put "$enc" "$conc"
            done
            # The first GET cell of the run uploads the objects it reads (prepare phase, not timed); the others read
            # them again. Cells go from the lowest concurrency up.
            for conc in $(echo "$SCALE_CONCS" | tr ' ' '\n' | sort -n); do
                if [ "$ROUND" = 1 ] && [ "$conc" = "$(echo "$SCALE_CONCS" | tr ' ' '\n' | sort -n | head -1)" ]; then
                    scale_cell get get "$enc" "$conc"
                else
                    scale_cell get get "$enc" "$conc" --no-prepare
                fi
            done
        done
    done
    for i in "${!S_COUNT[@]}"; do
        stop_pid "${T_PID[$i]}"
        printf '%s\t%s\n' "${S_COUNT[$i]}" "$(stat -c %s "${S_DIR[$i]}/meta.redb")" >>"$OUT/meta_after.tsv"
        rm -rf "${S_DIR[$i]}"
    done
fi
echo "load_end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')" >"$OUT/load_end.txt"

# ---------------------------------------------------------------------------------------------------------------
# --scale: check every report, and write the scale doc
if [ "$SCALE" = 1 ]; then
    export BENCH_OUT_DIR=$OUT BENCH_DOC_PATH=$DOC BENCH_SMOKE_MODE=$SMOKE BENCH_COUNTS="$SCALE_COUNTS"
    "$PYTHON" - <<'PYEOF' || FAILED=1
import json, os, sys
from pathlib import Path

out = Path(os.environ["BENCH_OUT_DIR"])
doc = os.environ.get("BENCH_DOC_PATH") or ""
smoke = os.environ.get("BENCH_SMOKE_MODE") == "1"
counts = [int(c) for c in os.environ["BENCH_COUNTS"].split()]
meta = json.loads((out / "meta.json").read_text())
meta["load_end"] = (out / "load_end.txt").read_text().split(" ", 1)[1].strip() if (out / "load_end.txt").exists() else "?"
MIB = 1 << 20
BASE_MIB, PER_REQUEST_MIB, FLAT = 64, 8, 1.5

cells, bad = [], []
for line in (out / "cells.tsv").read_text().splitlines():
    target, size, op, enc, conc, fname, rc, peak, kind, count, rnd = line.split("\t")
    cell = dict(op=op, kind=kind, enc=enc, conc=int(conc), rc=int(rc), count=int(count), round=int(rnd),
                peak_kib=int(peak) if peak else None, report=None)
    try:
        r = json.loads((out / fname).read_text())
        cell["report"] = r
    except (OSError, json.JSONDecodeError) as e:
        bad.append(f"{fname}: no JSON report ({e}); exit {rc}")
    else:
        o = r.get("ops", {}).get(op)
        if list(r.get("ops", {})) != [op] or o is None:
            bad.append(f"{fname}: ops has {list(r.get('ops', {}))}, expected [{op}]")
        elif o["errors"] or r["total"]["errors"]:
            bad.append(f"{fname}: {o['errors']} errors {o['errors_by_code']} {o['error_samples']}")
        elif o["ops"] <= 0 or not o.get("latency_ms"):
            bad.append(f"{fname}: no op completed")
        if r.get("ssec") != (enc == "ssec"):
            bad.append(f"{fname}: ssec is {r.get('ssec')}")
    if rc != "0":
        bad.append(f"{fname}: exit {rc}")
    if cell["peak_kib"] is None and not smoke:
        bad.append(f"{fname}: no peak RSS (is /proc/<pid>/clear_refs writable?)")
    cells.append(cell)

runs = {}
for line in (out / "scale.tsv").read_text().splitlines():
    f = line.split("\t")
    runs[int(f[0])] = dict(populate_s=float(f[1]), meta_bytes=int(f[2]), ready_s=float(f[3]),
                           start_peak_kib=int(f[4]) if f[4] else None, idle_kib=int(f[5]) if f[5] else None,
                           load_before=f[6], start_after=f[7], prefix=f[8], populate_out=f[9], gc_s=float(f[10]))
if (out / "meta_after.tsv").exists():
    for line in (out / "meta_after.tsv").read_text().splitlines():
        n, size = line.split("\t")
        if int(n) in runs:
            runs[int(n)]["meta_after"] = int(size)
rounds = [line.split("\t") for line in (out / "rounds.tsv").read_text().splitlines()]
for c in counts:
    if c not in runs:
        bad.append(f"count {c} did not run")
print(f"[bench] scale: {len(cells)} cells, {len(bad)} problems; reports in {out}", file=sys.stderr)
for b in bad:
    print(f"[bench]   {b}", file=sys.stderr)
if not doc:
    sys.exit(1 if bad else 0)

def label(n):
    for unit, name in ((1_000_000_000, "G"), (1_000_000, "M"), (1000, "k")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{name}"
    return f"{n:,}"

def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2

def group(count, kind, enc, conc):
    """The cells of every round for one count and cell."""
    return [c for c in cells if (c["count"], c["kind"], c["enc"], c["conc"]) == (count, kind, enc, conc)
            and c["report"]]

def one_lat(c, q):
    o = c["report"]["ops"].get(c["op"])
    return o["latency_ms"][q] if o and o.get("latency_ms") else None

def lat(g, q):
    """Median over the rounds."""
    return median(one_lat(c, q) for c in g) if g else None

def opss(g):
    return median(c["report"]["ops"][c["op"]]["ops_per_s"] for c in g) if g else None

def peak(g):
    """The highest over the rounds, in MiB."""
    peaks = [c["peak_kib"] for c in g if c["peak_kib"] is not None]
    return max(peaks) / 1024 if peaks else None

def fmt(x, nd=2):
    return "–" if x is None else f"{x:,.{nd}f}"

def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b

def bound_mib(conc):
    return BASE_MIB + PER_REQUEST_MIB * conc

first, last = counts[0], counts[-1]
L = []
w = L.append
w("# Benchmarks: scale with data")
w("")
w("Written by `bench/run.sh --scale` (do not edit by hand: run it again). The throughput matrix (object sizes, "
  "plain vs SSE-C, the loopback ceiling) is in [benchmarks.md](benchmarks.md).")
w("")
w(f"Issue 6 asks that PUT, GET and ListObjectsV2 page latency stay flat (within {FLAT}×) from "
  f"{label(first)} to {label(last)} objects in a bucket, and that the server's peak RSS stay under "
  f"{BASE_MIB} MiB + {PER_REQUEST_MIB} MiB per concurrent request.")
w("")
w("## Run")
w("")
w(f"- date: {meta['date_utc']}")
w(f"- command: `{meta['command']}`")
w(f"- machine: {meta['nproc']} vCPU, {meta['cpu_model']}, {meta['memory']} RAM, {meta['kernel']}")
w(f"- load average at start / end: {meta['load_start']} / {meta['load_end']}; at the start of each round: "
  + ", ".join(f"{r[1]}" for r in rounds) + " (the machine is shared: other work may have run at the same time)")
w(f"- versions: {meta['coffer']}, {meta['coffer_bench']}, {meta['rustc']}, git {meta['git']}, {meta['profile']} build")
w(f"- each cell: {meta['warmup_s']} s warm-up, then {meta['duration_s']} s measured; latencies count the ops that "
  "completed inside the window; one HTTP/1.1 connection per concurrent request, loopback HTTPS (TLS 1.3)")
w(f"- for each count: a fresh data dir, filled by `coffer dev populate` with that many zero-byte objects "
  "`obj/00000000`, `obj/00000001`, ... in bucket `scale`, and as many in bucket `folders` (below), so the store "
  "holds twice the count (written straight into the metadata store, in transactions of 50,000; the records are the "
  "ones a zero-byte PUT writes, with a blob id whose file is never created, see crates/coffer/src/dev_cli.rs); then "
  "`coffer server` started on it with default settings (fsync on every PUT); one server per count, all running")
w(f"- {len(rounds)} round(s): in each, every cell runs against each count in turn (the order of the counts reversed "
  "every other round), so that load from other work weighs on both counts alike; the tables give the median over "
  "the rounds of each cell's p50, p99 and ops/s")
w("- LIST cells (before the round's PUT cells; PUT keys sort after the populated ones): ListObjectsV2, max-keys "
  "1000, each page checked to hold 1000 keys (`--list-min-keys`; 999 for the 1k middle page): **start** = no "
  "prefix, from the first key; "
  "**middle** = `start-after` 500 keys before the middle key; **prefix** = a prefix matching the 1000 keys "
  "around the middle; **folders** = a second bucket `folders` of as many objects in 1000 \"folders\" "
  "(`d/00000000/...`), listed with prefix `d/` and delimiter "
  "`/`: a page of 1000 common prefixes of count / 1000 keys each")
w("- PUT cells: 4 KiB objects, new keys under `s4KiB-plain/` or `s4KiB-ssec/` (1000 keys, cycled); GET cells "
  "read 4 KiB objects written in the same run (uploaded by the untimed prepare phase of the first GET cell)")
w("- peak RSS: the server's VmHWM from /proc, reset (`echo 5 > /proc/<pid>/clear_refs`) before each cell and "
  "read after it (prepare phase included), the highest over the rounds. The server is not restarted between cells: "
  "the figure includes what the allocator kept from earlier cells (a c1 cell of round 2 runs after the c16 cells "
  "of round 1)")
w("")

w("## Populate and start")
w("")
w("| objects | populate s | objects/s | meta.redb MiB (both buckets) | after the run | server ready s | "
  "start-up GC pass s | peak RSS at start MiB | RSS idle MiB | load before populate |")
w("|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
for n in counts:
    r = runs.get(n)
    if not r:
        continue
    after = r.get("meta_after")
    w(f"| {n:,} | {r['populate_s']:.1f} | {n / r['populate_s']:,.0f} | {r['meta_bytes'] / MIB:,.0f} | "
      f"{fmt(after / MIB if after else None, 0)} | "
      f"{r['ready_s']:.2f} | ~{r['gc_s']:.0f} | {fmt(r['start_peak_kib'] / 1024 if r['start_peak_kib'] else None, 1)} | "
      f"{fmt(r['idle_kib'] / 1024 if r['idle_kib'] else None, 1)} | {r['load_before']} |")
w("")
w("`populate s` is the wall time of `coffer dev populate` for bucket `scale` (opening the store, the transactions "
  "and their fsyncs); `server ready s` the time from starting `coffer server` (on both buckets) to its ready file. "
  "The start-up GC pass (every record read to find orphaned blobs) then runs in the background; the script waits "
  "until the server has used no CPU for a second (`start-up GC pass s`, to the second) before it reads the peak "
  "RSS at start and begins the cells.")
w("")

CONCS = sorted({c["conc"] for c in cells})
ROWS = [(kind, enc, conc) for kind, enc in (("list-start", "plain"), ("list-middle", "plain"), ("list-prefix", "plain"),
                                            ("list-folders", "plain"), ("put", "plain"), ("put", "ssec"),
                                            ("get", "plain"), ("get", "ssec"))
        for conc in CONCS]
NAMES = {"list-start": "LIST from the start", "list-middle": "LIST from the middle (start-after)",
         "list-prefix": "LIST under a prefix", "list-folders": "LIST folders (delimiter)", "put": "PUT 4 KiB",
         "get": "GET 4 KiB"}

w("## Latency")
w("")
w(f"p50 / p99 in ms. The ratios divide the {label(last)} figure by the {label(first)} one; "
  f"flat means both ratios ≤ {FLAT}.")
w("")
head = "| op | enc | conc | " + " | ".join(f"{label(n)} p50 / p99 ms" for n in counts) + \
       f" | ratio p50 | ratio p99 | " + " | ".join(f"{label(n)} ops/s" for n in counts) + " | flat |"
w(head)
w("|---|---|--:|" + "--:|" * len(counts) + "--:|--:|" + "--:|" * len(counts) + "---|")
verdicts = []
for kind, enc, conc in ROWS:
    cs = [group(n, kind, enc, conc) for n in counts]
    if not any(cs):
        continue
    rp50 = ratio(lat(cs[-1], "p50"), lat(cs[0], "p50"))
    rp99 = ratio(lat(cs[-1], "p99"), lat(cs[0], "p99"))
    flat = None if rp50 is None or rp99 is None else (rp50 <= FLAT and rp99 <= FLAT)
    verdicts.append((f"{NAMES[kind]} {'SSE-C' if enc == 'ssec' else 'plain'} c{conc}", rp50, rp99, flat))
    w(f"| {NAMES[kind]} | {'SSE-C' if enc == 'ssec' else 'plain'} | {conc} | "
      + " | ".join(f"{fmt(lat(c, 'p50'))} / {fmt(lat(c, 'p99'))}" for c in cs)
      + f" | {fmt(rp50)} | {fmt(rp99)} | " + " | ".join(fmt(opss(c), 1) for c in cs)
      + f" | {'–' if flat is None else ('yes' if flat else '**no**')} |")
w("")
for n in counts:
    r = runs.get(n)
    if r:
        w(f"- {label(n)}: middle page after `{r['start_after']}`, prefix `{r['prefix']}`")
w("")

w("## Peak memory")
w("")
w(f"The server's peak RSS in each cell against the bound {BASE_MIB} MiB + {PER_REQUEST_MIB} MiB × concurrency. "
  "\"start\" is the server's start-up (before any request), bound as for no request.")
w("")
w("| objects | cell | conc | peak RSS MiB | bound MiB | holds |")
w("|--:|---|--:|--:|--:|---|")
mem_ok, worst = True, None
for n in counts:
    r = runs.get(n)
    if r and r["start_peak_kib"]:
        pk = r["start_peak_kib"] / 1024
        ok = pk <= BASE_MIB
        mem_ok &= ok
        w(f"| {n:,} | start | 0 | {pk:.1f} | {BASE_MIB} | {'yes' if ok else '**no**'} |")
    for kind, enc, conc in ROWS:
        pk = peak(group(n, kind, enc, conc))
        if pk is None:
            continue
        ok = pk <= bound_mib(conc)
        mem_ok &= ok
        share = pk / bound_mib(conc)
        if worst is None or share > worst[0]:
            worst = (share, f"{label(n)} {NAMES[kind]} {'SSE-C' if enc == 'ssec' else 'plain'} c{conc}: {pk:.1f} MiB")
        w(f"| {n:,} | {NAMES[kind]} {'SSE-C' if enc == 'ssec' else 'plain'} | {conc} | {pk:.1f} | "
          f"{bound_mib(conc)} | {'yes' if ok else '**no**'} |")
w("")

w("## Issue 6 targets")
w("")
w("| target | measured | met |")
w("|---|---|---|")
for name, rp50, rp99, flat in verdicts:
    w(f"| {name}: {label(last)} within {FLAT}× of {label(first)} | p50 {fmt(rp50)}×, p99 {fmt(rp99)}× | "
      f"{'–' if flat is None else ('yes' if flat else '**no**')} |")
if worst:
    w(f"| peak RSS ≤ {BASE_MIB} MiB + {PER_REQUEST_MIB} MiB × concurrency in every cell | worst: {worst[1]} "
      f"({worst[0]:.2f} of its bound) | {'yes' if mem_ok else '**no**'} |")
w("")

MARK = "<!-- notes: kept across runs -->"
notes = ""
if Path(doc).exists():
    old = Path(doc).read_text()
    if MARK in old:
        notes = old[old.index(MARK):]
w(notes.rstrip() if notes else MARK + "\n")
Path(doc).write_text("\n".join(L).rstrip() + "\n")
print(f"[bench] wrote {doc}", file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
    if [ "$FAILED" != 0 ]; then
        log "some cells failed or reported errors (see above); reports in $OUT"
        exit 1
    fi
    log "done; reports in $OUT"
    exit 0
fi

# ---------------------------------------------------------------------------------------------------------------
# the chart's Python (matplotlib in a venv of our own when the system has none)
CHART_PY=
if [ -n "$DOC" ] && [ "$CHART" = 1 ]; then
    if "$PYTHON" -c 'import matplotlib' 2>/dev/null; then
        CHART_PY=$PYTHON
    else
        venv=$TARGET_DIR/bench-venv
        if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
            log "installing matplotlib into $venv for the chart"
            { "$PYTHON" -m venv "$venv" && "$venv/bin/python" -m pip install -q --disable-pip-version-check matplotlib; } >&2 \
                || log "no matplotlib: the report will have no chart"
        fi
        "$venv/bin/python" -c 'import matplotlib' 2>/dev/null && CHART_PY=$venv/bin/python
    fi
fi

# ---------------------------------------------------------------------------------------------------------------
# check every report, and write the doc
export BENCH_OUT_DIR=$OUT BENCH_DOC_PATH=$DOC BENCH_CHART_PY=$CHART_PY BENCH_SMOKE_MODE=$SMOKE
"$PYTHON" - <<'PYEOF' || FAILED=1
import json, os, subprocess, sys
from pathlib import Path

out = Path(os.environ["BENCH_OUT_DIR"])
doc = os.environ.get("BENCH_DOC_PATH") or ""
chart_py = os.environ.get("BENCH_CHART_PY") or ""
smoke = os.environ.get("BENCH_SMOKE_MODE") == "1"
meta = json.loads((out / "meta.json").read_text())
meta["load_end"] = (out / "load_end.txt").read_text().split(" ", 1)[1].strip() if (out / "load_end.txt").exists() else "?"

OP_KEYS = {"ops", "bytes", "ops_per_s", "mib_per_s", "latency_ms", "errors", "errors_by_code", "error_samples"}
TOP_KEYS = {"tool", "version", "endpoint", "tls", "size", "objects", "concurrency", "mix", "ssec", "elapsed_s",
            "ops", "total", "warmup_s", "duration_s", "ops_limit", "prepare", "client_cpu_s", "server_cpu_s"}

def check(r, op, ssec):
    """The report's shape, and that every op succeeded."""
    problems = []
    missing = TOP_KEYS - r.keys()
    if missing:
        problems.append(f"missing keys {sorted(missing)}")
    if r.get("tool") != "coffer-bench":
        problems.append("tool is not coffer-bench")
    if r.get("ssec") != ssec:
        problems.append(f"ssec is {r.get('ssec')}, expected {ssec}")
    ops = r.get("ops", {})
    if list(ops) != [op]:
        problems.append(f"ops has {list(ops)}, expected [{op}]")
    for name, o in ops.items():
        if OP_KEYS - o.keys():
            problems.append(f"{name}: missing keys {sorted(OP_KEYS - o.keys())}")
            continue
        if o["errors"] != 0:
            problems.append(f"{name}: {o['errors']} errors {o['errors_by_code']} {o['error_samples']}")
        if o["ops"] <= 0:
            # In a timed cell, huge objects at high concurrency on a slow server may all end after the window.
            if smoke or r.get("ops_limit") is not None:
                problems.append(f"{name}: no op completed")
        elif not (o["latency_ms"] and all(k in o["latency_ms"] for k in ("p50", "p90", "p99", "max", "mean"))):
            problems.append(f"{name}: latency_ms incomplete")
    t = r.get("total", {})
    if t.get("errors") != 0:
        problems.append(f"total errors {t.get('errors')}")
    return problems

cells = []
bad = []
for line in (out / "cells.tsv").read_text().splitlines():
    parts = line.split("\t")
    target, size, op, enc, conc, fname, rc = parts[:7]
    peak = parts[7] if len(parts) > 7 and parts[7] else None
    cell = dict(target=target, size=size, op=op, enc=enc, conc=int(conc), rc=int(rc), report=None,
                peak_kib=int(peak) if peak else None)
    try:
        cell["report"] = json.loads((out / fname).read_text())
    except (OSError, json.JSONDecodeError) as e:
        bad.append(f"{fname}: no JSON report ({e}); exit {rc}")
    if cell["report"] is not None:
        for p in check(cell["report"], op, enc == "ssec"):
            bad.append(f"{fname}: {p}")
    cells.append(cell)

if not cells:
    bad.append("no cell ran")
print(f"[bench] {len(cells)} cells, {len(bad)} problems; reports in {out}", file=sys.stderr)
for b in bad:
    print(f"[bench]   {b}", file=sys.stderr)

if not doc:
    sys.exit(1 if bad else 0)

# ------------------------------------------------------------------ the Markdown report
def get(target, size, op, enc, conc):
    for c in cells:
        if (c["target"], c["size"], c["op"], c["enc"], c["conc"]) == (target, size, op, enc, conc) and c["report"]:
            return c["report"]
    return None

def opr(r):
    return next(iter(r["ops"].values())) if r and r.get("ops") else None

def fmt(x, nd=1):
    return "–" if x is None else f"{x:,.{nd}f}"

def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b

def mib(r):
    o = opr(r)
    return o["mib_per_s"] if o else None

def opss(r):
    o = opr(r)
    return o["ops_per_s"] if o else None

def lat(r, q):
    o = opr(r)
    return o["latency_ms"][q] if o and o.get("latency_ms") else None

def srv_s_per_gib(r):
    if not r or r.get("server_cpu_s") is None:
        return None
    b = r["total"]["bytes"]
    return r["server_cpu_s"] / (b / (1 << 30)) if b else None

def peak_mib(target, size, op, enc, conc):
    for c in cells:
        if (c["target"], c["size"], c["op"], c["enc"], c["conc"]) == (target, size, op, enc, conc):
            return c["peak_kib"] / 1024 if c["peak_kib"] is not None else None
    return None

BASE_MIB, PER_REQUEST_MIB = 64, 8

def cli_cores(r):
    if not r or r.get("client_cpu_s") is None:
        return None
    return r["client_cpu_s"] / r["elapsed_s"]

targets = list(dict.fromkeys(c["target"] for c in cells))
sizes = list(dict.fromkeys(c["size"] for c in cells))
concs = sorted({c["conc"] for c in cells})
lines = []
w = lines.append

w("# Benchmarks")
w("")
w("Written by `bench/run.sh` (do not edit by hand: run it again). Every figure below comes from one run of the")
w("script on one machine: Coffer, the load generator (`coffer-bench`, crates/coffer-bench) and, when present, the")
w("loopback ceiling tool (`../shared/limit`) and the peers all ran on the same cores, one after the other.")
w("Latency with 1 thousand vs 1 million objects in a bucket, and peak memory there, are in")
w("[benchmarks-scale.md](benchmarks-scale.md) (`bench/run.sh --scale`).")
w("")
w("## Run")
w("")
w(f"- date: {meta['date_utc']}")
w(f"- command: `{meta['command']}`")
w(f"- machine: {meta['nproc']} vCPU, {meta['cpu_model']}, {meta['memory']} RAM, {meta['kernel']}")
w(f"- load average at start / end: {meta['load_start']} / {meta['load_end']} (the machine is shared: other work "
  f"may have run at the same time)")
w(f"- versions: {meta['coffer']}, {meta['coffer_bench']}, {meta['rustc']}, git {meta['git']}, {meta['profile']} build")
w(f"- each cell: {meta['warmup_s']} s warm-up, then {meta['duration_s']} s measured; MiB/s counts payload bytes moved "
  f"inside the measured window; ops/s and latencies count the ops that completed inside it")
w("- Coffer: `coffer server` on a fresh temp data dir (default settings: generated CA, fsync on every PUT); "
  "loopback HTTPS (TLS 1.3); objects stay in the page cache, so GETs measure the server, not the disk")
w("- client: one HTTP/1.1 connection per concurrent request; `UNSIGNED-PAYLOAD` bodies; PUT bodies are slices of "
  "one random buffer with a 16-byte tag per 256 KiB, so no two PUTs send the same bytes; SSE-C sends the three "
  "customer-key headers on every PUT/GET")
w("")

limit = None
if (out / "limit.json").exists():
    try:
        limit = json.loads((out / "limit.json").read_text())
    except json.JSONDecodeError:
        limit = None

for target in targets:
    tcells = [c for c in cells if c["target"] == target]
    endpoint = next((c["report"]["endpoint"] for c in tcells if c["report"]), "?")
    w(f"## {target} ({endpoint})")
    w("")
    w("MiB/s = 2^20 bytes per second. `SSE-C/plain` divides the SSE-C figure by the plain one of the same cell. "
      "Server CPU is the server process's CPU time per GiB moved (user + system, from /proc), client cores the "
      "share of the 2 cores the load generator used. Peak RSS is the server's VmHWM during the cell (reset "
      "through /proc/<pid>/clear_refs before it; only for the Coffer started by the script).")
    w("")
    w("| size | op | conc | plain MiB/s | SSE-C MiB/s | SSE-C/plain | plain ops/s | SSE-C ops/s | plain p50 / p99 ms "
      "| SSE-C p50 / p99 ms | server CPU s/GiB plain / SSE-C | client cores | server peak RSS MiB plain / SSE-C |")
    w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for size in sizes:
        for op in ("put", "get"):
            for conc in concs:
                p = get(target, size, op, "plain", conc)
                s = get(target, size, op, "ssec", conc)
                if not p and not s:
                    continue
                ra = ratio(mib(s), mib(p))
                w(f"| {size} | {op.upper()} | {conc} | {fmt(mib(p))} | {fmt(mib(s))} | "
                  f"{fmt(ra, 2) if ra is not None else '–'} | {fmt(opss(p))} | {fmt(opss(s))} | "
                  f"{fmt(lat(p, 'p50'), 2)} / {fmt(lat(p, 'p99'), 2)} | {fmt(lat(s, 'p50'), 2)} / {fmt(lat(s, 'p99'), 2)} | "
                  f"{fmt(srv_s_per_gib(p), 2)} / {fmt(srv_s_per_gib(s), 2)} | "
                  f"{fmt(cli_cores(p), 2)} / {fmt(cli_cores(s), 2)} | "
                  f"{fmt(peak_mib(target, size, op, 'plain', conc))} / {fmt(peak_mib(target, size, op, 'ssec', conc))} |")
    failed = [c for c in tcells if c["rc"] != 0]
    if failed:
        w("")
        w("Cells with failed ops (exit status not 0): " + ", ".join(
            f"{c['size']} {c['op']} {c['enc']} c{c['conc']} (exit {c['rc']})" for c in failed))
    w("")

# the loopback ceiling
w("## Loopback ceiling")
w("")
if limit:
    w("`../shared/limit` measures how fast the hardware moves bytes through the data path Coffer uses (tokio + "
      "rustls TLS 1.3 AES-256-GCM, 64 KiB writes, plus one AES-256-GCM pass per 64 KiB chunk on the server in the "
      "`+ssec` cases), with client and server in two processes on the same cores. GB/s = 10^9 B/s.")
    w("")
    w(f"Run: `limit {os.environ.get('LIMIT_ARGS', 'all --reps 1 --bytes 536870912 --streams 1,4 --cases tls-default+ssec')}`"
      f" (load {json.dumps(limit.get('load', {}))})")
    w("")
    w("| case | streams | direction | GB/s | server s/GB | client s/GB |")
    w("|---|--:|---|--:|--:|--:|")
    for row in limit.get("net", []):
        w(f"| {row['case']} | {row['streams']} | {row['dir']} ({'GET' if row['dir'] == 'down' else 'PUT'}) | "
          f"{row['gbps']:.3f} | {row['srv_cpu_s_per_gb']:.3f} | {row['cli_cpu_s_per_gb']:.3f} |")
    w("")
    def ceiling(streams, direction):
        for row in limit.get("net", []):
            if row["case"] == "tls-default+ssec" and row["streams"] == streams and row["dir"] == direction:
                return row["gbps"]
        return None
    w("Coffer's 64 MiB SSE-C HTTPS throughput as a fraction of the ceiling (issue 6 asks for ≥ 0.75):")
    w("")
    w("| op | conc | Coffer SSE-C GB/s | ceiling GB/s | fraction |")
    w("|---|--:|--:|--:|--:|")
    for op, direction in (("get", "down"), ("put", "up")):
        for conc, streams in ((1, 1), (4, 4)):
            r = get("coffer", "64MiB", op, "ssec", conc)
            gbps = mib(r) * (1 << 20) / 1e9 if r else None
            ce = ceiling(streams, direction)
            w(f"| {op.upper()} | {conc} | {fmt(gbps, 3)} | {fmt(ce, 3)} | {fmt(ratio(gbps, ce), 2)} |")
    w("")
else:
    w("Not measured in this run (`../shared/limit` was not found, or `BENCH_LIMIT=0`).")
    w("")

# issue 6's targets
w("## Issue 6 targets")
w("")
w("| target | measured | met |")
w("|---|---|---|")
def yes(ok):
    return "–" if ok is None else ("yes" if ok else "**no**")
for op in ("put", "get"):
    for conc in concs:
        p, s = get("coffer", "64MiB", op, "plain", conc), get("coffer", "64MiB", op, "ssec", conc)
        ra = ratio(mib(s), mib(p))
        w(f"| 64 MiB SSE-C {op.upper()} c{conc} ≥ 0.85 × plain | {fmt(ra, 2)} | {yes(None if ra is None else ra >= 0.85)} |")
peers = [t for t in targets if not t.startswith("coffer")]
for peer in peers:
    ref = "coffer-http" if any(c["report"] and not c["report"]["tls"] for c in cells if c["target"] == peer) \
        and "coffer-http" in targets else "coffer"
    for size, metric, label in (("64MiB", mib, "throughput"), ("4KiB", opss, "ops/s")):
        for op in ("put", "get"):
            for conc in concs:
                ra = ratio(metric(get(ref, size, op, "ssec", conc)), metric(get(peer, size, op, "ssec", conc)))
                if ra is None:
                    continue
                w(f"| {size} SSE-C {op.upper()} c{conc} {label} ≥ 3 × {peer} ({ref}) | {fmt(ra, 2)}× | {yes(ra >= 3)} |")
    c16 = max(concs)
    a, b = lat(get(ref, "4KiB", "get", "ssec", c16), "p99"), lat(get(peer, "4KiB", "get", "ssec", c16), "p99")
    if a is not None and b is not None:
        w(f"| 4 KiB SSE-C GET p99 c{c16} below {peer} | {a:.2f} ms vs {b:.2f} ms | {yes(a < b)} |")
if not peers:
    w("| Coffer ≥ 3 × Ceph RGW and Garage | peers not run (see `bench/run.sh --help`: `PEERS=...`) | – |")
# memory: the server's peak RSS in every cell of the Coffer started here
measured = [c for c in cells if c["peak_kib"] is not None and c["target"] == "coffer"]
if measured:
    over = [c for c in measured if c["peak_kib"] / 1024 > BASE_MIB + PER_REQUEST_MIB * c["conc"]]
    worst = max(measured, key=lambda c: c["peak_kib"] / 1024 / (BASE_MIB + PER_REQUEST_MIB * c["conc"]))
    wb = BASE_MIB + PER_REQUEST_MIB * worst["conc"]
    desc = (f"worst: {worst['size']} {worst['op'].upper()} {'SSE-C' if worst['enc'] == 'ssec' else 'plain'} "
            f"c{worst['conc']}, {worst['peak_kib'] / 1024:.1f} of {wb} MiB")
    if over:
        desc += "; over: " + ", ".join(
            f"{c['size']} {c['op'].upper()} {c['enc']} c{c['conc']} ({c['peak_kib'] / 1024:.1f} MiB)" for c in over)
    w(f"| server peak RSS ≤ {BASE_MIB} MiB + {PER_REQUEST_MIB} MiB × concurrency in every cell | {desc} | "
      f"{yes(not over)} |")
w("")

chart = Path(doc).with_suffix(".png")
if chart_py:
    script = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(open(sys.argv[1]))
sizes = data["sizes"]
fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.8), squeeze=False)
for ax, size in zip(axes[0], sizes):
    rows = [r for r in data["rows"] if r["size"] == size]
    labels = sorted({(r["target"], r["op"], r["conc"]) for r in rows}, key=lambda k: (k[0], k[1] != "put", k[2]))
    xs = range(len(labels))
    for i, (enc, color) in enumerate((("plain", "#8da0cb"), ("ssec", "#fc8d62"))):
        vals = [next((r["value"] for r in rows if (r["target"], r["op"], r["conc"]) == k and r["enc"] == enc), 0)
                for k in labels]
        ax.bar([x + (i - 0.5) * 0.4 for x in xs], vals, width=0.4, color=color, label="SSE-C" if enc == "ssec" else "plain")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{t}\n{o.upper()} c{c}" for t, o, c in labels], fontsize=7)
    unit = "ops/s" if size == "4KiB" else "MiB/s"
    ax.set_title(f"{size} objects ({unit})")
    ax.set_ylabel(unit)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle("coffer-bench: plain vs SSE-C over HTTPS (" + data["date"] + ")")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
'''
    rows = []
    for c in cells:
        r = c["report"]
        if not r or c["op"] not in ("put", "get"):
            continue
        rows.append(dict(target=c["target"], size=c["size"], op=c["op"], enc=c["enc"], conc=c["conc"],
                         value=(opss(r) if c["size"] == "4KiB" else mib(r)) or 0))
    (out / "chart.json").write_text(json.dumps(dict(sizes=sizes, rows=rows, date=meta["date_utc"])))
    (out / "chart.py").write_text(script)
    res = subprocess.run([chart_py, str(out / "chart.py"), str(out / "chart.json"), str(chart)],
                         capture_output=True, text=True)
    if res.returncode == 0:
        w("## Chart")
        w("")
        w(f"![plain vs SSE-C throughput]({chart.name})")
        w("")
        w("4 KiB cells in ops/s, the others in MiB/s; each group is one target, op and concurrency.")
    else:
        print(f"[bench] chart failed: {res.stderr[-500:]}", file=sys.stderr)
        w("No chart in this run: matplotlib failed (" + res.stderr.strip().splitlines()[-1][:200] + ").")
else:
    w("No chart in this run: matplotlib could not be installed or `BENCH_CHART=0`.")
w("")

# analysis and notes written by hand are kept: everything from the marker on is copied from the previous doc
MARK = "<!-- notes: kept across runs -->"
notes = ""
if Path(doc).exists():
    old = Path(doc).read_text()
    if MARK in old:
        notes = old[old.index(MARK):]
w(notes.rstrip() if notes else MARK + "\n")
Path(doc).write_text("\n".join(lines).rstrip() + "\n")
print(f"[bench] wrote {doc}" + (f" and {chart}" if chart_py and chart.exists() else ""), file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

if [ "$FAILED" != 0 ]; then
    log "some cells failed or reported errors (see above); reports in $OUT"
    exit 1
fi
log "done; reports in $OUT"
