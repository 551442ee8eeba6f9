#!/usr/bin/env bash
# The test command: installs what is missing, then runs formatting, lints and every
# test (Rust workspace + the pymongo conformance suite). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install.sh

# systemd: systemd-analyze checks deploy/systemd. etcd-client, iproute2, curl: tests/python
# runs the compose services and Kubernetes pods in network namespaces, with their
# healthchecks (etcdctl, c2c-grpc-health over curl).
ensure_apt_packages protobuf-compiler:protoc etcd-server:etcd prometheus:promtool \
  systemd:systemd-analyze etcd-client:etcdctl iproute2:ip curl:curl
ensure_python_venv
# The compose file's validator (the Compose Specification's schema), for tests/python.
dclint="$(ensure_npm_tool dclint@3.1.0 dclint)"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== python clients (pymongo conformance, grpcio against c2c run) and deploy file validators"
# Both binaries come from `cargo test` above (integration tests build their package's
# binaries); a separate `cargo build` could resolve other features and rebuild.
# The compose and Kubernetes runs put their processes in network namespaces, which needs
# root: as another user those two run under sudo, the rest as the user.
deploy_runs=(tests/python/test_compose_demo.py tests/python/test_k8s_manifests_run.py)
export C2C_TESTBED_BIN="$PWD/target/debug/c2c-testbed" C2C_BIN="$PWD/target/debug/c2c" C2C_DCLINT="$dclint"
if [ "$(id -u)" -eq 0 ]; then
  .venv/bin/python -m pytest -q tests/python
else
  .venv/bin/python -m pytest -q tests/python "${deploy_runs[@]/#/--ignore=}"
  as_root env C2C_TESTBED_BIN="$C2C_TESTBED_BIN" C2C_BIN="$C2C_BIN" \
    .venv/bin/python -m pytest -q -p no:cacheprovider "${deploy_runs[@]}"
fi
