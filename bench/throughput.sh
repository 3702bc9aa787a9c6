#!/usr/bin/env bash
# Throughput bar: ingesting an upload (spool to disk + SHA-256, SHA-1 and MD5)
# runs at a large share of what sha256sum does on the same bytes.
#
# hyperfine times `sha256sum FILE` against a curl POST of the same file to the
# running app (lookup mode; the 303 comes only after the whole body has been
# hashed and written to the spool file). The file stays in the page cache for
# both, after a warm-up run. The app's own elapsed_us for POST /scans gives the
# server-side ingest rate without curl's share. Prints RESULT rows for run.sh.
#
# Settings: BENCH_THROUGHPUT_MIB (256), BENCH_RUNS (5), BENCH_TMPDIR (/tmp).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB=${BENCH_THROUGHPUT_MIB:-256}
RUNS=${BENCH_RUNS:-5}

ensure_tools curl:curl python3:python3 hyperfine:hyperfine sha256sum:coreutils
build_release
setup_work

FILE="$WORK/payload.bin"
BYTES=$((SIZE_MIB * 1024 * 1024))
log "writing ${SIZE_MIB} MiB of random bytes under $WORK"
head -c "$BYTES" /dev/urandom >"$FILE"

export MAX_UPLOAD_BYTES=$BYTES
start_fake_vt
start_app

log "hyperfine: sha256sum vs POST /scans, $RUNS runs each"
ticks_before=$(app_cpu_ticks)
run_bounded 900 hyperfine --shell=none --warmup 1 --runs "$RUNS" --style basic \
    --export-json "$WORK/hyperfine.json" \
    --command-name sha256sum "sha256sum $FILE" \
    --command-name 'POST /scans' \
    "curl -sS -f -o /dev/null -H Expect: -F file=@$FILE -F mode=lookup $APP_URL/scans" >&2

ticks_after=$(app_cpu_ticks)
# The app's CPU seconds per POST (the warm-up included), against its wall time.
cpu_s=$(awk -v t="$((ticks_after - ticks_before))" -v hz="$(getconf CLK_TCK)" -v n="$((RUNS + 1))" \
    'BEGIN { printf "%.2f", t / hz / n }')

# Every POST must have been a 303 (curl -f only catches errors).
posts=$(logged_elapsed_us '^/scans$' POST | wc -l)
answered=$(logged_requests | awk '$1 == "POST" && $2 == "/scans" && $3 == 303' | wc -l)
((posts == RUNS + 1 && answered == posts)) ||
    die "expected $((RUNS + 1)) POSTs answered 303, found $answered of $posts"

# The warm-up run is the first; the figures are from the measured runs.
server_us=$(logged_elapsed_us '^/scans$' POST | tail -n "$RUNS" | median)

# What the disk allows: writing the same bytes to the directory the app spools
# to, synced, for reference (the spool itself is flushed, not synced).
log "dd: writing ${SIZE_MIB} MiB to UPLOAD_DIR with fsync"
disk_s=$( { TIMEFORMAT=%R; time dd if="$FILE" of="$WORK/uploads/dd.bin" bs=1M conv=fsync status=none; } 2>&1 )
rm -f -- "$WORK/uploads/dd.bin"
disk_mbs=$(awk -v b="$BYTES" -v s="$disk_s" 'BEGIN { printf "%.0f", b / s / 1e6 }')
read -r sha_mbs post_mbs server_mbs ratio server_ratio < <(
    python3 - "$WORK/hyperfine.json" "$BYTES" "$server_us" <<'EOF'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
size = int(sys.argv[2])
server_s = float(sys.argv[3]) / 1e6
sha = size / results["sha256sum"]["median"] / 1e6
post = size / results["POST /scans"]["median"] / 1e6
server = size / server_s / 1e6
print(f"{sha:.0f} {post:.0f} {server:.0f} {post / sha:.2f} {server / sha:.2f}")
EOF
)

verdict=pass
awk -v r="$ratio" 'BEGIN { exit !(r >= 0.5) }' || verdict=FAIL

cat >&2 <<EOF

Throughput ($(date -u +%F), ${SIZE_MIB} MiB file, median of $RUNS runs, MB = 10^6 bytes)
  sha256sum                                   $sha_mbs MB/s
  curl POST /scans (spool + 3 hashes)        $post_mbs MB/s   ratio $ratio
  app's own elapsed_us for POST /scans        $server_mbs MB/s   ratio $server_ratio
  disk alone (dd with fsync, for reference)   $disk_mbs MB/s
  app CPU time per POST (user + system)       $cpu_s s, for $(awk -v u="$server_us" 'BEGIN { printf "%.2f", u / 1e6 }') s of server time
EOF

result_row "Throughput: sha256sum, ${SIZE_MIB} MiB" "$sha_mbs MB/s" "-" "-"
result_row "Throughput: curl POST /scans, ${SIZE_MIB} MiB" \
    "$post_mbs MB/s (${ratio}x sha256sum)" ">= 0.5x sha256sum" "$verdict"
result_row "Throughput: server time of POST /scans" "$server_mbs MB/s (${server_ratio}x sha256sum)" "-" "-"
result_row "Throughput: disk write + fsync (dd), for reference" "$disk_mbs MB/s" "-" "-"
result_row "Throughput: app CPU time per ${SIZE_MIB} MiB POST" "$cpu_s s" "-" "-"
