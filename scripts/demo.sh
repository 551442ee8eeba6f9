#!/usr/bin/env bash
# The main job: two embedded test clusters, sample data, a real sync, commit and live
# progress. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install.sh
ensure_apt_packages protobuf-compiler:protoc etcd-server:etcd
cargo build --release -p c2c-testbed
if [ ! -x target/release/c2c ]; then
  cat >&2 <<'MSG'
c2c demo is not available yet: the sync engine and the `c2c` binary arrive with the
engine issue. What works today is the test server:
  target/release/c2c-testbed --port 27017
MSG
  exit 2
fi
exec target/release/c2c demo
