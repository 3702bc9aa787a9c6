# Shared helpers for the benchmark scripts; sourced, never run on its own.
#
# Every script that sources this gets: a private work directory ($WORK) that is
# removed on exit, the release binary ($APP_BIN), functions to start the fake
# VirusTotal and the app on free local ports, and a trap that stops every
# process it started (by PID) and deletes every file it made.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/bench-target}
APP_BIN="$CARGO_TARGET_DIR/release/file-scanner"

# Processes started here, stopped on exit in reverse order.
BENCH_PIDS=()
WORK=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs the Debian packages that provide missing commands ("cmd:package").
ensure_tools() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing ${missing[*]} from Debian"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    # Another apt may be running (CI, a colleague): wait for its lock, bounded.
    if ! "${sudo[@]}" apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2; then
        "${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=600 >&2
        "${sudo[@]}" apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2
    fi
}

# Builds the release binary in $CARGO_TARGET_DIR (quick when nothing changed).
build_release() {
    [[ ${BENCH_SKIP_BUILD:-0} == 1 && -x $APP_BIN ]] && return 0
    log "building the release binary in $CARGO_TARGET_DIR"
    (cd "$REPO_DIR" && cargo build --release --quiet --bin file-scanner) >&2
    [[ -x $APP_BIN ]] || die "no binary at $APP_BIN"
}

cleanup() {
    local status=$? i pid
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${BENCH_PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    done
    [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
    exit "$status"
}

# Makes $WORK and arms the trap. Big files go in $BENCH_TMPDIR (default /tmp),
# which must be a real disk, like a server's upload directory.
setup_work() {
    WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/file-scanner-bench.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Waits until process $1 has exited, at most $2 seconds. Fails if it has not.
wait_gone() {
    local pid=$1 tries=$(($2 * 10))
    while kill -0 "$pid" 2>/dev/null; do
        ((tries-- > 0)) || return 1
        sleep 0.1
    done
    return 0
}

# Runs a command for at most $1 seconds, in the background so that a signal to
# this script stops it at once (through the exit trap) instead of after it.
run_bounded() {
    local limit=$1 pid status=0
    shift
    timeout "$limit" "$@" &
    pid=$!
    BENCH_PIDS+=("$pid")
    wait "$pid" || status=$?
    forget_pid "$pid"
    return "$status"
}

# Prints a TCP port nobody listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# More arguments for fake_vt.py (for example --unknown-files).
FAKE_VT_ARGS=()

# Starts the fake VirusTotal; sets VT_URL to its API base.
start_fake_vt() {
    local port_file="$WORK/fake-vt.port" tries=100
    python3 "$BENCH_DIR/fake_vt.py" --port-file "$port_file" "${FAKE_VT_ARGS[@]}" \
        2>>"$WORK/fake-vt.log" &
    BENCH_PIDS+=($!)
    until [[ -s $port_file ]]; do
        ((tries-- > 0)) || die "the fake VirusTotal did not start"
        sleep 0.1
    done
    VT_URL="http://127.0.0.1:$(<"$port_file")/api/v3"
}

# A command to run the app under (for example /usr/bin/time -v -o FILE).
APP_WRAPPER=()
# More settings for the app, as NAME=value words.
APP_EXTRA_ENV=()

# Starts the app with its data under $WORK, under APP_WRAPPER if set. The
# per-client rate limits are lifted (every request comes from 127.0.0.1) and
# so is the VirusTotal quota (the fake has none). Sets
# APP_URL, APP_PID (the app itself) and APP_LOG. Needs VT_URL; MAX_UPLOAD_BYTES
# may be preset.
start_app() {
    local port wrapper_pid tries=100
    port=$(free_port)
    APP_URL="http://127.0.0.1:$port"
    APP_LOG="$WORK/app.log"
    mkdir -p "$WORK/data" "$WORK/uploads"
    # Run from $WORK so that no .env of the checkout is read.
    (
        cd "$WORK" || exit
        exec env -i PATH="$PATH" HOME="$WORK" NO_COLOR=1 \
            RUST_LOG="${BENCH_RUST_LOG:-info}" \
            BIND="127.0.0.1:$port" \
            DATA_DIR="$WORK/data" UPLOAD_DIR="$WORK/uploads" \
            VT_API_KEY=benchmark-dummy-key VT_BASE_URL="$VT_URL" \
            VT_REQUESTS_PER_MINUTE=1000000 \
            RATE_LIMIT_PER_MINUTE=4000000000 SCAN_RATE_LIMIT_PER_MINUTE=4000000000 \
            MAX_UPLOAD_BYTES="${MAX_UPLOAD_BYTES:-681574400}" \
            "${APP_EXTRA_ENV[@]}" \
            "${APP_WRAPPER[@]}" "$APP_BIN"
    ) >"$APP_LOG" 2>&1 &
    wrapper_pid=$!
    BENCH_PIDS+=("$wrapper_pid")
    APP_WRAPPER_PID=$wrapper_pid
    APP_PID=$wrapper_pid
    if [[ ${#APP_WRAPPER[@]} -gt 0 ]]; then
        # The app is the wrapper's only child.
        until APP_PID=$(pgrep -P "$wrapper_pid"); do
            ((tries-- > 0)) || die "the app did not start under ${APP_WRAPPER[0]}"
            sleep 0.1
        done
        # Stopped first on exit: time(1) would not pass a signal on.
        BENCH_PIDS+=("$APP_PID")
    fi
    tries=200
    until curl -fsS -o /dev/null "$APP_URL/healthz" 2>/dev/null; do
        kill -0 "$APP_PID" 2>/dev/null || { cat "$APP_LOG" >&2; die "the app exited"; }
        ((tries-- > 0)) || die "the app did not answer /healthz in 20 s"
        sleep 0.1
    done
}

# Stops the app gracefully and waits for it (and its wrapper) to exit.
stop_app() {
    kill -TERM "$APP_PID" 2>/dev/null || true
    wait_gone "$APP_PID" 40 || kill -KILL "$APP_PID" 2>/dev/null || true
    wait "$APP_WRAPPER_PID" 2>/dev/null || true
    forget_pid "$APP_WRAPPER_PID"
    forget_pid "$APP_PID"
}

# Drops $1 from the processes the exit trap stops (it has exited already).
forget_pid() {
    local pid kept=()
    for pid in "${BENCH_PIDS[@]}"; do
        [[ $pid == "$1" ]] || kept+=("$pid")
    done
    BENCH_PIDS=("${kept[@]}")
}

# Searches a hash (the fake VirusTotal knows every file) and waits, at most
# 20 s, until its scan page says completed. Sets PAGE_URL and BROWSER_ID (the
# owner's cookie) and leaves the page in $WORK/page.html.
make_completed_scan() {
    local hash answer tries=200
    hash=$(printf '%s' "${1:-file-scanner benchmark}" | sha256sum | cut -c1-64)
    answer=$(curl -sS -o /dev/null -c "$WORK/cookies" -w '%{http_code} %{redirect_url}' \
        "$APP_URL/search?q=$hash")
    [[ ${answer%% *} == 303 ]] || die "GET /search answered ${answer%% *}, not 303"
    PAGE_URL=${answer#* }
    [[ $PAGE_URL == "$APP_URL"/scans/* ]] || die "unexpected redirect to $PAGE_URL"
    BROWSER_ID=$(awk '$6 == "browser_id" { print $7 }' "$WORK/cookies")
    [[ -n $BROWSER_ID ]] || die "the search set no browser_id cookie"
    until curl -fsS -H "Cookie: browser_id=$BROWSER_ID" "$PAGE_URL" >"$WORK/page.html" &&
        grep -q 'data-status="completed"' "$WORK/page.html"; do
        ((tries-- > 0)) || die "the scan did not complete in 20 s"
        sleep 0.1
    done
}

# A field of /proc/$1/status, in kB (VmRSS, VmHWM, ...).
proc_kb() {
    awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

# CPU time the app has used so far (user + system), in clock ticks.
app_cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$APP_PID/stat"
}

# Median of the numbers on stdin, one per line.
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The $1th percentile (nearest rank) of the numbers on stdin, one per line.
percentile() {
    sort -n | awk -v p="$1" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        rank = int(NR * p / 100); if (rank < NR * p / 100) rank++; if (rank < 1) rank = 1
        print v[rank] }'
}

# One line per request the app logged: method, path, status, elapsed_us.
logged_requests() {
    sed -n -E 's/.*request\{method=([A-Z]+) path="?([^" ]*)"?[^}]*\}: .* request status=([0-9]+) elapsed_us=([0-9]+).*/\1 \2 \3 \4/p' \
        "$APP_LOG"
}

# The elapsed_us values the app logged for $2 requests (GET by default) to
# paths matching the regular expression $1.
logged_elapsed_us() {
    logged_requests | awk -v want="$1" -v method="${2:-GET}" '$1 == method && $2 ~ want { print $4 }'
}

# A result row for run.sh's table: bar, measured, target, verdict.
result_row() {
    printf 'RESULT|%s|%s|%s|%s\n' "$1" "$2" "$3" "$4"
}
