#!/usr/bin/env bash
# The main job: two embedded test clusters, sample data, a real sync driven through the
# REST API, live progress and a verified result. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install.sh
ensure_apt_packages protobuf-compiler:protoc etcd-server:etcd
cargo build --release -p c2c-coordinator --bin c2c
exec target/release/c2c demo "$@"
