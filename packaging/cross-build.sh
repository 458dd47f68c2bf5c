#!/usr/bin/env bash
# Cross-builds snbox for the box's ARM CPUs and runs each binary under qemu-user:
# `--version`, `config explain` on the example, and a 10-second `run` on the standalone
# example answering /healthz. Then packages each as a .deb (build-deb.sh).
#
#   packaging/cross-build.sh [aarch64-unknown-linux-gnu] [armv7-unknown-linux-gnueabihf]
#
# Two routes (docs/PACKAGING.md); `cross` needs Docker, which the build machines lack.
#  1. rustup: the targets' standard libraries from rustup, Debian's cross gcc as linker and as
#     CC for the bundled SQLite and ring. Preferred.
#  2. debian: when rustup cannot fetch the targets, Debian's rustc-web/cargo-web with the
#     target standard library of the same Debian version (libstd-rust-web-dev:<arch>), unpacked
#     from its .deb into a private sysroot. rustup's rustc cannot load Debian's std (E0514),
#     so this route builds with Debian's compiler: the crate's rust-version must stay <= it.
# SNBOX_CROSS_ROUTE=rustup|debian forces one route. Exit 3 when neither can be set up.
# The binaries need glibc >= 2.34 on the box: Debian 12, Ubuntu 22.04, Raspberry Pi OS bookworm.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
route=${SNBOX_CROSS_ROUTE:-}
sysroot_base=/opt/snbox-rust-web

gnu_of() { case $1 in aarch64-unknown-linux-gnu) echo aarch64-linux-gnu ;; armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf ;; *) echo "unknown target $1" >&2; exit 2 ;; esac; }
deb_of() { case $1 in aarch64-unknown-linux-gnu) echo arm64 ;; armv7-unknown-linux-gnueabihf) echo armhf ;; esac; }
qemu_of() { case $1 in aarch64-unknown-linux-gnu) echo qemu-aarch64-static ;; armv7-unknown-linux-gnueabihf) echo qemu-arm-static ;; esac; }

apt_install() {
  [ "$(id -u)" = 0 ] || return 0
  local missing="" p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -n "$missing" ] || return 0
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

packages="qemu-user-static curl"
for t in "${targets[@]}"; do
  # libc6-dev-*-cross is only recommended by gcc-*: name it (--no-install-recommends).
  packages="$packages gcc-$(gnu_of "$t") libc6-dev-$(deb_of "$t")-cross"
done
apt_install $packages

cargo_cmd=(cargo)
declare -A rustflags
if [ "$route" != debian ] && rustup target add "${targets[@]}" >/dev/null 2>&1; then
  route=rustup
elif [ "$route" = rustup ]; then
  echo "cross-build.sh: rustup cannot fetch the ARM standard libraries here" >&2
  exit 3
else
  route=debian
  echo "== route 2: Debian's rustc-web with libstd-rust-web-dev in a private sysroot"
  apt_install rustc-web cargo-web xz-utils gpgv debian-archive-keyring || exit 3
  [ -x /usr/bin/rustc ] && dpkg -S /usr/bin/rustc 2>/dev/null | grep -q '^rustc-web:' \
    || { echo "cross-build.sh: /usr/bin/rustc is not Debian's rustc-web" >&2; exit 3; }
  version=$(dpkg-query -W -f='${Version}' rustc-web)
  # Where apt found this rustc-web: the same suite carries the matching target std.
  read -r archive suite < <(apt-cache madison rustc-web | awk -F'|' -v v="$version" \
    '{gsub(/ /, "", $2)} $2 == v {split($3, a, " "); print a[1], a[2]; exit}')
  [ -n "${archive:-}" ] || { echo "cross-build.sh: rustc-web $version not in apt's lists" >&2; exit 3; }
  dist=${suite%%/*}; component=${suite#*/}
  inrelease=/var/lib/apt/lists/$(printf '%s' "$archive/dists/$dist" | sed 's|^[a-z]*://||; s|/|_|g')_InRelease
  sysroot="$sysroot_base/$version"
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  for t in "${targets[@]}"; do
    a=$(deb_of "$t")
    if [ ! -d "$sysroot/usr/lib/rustlib/$t/lib" ]; then
      curl -fsS --retry 3 -o "$work/Packages-$a.xz" "$archive/dists/$dist/$component/binary-$a/Packages.xz" || exit 3
      # The index is trusted when the signed InRelease names its hash; some mirrors serve an
      # armhf index out of step with it: then only the .deb's own hash (from the index) is checked.
      listed=""
      if gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg "$inrelease" >/dev/null 2>&1; then
        listed=$(awk -v f="$component/binary-$a/Packages.xz" '/^SHA256:/ {s = 1; next} /^[^ ]/ {s = 0} s && $3 == f {print $1}' "$inrelease")
      fi
      if [ -n "$listed" ] && [ "$listed" = "$(sha256sum < "$work/Packages-$a.xz" | cut -d' ' -f1)" ]; then
        echo "== binary-$a index matches the signed InRelease"
      else
        echo "WARNING: binary-$a index does not match the signed InRelease on this mirror; trusting its .deb hash only"
      fi
      read -r file sha < <(xz -dc "$work/Packages-$a.xz" | awk -v v="$version" 'BEGIN {RS = ""; FS = "\n"}
        { p = ver = fn = sh = ""
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^Package: /) p = substr($i, 10); else if ($i ~ /^Version: /) ver = substr($i, 10)
            else if ($i ~ /^Filename: /) fn = substr($i, 11); else if ($i ~ /^SHA256: /) sh = substr($i, 9) }
          if (p == "libstd-rust-web-dev" && ver == v) { print fn, sh; exit } }')
      [ -n "${file:-}" ] || { echo "cross-build.sh: no libstd-rust-web-dev $version for $a" >&2; exit 3; }
      curl -fsS --retry 3 -o "$work/std-$a.deb" "$archive/$file" || exit 3
      echo "$sha  $work/std-$a.deb" | sha256sum -c --quiet - || { echo "cross-build.sh: $file: SHA256 mismatch" >&2; exit 1; }
      mkdir -p "$sysroot"
      dpkg-deb -x "$work/std-$a.deb" "$sysroot"
      rm -rf "${sysroot:?}/usr/share"
    fi
    rustflags[$t]="--sysroot=$sysroot/usr"
  done
  # Debian's cargo and rustc, not rustup's (first on PATH); RUSTFLAGS would hide the sysroot.
  cargo_cmd=(env -u RUSTFLAGS -u RUSTUP_TOOLCHAIN RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo)
fi
echo "== route: $route ($("${cargo_cmd[@]}" --version))"

for t in "${targets[@]}"; do
  g=$(gnu_of "$t"); a=$(deb_of "$t"); q=$(qemu_of "$t")
  upper=$(echo "$t" | tr 'a-z-' 'A-Z_')
  echo "== $t: cargo build --release"
  env "CARGO_TARGET_${upper}_LINKER=$g-gcc" "CC_${t//-/_}=$g-gcc" "AR_${t//-/_}=$g-ar" \
    "CARGO_TARGET_${upper}_RUSTFLAGS=${rustflags[$t]:-}" \
    "${cargo_cmd[@]}" build --release --locked --target "$t" --bin snbox
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
  echo "== $t: /healthz answered under qemu (route $route)"
  rm -rf "$state"
  bash packaging/build-deb.sh --binary "$bin" --arch "$a" --out target/deb
done
