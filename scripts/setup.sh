#!/usr/bin/env bash
# One-command set-up, safe to repeat: system packages, the application environment
# (.venv: feast 0.67 / numpy 2 / faust / kafka clients / grpc / tritonclient / torch) and
# the local Triton environment (.venv-triton: nvidia-pytriton 0.7.0 / numpy<2 / torch),
# both from exact pins (requirements/*.lock). Re-running skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3.11}
UV_VERSION=0.13.8
say() { printf '[setup] %s\n' "$*" >&2; }

# ---- system packages (Debian): redis-server for the Redis online store; JDK + Maven for Kafka
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing ${need_apt[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || say "apt-get update failed (continuing)"
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
      || say "could not install ${need_apt[*]}: without a JDK/Maven the stack falls back to the Tansu broker"
  else
    say "missing ${need_apt[*]} and no root apt-get: install them, or the stack falls back (Tansu for Kafka)"
  fi
fi

command -v "$PY" >/dev/null || { say "$PY not found: Python 3.11 is required"; exit 1; }

# ---- uv (pinned) inside a small bootstrap venv
if [ ! -x .cache/uv/bin/uv ] || [ "$(.cache/uv/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  say "bootstrapping uv $UV_VERSION"
  rm -rf .cache/uv && "$PY" -m venv .cache/uv && .cache/uv/bin/pip install -q "uv==$UV_VERSION"
fi
UV=.cache/uv/bin/uv
export UV_CACHE_DIR=${UV_CACHE_DIR:-$ROOT/.cache/uv-cache}

# build_env DIR LOCKFILE: create/refresh DIR from the lock unless its stamp matches
build_env() {
  local dir=$1 lock=$2 stamp
  stamp=$(sha256sum "$lock" | cut -c1-16)
  if [ -f "$dir/.lock-stamp" ] && [ "$(cat "$dir/.lock-stamp")" = "$stamp" ]; then
    say "$dir is up to date"
    return
  fi
  say "building $dir from $lock (first time: a few minutes, torch is large)"
  [ -x "$dir/bin/python" ] || "$UV" venv -q --python "$PY" "$dir"
  "$UV" pip sync -q --python "$dir/bin/python" "$lock"
  echo "$stamp" > "$dir/.lock-stamp"
}
build_env .venv requirements/app.lock
build_env .venv-triton requirements/triton.lock

# ---- the project itself (editable), giving the `usr` console script
"$UV" pip install -q --python .venv/bin/python --no-deps -e .
say "ready: .venv/bin/usr $(.venv/bin/python -c 'import usr; print(usr.__version__)')"
