#!/usr/bin/env bash
# Deploys the file scanner on the EC2 instance it runs on: Docker and the
# compose plugin, keys from AWS Secrets Manager, the app checked out or updated,
# `docker compose up -d --build`, then a wait for /healthz and /readyz.
# Safe to run again: each step checks what is already there. `--dry-run` only
# prints the plan and sends nothing anywhere. Run with -h for the options.
set -euo pipefail
# Everything this script creates is private unless it says otherwise.
umask 077

readonly APP_UID=65532  # the distroless :nonroot user the app image runs as
readonly REDIS_UID=999  # the redis user of the redis:*-alpine image
# Pinned fallbacks for hosts whose packages lack them or ship them too old
# (Amazon Linux 2023 has no compose plugin and an old buildx; Compose 5 builds
# through buildx 0.17 or later). Override with COMPOSE_VERSION/BUILDX_VERSION,
# and set COMPOSE_SHA256/BUILDX_SHA256 to check against a digest you trust
# instead of the release's own checksums.txt.
readonly DEFAULT_COMPOSE_VERSION=v5.6.1
readonly DEFAULT_BUILDX_VERSION=v0.30.1
readonly PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
program=${0##*/}

usage() {
    cat <<EOF
Usage: $program [options]

Deploys the file scanner with Docker Compose on this EC2 instance (Amazon Linux
2023 or Ubuntu), as root. The instance role must allow
secretsmanager:GetSecretValue on the secret, which holds JSON such as
  {"VT_API_KEY": "...", "REDIS_PASSWORD": "...", "OPENAI_API_KEY": "..."}
VT_API_KEY is required; without REDIS_PASSWORD a random one is made once and
kept; OPENAI_API_KEY may be left out.

Options (each also read from the environment variable named after it):
  -s, --secret-id ID     SECRET_ID: the secret's name or ARN (required)
  -r, --region REGION    AWS_REGION: default AWS_DEFAULT_REGION, then the
                         instance's region from the metadata service (IMDSv2)
  -d, --app-dir DIR      APP_DIR: the checkout to deploy; default this script's
                         directory when it holds compose.yaml, or
                         /opt/file-scanner when --repo is given
      --repo URL         APP_REPO: git URL to clone or update APP_DIR from
                         (a private one needs a deploy key or credential
                         helper first; never a token in the URL: it is printed)
      --ref REF          APP_REF: branch, tag or commit to check out; default
                         the remote's default branch (with --repo), or the
                         checkout as it is (without)
      --secrets-dir DIR  SECRETS_DIR: where the key files go
                         (default /etc/file-scanner/secrets, root only)
      --publish ADDR     PUBLISH: host address and port of the app
                         (default 127.0.0.1:8080; put a TLS proxy in front)
      --timeout SECONDS  HEALTH_TIMEOUT: how long to wait for /healthz (180)
  -n, --dry-run          print the plan; install, write and contact nothing
  -h, --help             this text

Other settings (OPENAI_MODEL, TRUSTED_PROXIES, ...) go in APP_DIR/.env, which
compose reads; this script keeps SECRETS_DIR and PUBLISH there and leaves the
rest alone.

Examples:
  sudo SECRET_ID=file-scanner/prod ./deploy_ec2.sh
  sudo ./deploy_ec2.sh -s file-scanner/prod --repo https://example.org/you/file-scanner.git --ref v1.2.0
  ./deploy_ec2.sh --dry-run -s file-scanner/prod -r eu-west-1
EOF
}

SECRET_ID=${SECRET_ID:-}
AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
APP_DIR=${APP_DIR:-}
APP_REPO=${APP_REPO:-}
APP_REF=${APP_REF:-}
SECRETS_DIR=${SECRETS_DIR:-/etc/file-scanner/secrets}
PUBLISH=${PUBLISH:-127.0.0.1:8080}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-180}
DRY_RUN=${DRY_RUN:-0}
COMPOSE_VERSION=${COMPOSE_VERSION:-$DEFAULT_COMPOSE_VERSION}
BUILDX_VERSION=${BUILDX_VERSION:-$DEFAULT_BUILDX_VERSION}
COMPOSE_SHA256=${COMPOSE_SHA256:-}
BUILDX_SHA256=${BUILDX_SHA256:-}
# For testing the script on other machines (scripts/check_deploy.sh).
OS_RELEASE_FILE=${OS_RELEASE_FILE:-/etc/os-release}
LOCK_FILE=${LOCK_FILE:-/run/file-scanner-deploy.lock}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf '%s: error: %s\n' "$program" "$*" >&2
    exit 1
}
dry() { [[ $DRY_RUN == 1 ]]; }

# Prints a command, then runs it unless this is a dry run. Never give it a
# secret: the command line is printed and would show in `ps`.
run() {
    local quoted
    printf -v quoted ' %q' "$@"
    if dry; then
        printf '    [dry-run]%s\n' "$quoted"
    else
        printf '    +%s\n' "$quoted"
        "$@"
    fi
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see -h)"
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
            -n | --dry-run) DRY_RUN=1 ;;
            -s | --secret-id) need_value "$@"; SECRET_ID=$2; shift ;;
            -r | --region) need_value "$@"; AWS_REGION=$2; shift ;;
            -d | --app-dir) need_value "$@"; APP_DIR=$2; shift ;;
            --repo) need_value "$@"; APP_REPO=$2; shift ;;
            --ref) need_value "$@"; APP_REF=$2; shift ;;
            --secrets-dir) need_value "$@"; SECRETS_DIR=$2; shift ;;
            --publish) need_value "$@"; PUBLISH=$2; shift ;;
            --timeout) need_value "$@"; HEALTH_TIMEOUT=$2; shift ;;
            --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
            *) die "unknown argument: $1 (see -h)" ;;
        esac
        shift
    done
}

check_settings() {
    [[ -n $SECRET_ID ]] || die "SECRET_ID is required: --secret-id ID or SECRET_ID=ID (see -h)"
    [[ $HEALTH_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "HEALTH_TIMEOUT must be a number of seconds"
    [[ $SECRETS_DIR == /* ]] || die "SECRETS_DIR must be an absolute path"
    [[ $PUBLISH =~ ^(.+:)?[0-9]+$ ]] || die "PUBLISH must be PORT or ADDRESS:PORT, e.g. 127.0.0.1:8080"
    if [[ -n $AWS_REGION && ! $AWS_REGION =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
        die "AWS_REGION does not look like a region: $AWS_REGION"
    fi
    if ! dry && [[ $EUID -ne 0 ]]; then
        die "run as root (sudo): it installs packages and writes $SECRETS_DIR"
    fi
}

# --- the host -----------------------------------------------------------------

os_family=''
detect_os() {
    local id='' version=''
    if [[ -r $OS_RELEASE_FILE ]]; then
        # Parsed, not sourced: nothing in it gets executed.
        id=$(sed -n 's/^ID=//p' "$OS_RELEASE_FILE" | tr -d '"' | head -n 1)
        version=$(sed -n 's/^VERSION_ID=//p' "$OS_RELEASE_FILE" | tr -d '"' | head -n 1)
    fi
    case $id in
        amzn) [[ $version == 2023* ]] && os_family=dnf ;;
        ubuntu) os_family=apt ;;
    esac
    if [[ -n $os_family ]]; then
        say "Host: $id $version"
    elif dry; then
        say "Host: ${id:-unknown} ${version} is not supported (Amazon Linux 2023 or Ubuntu); a real run stops here"
    else
        die "unsupported OS ${id:-unknown} ${version}: this script knows Amazon Linux 2023 and Ubuntu"
    fi
}

apt_updated=0
pkg_install() {
    case $os_family in
        dnf) run dnf install -y -q "$@" ;;
        apt)
            if [[ $apt_updated == 0 ]]; then
                run apt-get update -q
                apt_updated=1
            fi
            run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
            ;;
        *) note "[dry-run] would install $* with the system's package manager" ;;
    esac
}

# Whether the distribution offers a package (Ubuntu's names differ by release).
pkg_available() {
    case $os_family in
        apt) apt-cache show "$1" >/dev/null 2>&1 ;;
        dnf) dnf list --available "$1" >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

ensure_base_tools() {
    say "Tools: git, jq, curl, AWS CLI"
    local missing=()
    command -v git >/dev/null 2>&1 || missing+=(git)
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [[ $os_family == apt ]] && ! command -v update-ca-certificates >/dev/null 2>&1; then
        missing+=(ca-certificates)
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        pkg_install "${missing[@]}"
    else
        note "already installed"
    fi
    if ! command -v aws >/dev/null 2>&1; then
        case $os_family in
            dnf) pkg_install awscli-2 ;;
            apt)
                # Ubuntu 24.04 dropped the awscli package for a snap.
                if dry || pkg_available awscli; then
                    pkg_install awscli
                else
                    run snap install aws-cli --classic
                fi
                ;;
            *) note "[dry-run] would install the AWS CLI" ;;
        esac
    fi
}

ensure_docker() {
    say "Docker engine"
    if command -v docker >/dev/null 2>&1; then
        note "docker is installed"
    else
        case $os_family in
            dnf) pkg_install docker ;;
            *) pkg_install docker.io ;;
        esac
    fi
    # Enabled at boot: with `restart: unless-stopped` the app comes back by itself.
    run systemctl enable --now docker
    check_memory
}

# The image is built here: a release build of the app takes about 3 GiB of
# memory at its peak (linking, C dependencies) and some minutes on 2 vCPUs.
check_memory() {
    local mem_kb swap_kb
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null || echo 0)
    swap_kb=$(awk '/^SwapTotal:/ { print $2 }' /proc/meminfo 2>/dev/null || echo 0)
    if (((${mem_kb:-0} + ${swap_kb:-0}) < 3 * 1024 * 1024)); then
        note "warning: less than 3 GiB of memory and swap; the image build may run out."
        note "Add swap (e.g. a 2 GiB swap file) or use a larger instance."
    fi
}

# The first version number in a tool's --version output, e.g. 0.30.1.
version_of() {
    grep -Eo '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -n 1
}

buildx_recent_enough() {
    local version major minor
    version=$(docker buildx version 2>/dev/null | version_of) || return 1
    [[ -n $version ]] || return 1
    IFS=. read -r major minor _ <<<"$version"
    ((major > 0 || minor >= 17))
}

# Downloads a CLI plugin from its GitHub release and checks its SHA-256.
install_plugin() {
    local name=$1 repo=$2 version=$3 asset=$4 expected=$5
    local base="https://github.com/$repo/releases/download/$version"
    local tmp
    if dry; then
        note "[dry-run] would download $base/$asset, check its SHA-256, install it as $PLUGIN_DIR/docker-$name"
        return
    fi
    run install -d -m 0755 "$PLUGIN_DIR"
    tmp=$(mktemp -d)
    run curl -fsSL --proto '=https' --retry 3 -o "$tmp/$asset" "$base/$asset"
    if [[ -z $expected ]]; then
        run curl -fsSL --proto '=https' --retry 3 -o "$tmp/checksums.txt" "$base/checksums.txt"
        expected=$(awk -v f="$asset" '{ n = $2; sub(/^\*/, "", n); if (n == f) print $1 }' "$tmp/checksums.txt")
    fi
    [[ -n $expected ]] || die "no checksum for $asset in $base/checksums.txt"
    if ! printf '%s  %s\n' "$expected" "$tmp/$asset" | sha256sum -c --quiet -; then
        rm -rf -- "$tmp"
        die "checksum mismatch for $asset: not installed"
    fi
    run install -m 0755 "$tmp/$asset" "$PLUGIN_DIR/docker-$name"
    rm -rf -- "$tmp"
}

ensure_compose() {
    say "Docker Compose and buildx"
    local machine compose_arch go_arch
    machine=$(uname -m)
    case $machine in
        x86_64 | amd64) compose_arch=x86_64 go_arch=amd64 ;;
        aarch64 | arm64) compose_arch=aarch64 go_arch=arm64 ;;
        *) die "no Docker Compose build for $machine" ;;
    esac
    if dry; then
        note "[dry-run] would check 'docker compose version' and 'docker buildx version' (0.17 or later needed);"
        note "[dry-run] where missing: the distribution's package if it has one, else the pinned release:"
        install_plugin compose docker/compose "$COMPOSE_VERSION" "docker-compose-linux-$compose_arch" "$COMPOSE_SHA256"
        install_plugin buildx docker/buildx "$BUILDX_VERSION" "buildx-$BUILDX_VERSION.linux-$go_arch" "$BUILDX_SHA256"
        return
    fi
    if ! docker compose version >/dev/null 2>&1; then
        local pkg
        for pkg in docker-compose-plugin docker-compose-v2; do
            if pkg_available "$pkg"; then
                pkg_install "$pkg"
                break
            fi
        done
        docker compose version >/dev/null 2>&1 \
            || install_plugin compose docker/compose "$COMPOSE_VERSION" "docker-compose-linux-$compose_arch" "$COMPOSE_SHA256"
    fi
    if ! buildx_recent_enough; then
        local pkg
        for pkg in docker-buildx-plugin docker-buildx; do
            if pkg_available "$pkg"; then
                pkg_install "$pkg"
                break
            fi
        done
        # A plugin in $PLUGIN_DIR wins over the distribution's older one.
        buildx_recent_enough \
            || install_plugin buildx docker/buildx "$BUILDX_VERSION" "buildx-$BUILDX_VERSION.linux-$go_arch" "$BUILDX_SHA256"
    fi
    docker compose version >/dev/null 2>&1 || die "docker compose still does not work"
    buildx_recent_enough || die "docker buildx is still older than 0.17"
    note "$(docker compose version), $(docker buildx version | version_of | sed 's/^/buildx /')"
}

# --- AWS ----------------------------------------------------------------------

resolve_region() {
    [[ -z $AWS_REGION ]] || return 0
    say "AWS region from the instance metadata service (IMDSv2)"
    if dry; then
        note "[dry-run] would ask http://169.254.169.254 for a session token, then placement/region"
        AWS_REGION='<instance region>'
        return
    fi
    local token
    token=$(curl -fsS --max-time 3 -X PUT http://169.254.169.254/latest/api/token \
        -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') \
        || die "no instance metadata service: give --region or AWS_REGION"
    # The token goes through stdin (-H @-), not the command line.
    AWS_REGION=$(printf 'X-aws-ec2-metadata-token: %s\n' "$token" \
        | curl -fsS --max-time 3 -H @- http://169.254.169.254/latest/meta-data/placement/region) \
        || die "could not read the region from instance metadata: give --region"
    unset token
    note "$AWS_REGION"
}

# While secrets are in variables, an outer `bash -x` must not print them.
xtrace_was_on=0
quiet_begin() {
    xtrace_was_on=0
    if [[ $- == *x* ]]; then
        xtrace_was_on=1
        set +x
    fi
}
quiet_end() {
    if [[ $xtrace_was_on == 1 ]]; then
        set -x
    fi
}

# Fails on whitespace and control characters: they would not survive the trip
# through a file, a URL and redis.conf unchanged.
check_secret_value() {
    local name=$1 value=$2
    if [[ $value =~ [[:space:][:cntrl:]] ]]; then
        die "$name in the secret contains whitespace or control characters"
    fi
}

# Percent-encodes $1 into $encoded, byte by byte, for the Redis URL.
encoded=''
urlencode() {
    local LC_ALL=C
    local s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9._~-]) out+=$c ;;
            *)
                printf -v c '%%%02X' "'$c"
                out+=$c
                ;;
        esac
    done
    encoded=$out
}

secrets_changed=0
# Writes $3 to SECRETS_DIR/$1, mode 0400, owned by uid $2 (the container user
# that reads it: compose bind-mounts the file as it is). The 0700 root-owned
# directory keeps everyone else on the host out. Replaced atomically; a change
# is remembered so that the containers are recreated with the new file.
write_secret() {
    local name=$1 uid=$2 value=$3
    local path="$SECRETS_DIR/$name" tmp
    if [[ -f $path && $(stat -c '%u %a' "$path") == "$uid 400" ]] && [[ $(<"$path") == "$value" ]]; then
        note "$path unchanged"
        return
    fi
    tmp=$(mktemp "$SECRETS_DIR/.$name.XXXXXX")
    printf '%s' "$value" >"$tmp"
    chown "$uid" "$tmp"
    chmod 0400 "$tmp"
    mv -f -- "$tmp" "$path"
    secrets_changed=1
    note "$path written (0400, uid $uid)"
}

fetch_secrets() {
    say "Secrets: $SECRET_ID from AWS Secrets Manager ($AWS_REGION) into $SECRETS_DIR"
    local names=("vt_api_key (uid $APP_UID)" "openai_api_key (uid $APP_UID)"
        "redis_url (uid $APP_UID)" "redis_password (uid $REDIS_UID)")
    if dry; then
        run aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$SECRET_ID" \
            --query SecretString --output text
        note "[dry-run] would parse VT_API_KEY, REDIS_PASSWORD, OPENAI_API_KEY with jq (never printed)"
        note "[dry-run] would make $SECRETS_DIR (0700, root) and write, each 0400:"
        local n
        for n in "${names[@]}"; do
            note "[dry-run]   $SECRETS_DIR/$n"
        done
        return
    fi
    run install -d -m 0700 -o root -g root "$SECRETS_DIR"
    chmod 0700 "$SECRETS_DIR"

    quiet_begin
    local json vt openai redis_pw
    printf '    + aws secretsmanager get-secret-value --secret-id %q (output kept in memory)\n' "$SECRET_ID"
    json=$(AWS_PAGER='' aws secretsmanager get-secret-value --region "$AWS_REGION" \
        --secret-id "$SECRET_ID" --query SecretString --output text) \
        || die "could not read secret $SECRET_ID: check its name, the region and the instance role"
    # The JSON goes to jq on stdin; jq's messages could quote it, so they are dropped.
    printf '%s' "$json" | jq -e 'type == "object"' >/dev/null 2>&1 \
        || die "secret $SECRET_ID is not a JSON object such as {\"VT_API_KEY\": \"...\"}"
    vt=$(printf '%s' "$json" | jq -r '.VT_API_KEY // empty | tostring' 2>/dev/null)
    openai=$(printf '%s' "$json" | jq -r '.OPENAI_API_KEY // empty | tostring' 2>/dev/null)
    redis_pw=$(printf '%s' "$json" | jq -r '.REDIS_PASSWORD // empty | tostring' 2>/dev/null)
    unset json
    [[ -n $vt ]] || die "secret $SECRET_ID has no VT_API_KEY"
    check_secret_value VT_API_KEY "$vt"
    check_secret_value OPENAI_API_KEY "$openai"
    if [[ -z $redis_pw ]]; then
        if [[ -s $SECRETS_DIR/redis_password ]]; then
            redis_pw=$(<"$SECRETS_DIR/redis_password")
            note "no REDIS_PASSWORD in the secret: keeping the one made earlier"
        else
            # 192 random bits as hex: nothing to escape anywhere.
            redis_pw=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
            note "no REDIS_PASSWORD in the secret: made a random one"
        fi
    fi
    check_secret_value REDIS_PASSWORD "$redis_pw"
    urlencode "$redis_pw"

    write_secret vt_api_key "$APP_UID" "$vt"
    write_secret openai_api_key "$APP_UID" "$openai"
    write_secret redis_url "$APP_UID" "redis://:$encoded@redis:6379/0"
    write_secret redis_password "$REDIS_UID" "$redis_pw"
    unset vt openai redis_pw
    encoded=''
    quiet_end
}

# --- the app ------------------------------------------------------------------

is_checkout() { [[ -e $1/.git ]]; }
git_in() {
    local dir=$1
    shift
    # The checkout may belong to another user than root.
    run git -c safe.directory="$dir" -C "$dir" "$@"
}

resolve_app_dir() {
    if [[ -z $APP_DIR ]]; then
        if [[ -n $APP_REPO ]]; then
            APP_DIR=/opt/file-scanner
        elif [[ -f $script_dir/compose.yaml ]]; then
            APP_DIR=$script_dir
        else
            die "no app to deploy: give --repo URL, or run this script from a checkout"
        fi
    fi
    APP_DIR=${APP_DIR%/}
    [[ $APP_DIR == /* ]] || APP_DIR="$PWD/$APP_DIR"
}

checkout_app() {
    say "App: $APP_DIR${APP_REPO:+ from $APP_REPO}${APP_REF:+ at $APP_REF}"
    # The checkout holds no secrets: readable by all, like any source tree.
    umask 022
    if [[ -n $APP_REPO ]]; then
        if ! is_checkout "$APP_DIR"; then
            if [[ -d $APP_DIR && -n $(ls -A "$APP_DIR" 2>/dev/null) ]]; then
                die "$APP_DIR exists and is not a git checkout: move it away or pick --app-dir"
            fi
            run git clone --quiet --no-checkout "$APP_REPO" "$APP_DIR"
        else
            git_in "$APP_DIR" remote set-url origin "$APP_REPO"
        fi
        git_in "$APP_DIR" fetch --quiet --tags origin "${APP_REF:-HEAD}"
        git_in "$APP_DIR" checkout --quiet --detach FETCH_HEAD
    elif [[ -n $APP_REF ]]; then
        is_checkout "$APP_DIR" || die "--ref needs $APP_DIR to be a git checkout (or give --repo)"
        git_in "$APP_DIR" fetch --quiet --tags origin "$APP_REF"
        git_in "$APP_DIR" checkout --quiet --detach FETCH_HEAD
    else
        note "deploying the checkout as it is"
    fi
    umask 077
    if ! dry; then
        [[ -f $APP_DIR/compose.yaml ]] || die "$APP_DIR has no compose.yaml"
        if is_checkout "$APP_DIR"; then
            GIT_REVISION=$(git -c safe.directory="$APP_DIR" -C "$APP_DIR" rev-parse HEAD)
            export GIT_REVISION
            note "revision $GIT_REVISION"
        fi
    fi
}

# Keeps KEY=VALUE in APP_DIR/.env, so that a later `docker compose` run by hand
# in APP_DIR sees the same secret files and port. Other lines stay as they are.
set_env_line() {
    local file=$1 key=$2 value=$3 tmp
    if [[ -f $file ]] && grep -qxF "$key=$value" "$file"; then
        return
    fi
    if dry; then
        note "[dry-run] would set $key=$value in $file"
        return
    fi
    tmp=$(mktemp "$file.XXXXXX")
    if [[ -f $file ]]; then
        grep -v "^$key=" "$file" >"$tmp" || true
    fi
    printf '%s=%s\n' "$key" "$value" >>"$tmp"
    chmod 0600 "$tmp"
    mv -f -- "$tmp" "$file"
    note "set $key=$value in $file"
}

compose() {
    run docker compose --project-directory "$APP_DIR" -f "$APP_DIR/compose.yaml" "$@"
}

start_app() {
    say "Compose settings in $APP_DIR/.env"
    set_env_line "$APP_DIR/.env" SECRETS_DIR "$SECRETS_DIR"
    set_env_line "$APP_DIR/.env" PUBLISH "$PUBLISH"
    say "Build and start"
    local args=(up -d --build --remove-orphans)
    # A secret file replaced on disk is not seen by a running container.
    if [[ $secrets_changed == 1 ]]; then
        args+=(--force-recreate)
    fi
    compose "${args[@]}"
}

wait_healthy() {
    local port=${PUBLISH##*:} host=127.0.0.1
    if [[ $PUBLISH == *:* ]]; then
        host=${PUBLISH%:*}
        host=${host#[}
        host=${host%]}
        case $host in
            '' | 0.0.0.0 | '::') host=127.0.0.1 ;;
            *:*) host="[$host]" ;;
        esac
    fi
    local base="http://$host:$port"
    say "Waiting up to ${HEALTH_TIMEOUT}s for $base/healthz and /readyz"
    if dry; then
        note "[dry-run] would poll $base/healthz, then $base/readyz, every 2 s"
        return
    fi
    local deadline=$((SECONDS + HEALTH_TIMEOUT)) path
    for path in /healthz /readyz; do
        until curl -fsS -o /dev/null --max-time 3 "$base$path"; do
            if ((SECONDS >= deadline)); then
                printf '%s: error: %s did not answer in %ss; the containers and the app log:\n' \
                    "$program" "$base$path" "$HEALTH_TIMEOUT" >&2
                compose ps >&2 || true
                compose logs --no-color --tail 60 app >&2 || true
                exit 1
            fi
            sleep 2
        done
        note "$path answers"
    done
}

main() {
    parse_args "$@"
    check_settings
    if dry; then
        say "Dry run: nothing is installed, written or contacted"
    else
        # One deploy at a time.
        exec 9>"$LOCK_FILE"
        flock -n 9 || die "another deploy is running"
    fi
    detect_os
    resolve_app_dir
    ensure_base_tools
    ensure_docker
    ensure_compose
    resolve_region
    fetch_secrets
    checkout_app
    start_app
    wait_healthy
    if dry; then
        say "Dry run done: a real run would leave the file scanner running from $APP_DIR on $PUBLISH"
        return
    fi
    say "Done: the file scanner runs from $APP_DIR on $PUBLISH"
    note "keys in $SECRETS_DIR; data in the volumes file-scanner_app-data and file-scanner_redis-data"
    note "logs: docker compose --project-directory $APP_DIR logs -f app"
    if [[ $PUBLISH == 127.0.0.1:* ]]; then
        note "only this host can reach it: put a TLS reverse proxy in front, and list it in TRUSTED_PROXIES"
    fi
}

main "$@"
