# Dockerfile: builds the api-tokens gRPC server with `cargo build --release --locked` and ships only the binary, without its
# debug info (stage `symbols` keeps that), as user 65532.
#
#   docker build -t api-tokens:0.1.0 .
#   docker run --rm -p 127.0.0.1:50051:50051 -v api-tokens-data:/data api-tokens:0.1.0
#
# Runtime image: gcr.io/distroless/cc-debian12:nonroot rather than debian:bookworm-slim. The
# binary links only glibc, libm and libgcc_s (TLS is rustls, no OpenSSL), all of which "cc"
# carries, and distroless adds nothing else: no shell, no package manager, fewer CVEs to patch,
# and the nonroot variant already runs as 65532. The cost: no shell for `kubectl exec`
# debugging (use `kubectl debug` with an ephemeral container) and no `sleep` for a preStop
# hook (the Helm chart uses Kubernetes' native sleep action). The builder is bookworm too, so
# the binary's glibc (2.36) matches the runtime's.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# build.rs uses a vendored protoc (protoc-bin-vendored): no apt packages are needed.
# .dockerignore keeps target/, .git/, the chart and docs out of the context.
COPY . .
# The cache mounts (BuildKit) keep the crate registry and target/ between builds; the binary is
# copied out of the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -d /out/usr/local/bin /out/symbols \
    && objcopy --only-keep-debug target/release/api-tokens /out/symbols/api-tokens.debug \
    && objcopy --strip-debug --add-gnu-debuglink=/out/symbols/api-tokens.debug \
       target/release/api-tokens /out/usr/local/bin/api-tokens \
    && chmod 0755 /out/usr/local/bin/api-tokens \
    && install -d -m 0750 /out/data

# The debug info the shipped binary leaves out (file and line of every frame), kept as an
# artifact: docker build --target symbols --output type=local,dest=symbols .
# The shipped binary keeps its symbol table, so a backtrace still names every function; the
# file writes in the lines (gdb and addr2line find it through the binary's .gnu_debuglink).
FROM scratch AS symbols
COPY --from=builder /out/symbols/ /

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="api-tokens" \
      org.opencontainers.image.description="API tokens with per-application approval, as a gRPC service" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/usr/local/bin/api-tokens /usr/local/bin/api-tokens
# /data, owned by 65532, is the working directory: the default SQLite URL
# (sqlite://api-tokens.db?mode=rwc) is relative, so the file lands there. Mount a volume on it.
COPY --from=builder --chown=65532:65532 /out/data /data
WORKDIR /data
# The listen address, not a secret (hadolint flags any ENV whose name contains "TOKEN").
# hadolint ignore=DL3064
ENV API_TOKENS_LISTEN=0.0.0.0:50051
USER 65532:65532
# 50051: gRPC (health, reflection, the API). 9090: Prometheus metrics, once the server serves them.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/api-tokens"]
CMD ["serve"]
