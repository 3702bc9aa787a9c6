#!/usr/bin/env bash
# Runs every benchmark against the release build and prints one table.
#
#   bash bench/run.sh                 # all of them
#   bash bench/run.sh memory pages    # some of them: memory throughput pages sse
#
# Each benchmark is its own script (bench/<name>.sh) that can also be run on
# its own; this one builds once, runs them in turn, and gathers the RESULT
# rows they print into a Markdown table, with the machine it ran on.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$BENCH_DIR/lib.sh"

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(memory throughput pages sse)
for name in "${names[@]}"; do
    [[ -f $BENCH_DIR/$name.sh ]] || die "no benchmark called $name"
done

ensure_tools cargo:cargo
build_release
export BENCH_SKIP_BUILD=1

rows=$(mktemp "${TMPDIR:-/tmp}/file-scanner-bench-rows.XXXXXX")
trap 'rm -f -- "$rows"' EXIT

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
    log "warning: load average ${load_before%% *} on $(nproc) CPUs; other work will skew the figures"
fi
failed=()
for name in "${names[@]}"; do
    log "=== $name"
    if ! bash "$BENCH_DIR/$name.sh" | grep '^RESULT|' >>"$rows"; then
        failed+=("$name")
    fi
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "File scanner benchmarks, $(date -u '+%F %H:%M UTC'); $(nproc) CPUs ($cpu);" \
    "load average at the start: $load_before"
echo
echo "| measure | figure | bar | verdict |"
echo "|---|---|---|---|"
while IFS='|' read -r _ measure figure bar verdict; do
    echo "| $measure | $figure | $bar | $verdict |"
done <"$rows"

if [[ ${#failed[@]} -gt 0 ]]; then
    log "these benchmarks did not finish: ${failed[*]}"
    exit 1
fi
