#!/usr/bin/env bash
# Memory bar: an upload's memory does not grow with the file; a 650 MB upload
# keeps the process under 64 MiB resident.
#
# Starts the release binary under /usr/bin/time -v, records its resident set at
# idle, then POSTs a small file and a large one (default 650 MiB of random
# bytes, lookup mode) and reads the kernel's peak-RSS counter (VmHWM) after
# each. Last, the large file again as a full scan: the fake VirusTotal does not
# know it, so the app forwards all of it through an upload URL and follows the
# analysis to the end. The counter only ever rises, so if it stays put from the
# small file to the large one, the upload did not cost more memory for being
# larger. /usr/bin/time reports the same counter when the process exits.
# Prints RESULT rows for run.sh.
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
# The fake does not know the files until one has been uploaded to it.
FAKE_VT_ARGS=(--unknown-files)
start_fake_vt
APP_WRAPPER=(/usr/bin/time -v -o "$WORK/time.txt")
APP_EXTRA_ENV=(VT_POLL_SECONDS=1)
start_app

# Idle: after start-up and one page view, once the process has settled.
curl -fsS -o /dev/null "$APP_URL/"
sleep 2
idle_kib=$(proc_kb "$APP_PID" VmRSS)
idle_peak_kib=$(proc_kb "$APP_PID" VmHWM)
log "idle: VmRSS ${idle_kib} KiB, VmHWM ${idle_peak_kib} KiB"

# POSTs file $1 as the upload form does, in mode $2; prints the HTTP status,
# the seconds it took and the scan page's URL.
post_file() {
    curl -sS -o /dev/null -H 'Expect:' -w '%{http_code} %{time_total} %{redirect_url}' \
        -F "file=@$1;type=application/octet-stream" -F "mode=$2" \
        --max-time 600 "$APP_URL/scans"
}

# Uploads file $1 in mode $2 (lookup by default); with "upload", also waits
# (at most 5 minutes) for the scan to end. Prints the peak RSS so far in KiB.
peak_of_upload() {
    local file=$1 mode=${2:-lookup} answer code seconds page tries=3000
    answer=$(post_file "$file" "$mode")
    read -r code seconds page <<<"$answer"
    [[ $code == 303 ]] || die "POST /scans answered $code, not 303"
    log "$(basename "$file") ($mode): 303 in $seconds s; VmRSS now $(proc_kb "$APP_PID" VmRSS) KiB"
    if [[ $mode == upload ]]; then
        until curl -fsS -o "$WORK/scan.html" "$page" &&
            grep -q 'data-status="\(completed\|failed\|not_found\)"' "$WORK/scan.html"; do
            ((tries-- > 0)) || die "the full scan did not end in 5 minutes"
            sleep 0.1
        done
        if ! grep -q 'data-status="completed"' "$WORK/scan.html"; then
            grep -E ' (WARN|ERROR) ' "$APP_LOG" | tail -n 5 >&2
            grep -v 'received an upload' "$WORK/fake-vt.log" >&2 || true
            die "the full scan ended $(grep -o 'data-status="[a-z_]*"' "$WORK/scan.html"), not completed"
        fi
        log "$(basename "$file") ($mode): sent to the fake VirusTotal and completed"
    fi
    proc_kb "$APP_PID" VmHWM
}

small_peak_kib=$(peak_of_upload "$WORK/small.bin")
large_peak_kib=$(peak_of_upload "$WORK/large.bin")
sleep 1
after_kib=$(proc_kb "$APP_PID" VmRSS)
forward_peak_kib=$(peak_of_upload "$WORK/large.bin" upload)
grep -q "received an upload of" "$WORK/fake-vt.log" || die "the file never reached the fake VirusTotal"

# Every path deletes the spooled file once it is done with it.
leftover=$(find "$WORK/uploads" -type f | wc -l)

stop_app
lifetime_peak_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time.txt")

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
verdict=pass
((large_peak_kib < LIMIT_KIB && forward_peak_kib < LIMIT_KIB && lifetime_peak_kib < LIMIT_KIB)) ||
    verdict=FAIL

cat >&2 <<EOF

Memory ($(date -u +%F), release build)
  RSS at idle, after start-up and one page    $(mib "$idle_kib") (peak so far $(mib "$idle_peak_kib"))
  peak RSS so far, after a ${SMALL_MIB} MiB upload      $(mib "$small_peak_kib")
  peak RSS so far, after a ${LARGE_MIB} MiB upload     $(mib "$large_peak_kib")
  RSS after these two uploads                 $(mib "$after_kib")
  peak RSS so far, after a ${LARGE_MIB} MiB full scan  $(mib "$forward_peak_kib")
  peak RSS of the run (/usr/bin/time -v)      $(mib "$lifetime_peak_kib")
  spooled files left in UPLOAD_DIR            $leftover
EOF

result_row "Memory: RSS at idle" "$(mib "$idle_kib")" "-" "-"
result_row "Memory: peak RSS so far, after a ${SMALL_MIB} MiB upload" "$(mib "$small_peak_kib")" "-" "-"
result_row "Memory: peak RSS so far, after a ${LARGE_MIB} MiB upload (lookup)" \
    "$(mib "$large_peak_kib")" "< 64 MiB" "$( ((large_peak_kib < LIMIT_KIB)) && echo pass || echo FAIL)"
result_row "Memory: peak RSS so far, after a ${LARGE_MIB} MiB full scan (file sent on)" \
    "$(mib "$forward_peak_kib")" "< 64 MiB" "$( ((forward_peak_kib < LIMIT_KIB)) && echo pass || echo FAIL)"
result_row "Memory: peak RSS of the run (/usr/bin/time -v)" "$(mib "$lifetime_peak_kib")" \
    "< 64 MiB" "$verdict"
