#!/usr/bin/env bash
# Writes the secret files that compose.yaml mounts, for a local or hand-run
# deployment (deploy_ec2.sh writes them from AWS Secrets Manager instead).
#
#   bash deploy/init-secrets.sh [DIR]      # DIR defaults to ./secrets
#
# The VirusTotal key comes from VT_API_KEY or, on a terminal, a hidden prompt
# (better: it stays out of the shell's history). OPENAI_API_KEY is optional.
# The Redis password comes from REDIS_PASSWORD, else the one already in DIR,
# else a new random one. Running it again rewrites the files from those.
set -euo pipefail
umask 077

readonly APP_UID=65532  # the app image's user (distroless :nonroot)
readonly REDIS_UID=999  # the redis user of redis:*-alpine

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-${SECRETS_DIR:-$repo_dir/secrets}}

die() {
    printf 'init-secrets: %s\n' "$*" >&2
    exit 1
}

# Whitespace and control characters would not survive a file, a URL and
# redis.conf unchanged.
check_value() {
    if [[ $2 =~ [[:space:][:cntrl:]] ]]; then
        die "$1 contains whitespace or control characters"
    fi
}

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

# Compose bind-mounts each file as it is, so the container's user must be able
# to read it. As root: 0400 and owned by that user. Otherwise: 0444, and the
# 0700 directory keeps other users of this machine out.
write() {
    local name=$1 uid=$2 value=$3 tmp
    tmp=$(mktemp "$dir/.$name.XXXXXX")
    printf '%s' "$value" >"$tmp"
    if [[ $EUID -eq 0 ]]; then
        chown "$uid" "$tmp"
        chmod 0400 "$tmp"
    else
        chmod 0444 "$tmp"
    fi
    mv -f -- "$tmp" "$dir/$name"
    printf '  %s\n' "$dir/$name"
}

vt=${VT_API_KEY:-}
if [[ -z $vt && -t 0 ]]; then
    read -rsp 'VirusTotal API key (hidden; empty to leave scans off): ' vt
    echo
fi
openai=${OPENAI_API_KEY:-}
redis_pw=${REDIS_PASSWORD:-}
if [[ -z $redis_pw && -s $dir/redis_password ]]; then
    redis_pw=$(<"$dir/redis_password")
fi
if [[ -z $redis_pw ]]; then
    # 192 random bits as hex: nothing to escape anywhere.
    redis_pw=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
fi
check_value VT_API_KEY "$vt"
check_value OPENAI_API_KEY "$openai"
check_value REDIS_PASSWORD "$redis_pw"
urlencode "$redis_pw"

mkdir -p -- "$dir"
chmod 0700 "$dir"
# Nothing in here may ever be committed.
printf '*\n' >"$dir/.gitignore"
chmod 0644 "$dir/.gitignore"

echo "Secret files:"
write vt_api_key "$APP_UID" "$vt"
write openai_api_key "$APP_UID" "$openai"
write redis_url "$APP_UID" "redis://:$encoded@redis:6379/0"
write redis_password "$REDIS_UID" "$redis_pw"
[[ -n $vt ]] || echo "No VirusTotal key: the app starts, and says that scans need one."
if [[ $dir != "$repo_dir/secrets" ]]; then
    echo "Point compose at them: SECRETS_DIR=$dir (in the environment or .env)."
fi
