#!/usr/bin/env bash
# Builds the snbox .deb from a built binary with dpkg-deb (no network, no extra tool).
#
#   packaging/build-deb.sh [--binary target/release/snbox] [--arch amd64|arm64|armhf] [--out DIR]
#
# The package: /usr/bin/snbox, the systemd unit, /etc/snbox/snbox.toml (a conffile) with the
# example standalone document, the docs, and maintainer scripts that enable and restart the
# service on install and upgrade and stop it on removal (only where systemd runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
binary="$repo/target/release/snbox"
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
out="$repo/target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable (cargo build --release first)" >&2; exit 2; }
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/snbox_${version}_${arch}"
install -D -m 0755 "$binary" "$root/usr/bin/snbox"
install -D -m 0644 "$repo/systemd/snbox.service" "$root/lib/systemd/system/snbox.service"
# The settings point at the example document next to them: a fresh install runs standalone on
# loopback targets until the operator pairs the box or writes a document of their own.
install -d -m 0755 "$root/etc/snbox"
sed -e 's|^document = "standalone.json"|document = "/etc/snbox/standalone.json"|' \
  "$repo/config/snbox.toml" > "$root/etc/snbox/snbox.toml"
chmod 0644 "$root/etc/snbox/snbox.toml"
install -m 0644 "$repo/config/standalone.json" "$root/etc/snbox/standalone.json"
install -D -m 0644 "$repo/README.md" "$root/usr/share/doc/snbox/README.md"
for doc in DAEMON CENTRAL SYSTEMD PROBES RULES; do
  install -m 0644 "$repo/docs/$doc.md" "$root/usr/share/doc/snbox/$doc.md"
done
install -m 0644 "$here/debian/copyright" "$root/usr/share/doc/snbox/copyright"
gzip -9n < "$here/debian/changelog" > "$root/usr/share/doc/snbox/changelog.gz"
chmod 0644 "$root/usr/share/doc/snbox/changelog.gz"
install -D -m 0644 "$here/debian/lintian-overrides" "$root/usr/share/lintian/overrides/snbox"

install -d -m 0755 "$root/DEBIAN"
size_kb="$(du -sk "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size_kb/" \
  "$here/debian/control" > "$root/DEBIAN/control"
install -m 0644 "$here/debian/conffiles" "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done

mkdir -p "$out"
deb="$out/snbox_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
