#!/usr/bin/env bash
# Pages bar: a scan page renders from storage in well under a millisecond of
# server time.
#
# Makes one completed scan (a hash search answered by the fake VirusTotal with
# a 72-engine report), then loads its page with wrk for a fixed time over a few
# keep-alive connections, sending the owner's browser_id cookie as a browser
# would. Reports wrk's requests/s and latency percentiles, the app's CPU time
# per page (from /proc), and the median of the app's own per-request log field
# elapsed_us, which is the server time the bar is about. Prints RESULT rows.
#
# Settings: BENCH_PAGES_SECONDS (10), BENCH_PAGES_CONNECTIONS (4).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_LOADED=${BENCH_PAGES_SECONDS:-10}
CONNECTIONS=${BENCH_PAGES_CONNECTIONS:-4}

ensure_tools curl:curl python3:python3 wrk:wrk
build_release
setup_work
start_fake_vt
start_app

make_completed_scan "file-scanner page benchmark"
page_url=$PAGE_URL
browser_id=$BROWSER_ID
page_bytes=$(wc -c <"$WORK/page.html")
engines=$(grep -o '<tr' "$WORK/page.html" | wc -l)
log "scan page ${page_url#"$APP_URL"}: $page_bytes bytes, $engines table rows"

# Measure only the wrk requests: remember where the log and the CPU clock were.
log_lines_before=$(wc -l <"$APP_LOG")
ticks_before=$(app_cpu_ticks)

log "wrk: ${SECONDS_LOADED} s, $CONNECTIONS connections, 2 threads"
run_bounded "$((SECONDS_LOADED + 30))" wrk --threads 2 --connections "$CONNECTIONS" \
    --duration "${SECONDS_LOADED}s" --timeout 2s --latency \
    --header "Cookie: browser_id=$browser_id" "$page_url" >"$WORK/wrk.txt"
ticks_after=$(app_cpu_ticks)
cat "$WORK/wrk.txt" >&2
sleep 0.5

if grep -q 'Non-2xx' "$WORK/wrk.txt"; then
    die "some pages were not 200: $(grep 'Non-2xx' "$WORK/wrk.txt")"
fi
requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.txt")
rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$WORK/wrk.txt")
pct() { awk -v p="$1%" '$1 == p { print $2 }' "$WORK/wrk.txt"; }
p50=$(pct 50) p90=$(pct 90) p99=$(pct 99)
cpu_us=$(awk -v t="$((ticks_after - ticks_before))" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.0f", t / hz * 1e6 / n }')

# The app's own server time for each page it served under load.
tail -n +"$((log_lines_before + 1))" "$APP_LOG" >"$WORK/load.log"
APP_LOG="$WORK/load.log" logged_elapsed_us '^/scans/[0-9a-f-]+$' GET >"$WORK/elapsed.txt"
logged=$(wc -l <"$WORK/elapsed.txt")
elapsed_p50=$(median <"$WORK/elapsed.txt")
elapsed_p99=$(percentile 99 <"$WORK/elapsed.txt")

verdict=pass
awk -v us="$elapsed_p50" 'BEGIN { exit !(us < 500) }' || verdict=FAIL

cat >&2 <<EOF

Scan page ($(date -u +%F), $page_bytes bytes, $engines table rows, ${SECONDS_LOADED} s, $CONNECTIONS connections)
  throughput                                  $rps pages/s ($requests pages)
  wrk latency p50 / p90 / p99                 $p50 / $p90 / $p99
  app CPU time per page (utime + stime)       $cpu_us us
  app elapsed_us, median / p99 ($logged lines) $elapsed_p50 / $elapsed_p99 us
EOF

result_row "Pages: scan page throughput ($CONNECTIONS conns)" "$rps pages/s" "-" "-"
result_row "Pages: wrk latency p50 / p90 / p99" "$p50 / $p90 / $p99" "-" "-"
result_row "Pages: app CPU time per page" "$cpu_us us" "-" "-"
result_row "Pages: server time (elapsed_us) median / p99" \
    "$elapsed_p50 / $elapsed_p99 us" "well under 1 ms (< 500 us)" "$verdict"
