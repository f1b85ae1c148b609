#!/usr/bin/env bash
# Sets up a fresh Debian 12 or 13 machine for picoflow and runs its main job
# or its tests. As root, or as a user with sudo. Idempotent: what is there
# already is not installed again.
#
#   scripts/setup.sh demo   ffmpeg, Go (when missing), then `make demo`
#   scripts/setup.sh go     Go only
#   scripts/setup.sh test   everything the tests use (HyperSpy, xraylib, h5py,
#                           hdf5-tools, Chromium + playwright-core, a single-node
#                           Slurm, PostgreSQL, ONNX Runtime), then `make test`
#
# Go: the version go.mod names, from the Go module proxy's toolchain module
# (golang.org/toolchain) into ~/.local/share/picoflow/go when the machine has
# no Go that new; Debian's Go is too old for it.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup: run as root, or install sudo for this user" >&2; exit 1; }
  SUDO=sudo
fi

apt_updated=""
need() { # need PACKAGE... : install the Debian packages that are missing
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

gover=$(awk '/^toolchain /{sub("go","",$2); print $2; exit} /^go /{print $2; exit}' go.mod)
case "$gover" in *.*.*) ;; *) gover="$gover.0" ;; esac
[ "$gover" = "1.26.0" ] && gover=1.26.8 # the patch release CI uses

have_go() { # have_go: a go on PATH at least as new as go.mod's
  command -v go >/dev/null 2>&1 || return 1
  local v; v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "${gover%.*}" "$v" | sort -V | head -1)" = "${gover%.*}" ]
}

need ca-certificates curl unzip make git
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
if ! have_go; then
  dir="${XDG_DATA_HOME:-$HOME/.local/share}/picoflow/go-$gover"
  if [ ! -x "$dir/bin/go" ]; then
    arch=$(dpkg --print-architecture)
    proxy=$(echo "${GOPROXY:-https://proxy.golang.org}" | cut -d, -f1)
    echo "setup: fetching Go $gover ($arch) from $proxy" >&2
    tmp=$(mktemp -d)
    curl -fsSL "$proxy/golang.org/toolchain/@v/v0.0.1-go$gover.linux-$arch.zip" -o "$tmp/go.zip"
    unzip -q "$tmp/go.zip" -d "$tmp"
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir"
    mv "$tmp/golang.org/toolchain@v0.0.1-go$gover.linux-$arch" "$dir"
    chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/* 2>/dev/null || true
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH" GOTOOLCHAIN=local
  echo "setup: using $dir/bin/go (add it to PATH to use make by hand)" >&2
fi
go version >&2

case "$what" in
go) ;; # only Go, for scripts that need it
demo)
  need ffmpeg
  exec make demo
  ;;
test)
  need python3-hyperspy python3-h5py python3-sparse python3-matplotlib python3-xraylib hdf5-tools chromium ffmpeg zstd
  command -v npm >/dev/null 2>&1 || need nodejs npm
  # playwright-core, pinned by package-lock.json (the browser is Debian's).
  npm ci --no-audit --no-fund
  # A single-node Slurm for the compute provider tests.
  need slurm-wlm munge
  $SUDO ./scripts/start-slurm.sh
  # ONNX Runtime for the YOLO detector, from the npm package (sha256 checked).
  ONNXRUNTIME_LIB=$(scripts/fetch-onnxruntime.sh)
  export ONNXRUNTIME_LIB
  # PostgreSQL: internal/pgtest uses PICOFLOW_TEST_PG, or starts a private
  # server from the same binaries when it is unset.
  need postgresql
  if [ "$(id -u)" = 0 ] && command -v pg_lsclusters >/dev/null 2>&1; then
    ver=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
    name=$(pg_lsclusters -h | awk 'NR==1 {print $2}')
    if [ -n "$ver" ] && pg_ctlcluster "$ver" "$name" start 2>/dev/null || pg_lsclusters -h | grep -q online; then
      for _ in $(seq 100); do pg_isready -h 127.0.0.1 -q && break; sleep 0.2; done
      su postgres -c "psql -qc \"create user picoflow with password 'picoflow' superuser\"" >/dev/null 2>&1 || true
      su postgres -c "createdb -O picoflow picoflow" >/dev/null 2>&1 || true
      if pg_isready -h 127.0.0.1 -q; then
        export PICOFLOW_TEST_PG='postgres://picoflow:picoflow@127.0.0.1:5432/picoflow?sslmode=disable'
      fi
    fi
  fi
  exec make test
  ;;
*)
  echo "usage: scripts/setup.sh demo|test|go" >&2
  exit 2
  ;;
esac
