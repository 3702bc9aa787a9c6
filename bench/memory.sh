#!/usr/bin/env bash
# Memory bar: an upload's memory does not grow with the file; a 650 MB upload
# keeps the process under 64 MiB resident.
#
# Starts the release binary under /usr/bin/time -v, records its resident set at
# idle, then POSTs a small file and a large one (default 650 MiB of random
# bytes, lookup mode) and reads the kernel's peak-RSS counter (VmHWM) after
# each. The counter is reset between the two uploads when the kernel allows it,
# so each peak belongs to one upload. Prints RESULT rows for run.sh.
#
# Settings: BENCH_MEMORY_MIB (650), BENCH_SMALL_MIB (16), BENCH_TMPDIR (/tmp).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LARGE_MIB=${BENCH_MEMORY_MIB:-650}
SMALL_MIB=${BENCH_SMALL_MIB:-16}
LIMIT_KIB=$((64 * 1024))

ensure_tools curl:curl python3:python3 /usr/bin/time:time pgrep:procps
build_release
setup_work

log "writing ${SMALL_MIB} MiB and ${LARGE_MIB} MiB of random bytes under $WORK"
head -c "$((SMALL_MIB * 1024 * 1024))" /dev/urandom >"$WORK/small.bin"
head -c "$((LARGE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/large.bin"

export MAX_UPLOAD_BYTES=$((LARGE_MIB * 1024 * 1024))
start_fake_vt
APP_WRAPPER=(/usr/bin/time -v -o "$WORK/time.txt")
start_app

# Idle: after start-up and one page view, once the process has settled.
curl -fsS -o /dev/null "$APP_URL/"
sleep 2
idle_kib=$(proc_kb "$APP_PID" VmRSS)
log "idle: VmRSS ${idle_kib} KiB"

# Resets VmHWM to the current RSS (Linux: "5" to clear_refs). Says if it could.
reset_peak() {
    { echo 5 >"/proc/$APP_PID/clear_refs"; } 2>/dev/null
}

# POSTs file $1 as the upload form does; prints the HTTP status and seconds.
post_file() {
    curl -sS -o /dev/null -H 'Expect:' -w '%{http_code} %{time_total}' \
        -F "file=@$1;type=application/octet-stream" -F mode=lookup \
        --max-time 600 "$APP_URL/scans"
}

peak_of_upload() {
    local file=$1 answer
    reset_peak || log "cannot reset VmHWM: peaks include start-up"
    answer=$(post_file "$file")
    [[ ${answer%% *} == 303 ]] || die "POST /scans answered ${answer%% *}, not 303"
    log "$(basename "$file"): 303 in ${answer#* } s; VmRSS now $(proc_kb "$APP_PID" VmRSS) KiB"
    proc_kb "$APP_PID" VmHWM
}

small_peak_kib=$(peak_of_upload "$WORK/small.bin")
large_peak_kib=$(peak_of_upload "$WORK/large.bin")
sleep 1
after_kib=$(proc_kb "$APP_PID" VmRSS)

# The lookup mode deletes the spooled file as soon as it is hashed.
leftover=$(find "$WORK/uploads" -type f | wc -l)

stop_app
lifetime_peak_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
verdict=pass
((large_peak_kib < LIMIT_KIB && lifetime_peak_kib < LIMIT_KIB)) || verdict=FAIL

cat >&2 <<EOF

Memory ($(date -u +%F), release build)
  idle RSS after start-up and one page        $(mib "$idle_kib")
  peak RSS during a ${SMALL_MIB} MiB upload             $(mib "$small_peak_kib")
  peak RSS during a ${LARGE_MIB} MiB upload            $(mib "$large_peak_kib")
  RSS after the uploads                       $(mib "$after_kib")
  lifetime peak (/usr/bin/time -v)            $(mib "$lifetime_peak_kib")
  spooled files left in UPLOAD_DIR            $leftover
EOF

result_row "Memory: RSS at idle" "$(mib "$idle_kib")" "-" "-"
result_row "Memory: peak RSS, ${SMALL_MIB} MiB upload" "$(mib "$small_peak_kib")" "-" "-"
result_row "Memory: peak RSS, ${LARGE_MIB} MiB upload" \
    "$(mib "$large_peak_kib") (process lifetime $(mib "$lifetime_peak_kib"))" "< 64 MiB" "$verdict"
