# c2c image: the `c2c` binary (run, coordinator, worker, ctl, demo) and the test server
# `c2c-testbed`. Build from the repository root:
#
#     docker build -t c2c:dev .
#
# The image holds no configuration and no credentials: pass the cluster URIs at run time
# (Kubernetes Secret, compose environment, …). See deploy/README.md.
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

FROM rust:1-bookworm AS build
# protoc compiles proto/c2c/v1 (services/api/build.rs). Debian package versions are not
# pinned: bookworm's security updates replace them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cargo registry and target/ live in cache mounts, so a rebuild after a source change
# compiles only what changed; the binaries are copied out of the mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p c2c-coordinator -p c2c-testbed \
    && install -D -m 0755 target/release/c2c target/release/c2c-testbed -t /out/

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="c2c" \
      org.opencontainers.image.description="MongoDB cluster-to-cluster sync with mongosync's REST API, scaled out over workers" \
      org.opencontainers.image.licenses="Apache-2.0"
# ca-certificates: TLS to MongoDB (tls=true URIs). curl: the compose healthchecks
# (c2c-grpc-health speaks gRPC health over h2c with it) and `curl localhost:27182/api/v1/…`.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 c2c \
    && useradd --system --uid 10001 --gid c2c --home-dir /var/lib/c2c --create-home \
       --shell /usr/sbin/nologin c2c
COPY --from=build /out/c2c /out/c2c-testbed /usr/local/bin/
COPY --chmod=0755 deploy/docker/c2c-grpc-health /usr/local/bin/c2c-grpc-health
USER 10001:10001
WORKDIR /var/lib/c2c
# 27182: a coordinator's (or `c2c run`'s) REST + gRPC + health port.
# 27190: a worker's gRPC + health port.
# Change events beyond 64 MiB spill to $TMPDIR (default /tmp): give workers disk there.
EXPOSE 27182 27190
ENTRYPOINT ["c2c"]
CMD ["--help"]
