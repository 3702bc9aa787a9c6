#!/usr/bin/env bash
# Runs every check and test on a fresh Debian machine with a Rust toolchain:
# installs what the tests need (Redis; Chromium and chromedriver for the browser
# tests), then the deployment files' static checks, formatting, lints and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_packages+=(chromium-driver)
if [ "${#need_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing: ${need_packages[*]}; install them (apt-get install ${need_packages[*]})" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

bash scripts/check_deploy.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# --all-targets: no doc tests exist, and their empty run would close the output.
cargo test --locked --all-targets
