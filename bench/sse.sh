#!/usr/bin/env bash
# SSE bar: the server adds no measurable delay between an LLM token and its
# SSE event.
#
# sse_probe.py is both a fake OpenAI-compatible server (numbered tokens, one
# every 20 ms) and a client of the app's summary stream, on one clock. It first
# reads the fake's tokens directly (the baseline: what a Python client on this
# machine sees with no app in between), then through the app's
# /scans/{id}/summary/stream. The difference is what the app adds.
# Prints RESULT rows for run.sh.
#
# Settings: BENCH_SSE_TOKENS (100), BENCH_SSE_INTERVAL_MS (20).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOKENS=${BENCH_SSE_TOKENS:-100}
INTERVAL_MS=${BENCH_SSE_INTERVAL_MS:-20}

ensure_tools curl:curl python3:python3
build_release
setup_work
start_fake_vt

python3 "$BENCH_DIR/sse_probe.py" --port-file "$WORK/llm.port" \
    --target-file "$WORK/stream.url" --tokens "$TOKENS" --interval-ms "$INTERVAL_MS" \
    --timeout 60 >"$WORK/sse.json" 2>"$WORK/sse.log" &
probe_pid=$!
BENCH_PIDS+=("$probe_pid")
tries=100
until [[ -s $WORK/llm.port ]]; do
    ((tries-- > 0)) || die "the fake LLM did not start"
    sleep 0.1
done

APP_EXTRA_ENV=(OPENAI_BASE_URL="http://127.0.0.1:$(<"$WORK/llm.port")/v1" OPENAI_MODEL=bench-model)
start_app
make_completed_scan "file-scanner sse benchmark"
echo "$PAGE_URL/summary/stream" >"$WORK/stream.url.part"
mv "$WORK/stream.url.part" "$WORK/stream.url"

log "streaming $TOKENS tokens, one every $INTERVAL_MS ms"
wait_gone "$probe_pid" 90 || die "the SSE probe did not finish in 90 s"
wait "$probe_pid" || { cat "$WORK/sse.log" >&2; die "the SSE probe failed"; }
forget_pid "$probe_pid"

read -r direct_p50 direct_p99 app_p50 app_p99 added events < <(
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
d, a = r["direct"], r["through_app"]
if a["matched"] != r["tokens"]:
    sys.exit("only %d of %d tokens came through the app" % (a["matched"], r["tokens"]))
print(d["median_ms"], d["p99_ms"], a["median_ms"], a["p99_ms"],
      round(a["median_ms"] - d["median_ms"], 3), a["events"])
' "$WORK/sse.json"
)

verdict=pass
awk -v ms="$added" 'BEGIN { exit !(ms < 1) }' || verdict=FAIL

cat >&2 <<EOF

SSE ($(date -u +%F), $TOKENS tokens, one every $INTERVAL_MS ms, $events chunk events)
  token to client, fake read directly         median $direct_p50 ms, p99 $direct_p99 ms
  token to client, through the app's SSE      median $app_p50 ms, p99 $app_p99 ms
  added by the app (median)                   $added ms
EOF

result_row "SSE: token to event, direct (baseline) p50 / p99" "$direct_p50 / $direct_p99 ms" "-" "-"
result_row "SSE: token to event, through the app p50 / p99" "$app_p50 / $app_p99 ms" "-" "-"
result_row "SSE: delay added by the app (median)" "$added ms" "not measurable (< 1 ms)" "$verdict"
