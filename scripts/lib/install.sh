# Shared install helpers for scripts/*.sh: install only what is missing.

# sudo when not root and sudo exists.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# ensure_apt_packages package:binary ... — apt-get install the packages whose binary is missing.
ensure_apt_packages() {
  local missing=()
  for pair in "$@"; do
    local package="${pair%%:*}" binary="${pair##*:}"
    command -v "$binary" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# A project-local virtualenv with pymongo, grpcio, pytest, schemathesis and h2 (second,
# independent clients, and the fuzzers of the REST and gRPC APIs) and kubernetes-validate
# (the deploy manifests against Kubernetes' API schemas).
ensure_python_venv() {
  command -v python3 >/dev/null 2>&1 || ensure_apt_packages python3:python3
  if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    ensure_apt_packages python3-venv:/nonexistent
  fi
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  # Every module tests/python imports: a venv made before a requirement was added is topped up.
  if ! .venv/bin/python -c "import pymongo, pytest, grpc, grpc_reflection, grpc_health, google.protobuf, schemathesis, h2, kubernetes_validate" >/dev/null 2>&1; then
    echo "== installing tests/python/requirements.txt (pymongo, pytest, grpcio, schemathesis, h2, kubernetes-validate)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
  fi
}

# ensure_npm_tool package@version binary — a pinned npm package under .tools/npm (git-ignored),
# installed when its binary is missing; prints the binary's path.
ensure_npm_tool() {
  local spec="$1" binary="$2" prefix=".tools/npm"
  if [ ! -x "$prefix/node_modules/.bin/$binary" ]; then
    command -v npm >/dev/null 2>&1 || ensure_apt_packages nodejs:node npm:npm
    echo "== installing $spec (npm)" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --silent "$spec" >&2
  fi
  echo "$PWD/$prefix/node_modules/.bin/$binary"
}
