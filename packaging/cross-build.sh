#!/usr/bin/env bash
# Cross-builds snbox for the box's ARM CPUs and runs each binary under qemu-user:
# `--version`, `config explain` on the example, and a 10-second `run` on the standalone
# example answering /healthz. Then packages each as a .deb (build-deb.sh).
#
#   packaging/cross-build.sh [aarch64-unknown-linux-gnu] [armv7-unknown-linux-gnueabihf]
#
# Route: rustup's target standard libraries, Debian's cross gcc as linker and as CC for the
# bundled SQLite and ring, qemu-user-static to run. (`cross` needs Docker.) The binaries need
# glibc >= 2.34 on the box: Debian 12, Ubuntu 22.04, Raspberry Pi OS bookworm.
# Exit 3 when the targets cannot be fetched (no route to static.rust-lang.org).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

gnu_of() { case $1 in aarch64-unknown-linux-gnu) echo aarch64-linux-gnu ;; armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf ;; esac; }
deb_of() { case $1 in aarch64-unknown-linux-gnu) echo arm64 ;; armv7-unknown-linux-gnueabihf) echo armhf ;; esac; }
qemu_of() { case $1 in aarch64-unknown-linux-gnu) echo qemu-aarch64-static ;; armv7-unknown-linux-gnueabihf) echo qemu-arm-static ;; esac; }

if [ "$(id -u)" = 0 ]; then
  packages="qemu-user-static curl"
  for t in "${targets[@]}"; do
    g=$(gnu_of "$t"); a=$(deb_of "$t")
    # libc6-dev-*-cross is only recommended by gcc-*: name it (--no-install-recommends).
    packages="$packages gcc-$g libc6-dev-$a-cross"
  done
  missing=""
  for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi
if ! rustup target add "${targets[@]}" >/dev/null 2>&1; then
  echo "cross-build.sh: rustup cannot fetch the ARM standard libraries here" >&2
  exit 3
fi

for t in "${targets[@]}"; do
  g=$(gnu_of "$t"); a=$(deb_of "$t"); q=$(qemu_of "$t")
  upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
  echo "== $t: cargo build --release"
  env "CARGO_TARGET_${upper}_LINKER=$g-gcc" "CC_${t//-/_}=$g-gcc" "AR_${t//-/_}=$g-ar" \
    cargo build --release --locked --target "$t" --bin snbox
  bin="target/$t/release/snbox"
  size=$(stat -c %s "$bin")
  echo "== $t: $(( size / 1024 )) KiB; under $q"
  # -L: the target's libc; LD_LIBRARY_PATH: or a multiarch libc makes qemu hang.
  runq() { timeout 60 "$q" -L "/usr/$g" -E "LD_LIBRARY_PATH=/usr/$g/lib" "$bin" "$@"; }
  runq --version
  runq config explain --monitoring config/standalone.json --format json >/dev/null
  state=$(mktemp -d)
  port=$(( 20000 + RANDOM % 20000 ))
  printf 'state_dir = "%s"\n[standalone]\ndocument = "%s"\n[status]\nlisten = "127.0.0.1:%s"\n' \
    "$state" "$repo/config/standalone.json" "$port" > "$state/snbox.toml"
  timeout -s TERM 10 "$q" -L "/usr/$g" -E "LD_LIBRARY_PATH=/usr/$g/lib" "$bin" run --config "$state/snbox.toml" \
    2>"$state/log" &
  daemon=$!
  healthy=""
  for _ in $(seq 1 80); do
    if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then healthy=yes; break; fi
    sleep 0.1
  done
  wait "$daemon" || true
  if [ -z "$healthy" ]; then
    echo "$t: /healthz never answered under qemu; log:" >&2; cat "$state/log" >&2; exit 1
  fi
  echo "== $t: /healthz answered under qemu"
  rm -rf "$state"
  bash packaging/build-deb.sh --binary "$bin" --arch "$a" --out target/deb
done
