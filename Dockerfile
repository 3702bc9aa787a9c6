# File scanner: a small, non-root image that holds only the release binary
# (templates and static files are compiled into it).
#
#   docker build -t file-scanner .
#   docker compose up -d --build        # with Redis, secrets and a hardened runtime
#
# No BuildKit-only syntax is used, so any builder can build this file.

# The builder is Debian bookworm, like the runtime below, so the binary links
# against the same glibc it runs with. To bump Rust, change RUST_VERSION (or
# pass --build-arg RUST_VERSION=1.xx): keep it at or above `rust-version` in
# Cargo.toml, and keep the `-slim-bookworm` suffix while the runtime is
# debian12 (moving to trixie means cc-debian13 below, both together).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /build
# A smaller binary; symbols are of no use in the image.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

# Dependencies first, built against stub sources: this slow layer is reused
# until Cargo.toml or Cargo.lock changes, so code changes rebuild only the crate.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && printf 'fn main() {}\n' > src/main.rs \
    && : > src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# Everything the crate compiles in. If it gains another build input
# (build.rs, askama.toml, ...), copy it here too; scripts/check_deploy.sh checks.
COPY src ./src
COPY templates ./templates
COPY static ./static
# COPY keeps the files' old mtimes: touch them so that cargo rebuilds the crate
# instead of keeping the stub it built above.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -d -m 0700 /rootfs/data /rootfs/uploads

# Runtime: distroless "cc" rather than debian-slim plus a user, because it has
# exactly what a Rust binary needs (glibc, libgcc, CA certificates for HTTPS to
# VirusTotal and OpenAI, tzdata) and no shell or package manager to abuse, and
# its :nonroot tag already runs as uid/gid 65532. The price: no shell or curl
# for a HEALTHCHECK (see below).
FROM gcr.io/distroless/cc-debian12:nonroot

ARG REVISION=unknown
LABEL org.opencontainers.image.title="file-scanner" \
      org.opencontainers.image.description="A self-hostable web app that checks files against VirusTotal and explains the answer" \
      org.opencontainers.image.licenses="GPL-3.0-or-later" \
      org.opencontainers.image.revision="${REVISION}"

# Owned by root: the app user cannot replace its own binary.
COPY --from=builder /build/target/release/file-scanner /usr/local/bin/file-scanner
# Writable by the app user. A new named volume mounted on /data copies this
# ownership; compose puts a tmpfs owned by the same uid on /uploads.
COPY --from=builder --chown=65532:65532 /rootfs/data /data
COPY --from=builder --chown=65532:65532 /rootfs/uploads /uploads

# Listen on every interface inside the container; publishing decides who can reach it.
ENV BIND=0.0.0.0:8080 \
    DATA_DIR=/data \
    UPLOAD_DIR=/uploads \
    RUST_LOG=info

USER 65532:65532
EXPOSE 8080
# The app stops accepting connections on SIGTERM and lets in-flight requests
# finish (up to 30 s): give it that long before a SIGKILL (compose does).
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the image has no shell or HTTP client to run one. Probe
# GET /healthz (liveness) and GET /readyz (storage answers) from outside:
# a load balancer, an orchestrator, or deploy_ec2.sh after a deploy.
ENTRYPOINT ["/usr/local/bin/file-scanner"]
