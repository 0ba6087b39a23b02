#!/usr/bin/env bash
# Builds sealprint-agent_<version>_<arch>.deb and sealprint-coordinator_<version>_<arch>.deb
# from binaries already built, with dpkg-deb alone: the equivalent of cargo-deb without a
# cargo install. Nothing is enabled or started by the packages (see deploy/README.md).
#
#   deploy/debian/build-debs.sh --bin-dir target/release --out dist [--version 0.1.0] [--arch amd64] [--no-strip]
#       [--compression xz|gzip|zstd|none]
#
# The version defaults to the workspace's (Cargo.toml), the architecture to dpkg's. The
# packaged binaries are stripped of debug information (strip --strip-debug; symbols stay for
# backtraces) unless --no-strip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin_dir= out= version= arch= strip=1 compression=xz
while (($#)); do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --no-strip) strip=0; shift ;;
    --compression) compression=$2; shift 2 ;;
    *) echo "usage: $0 --bin-dir DIR --out DIR [--version V] [--arch A]" >&2; exit 2 ;;
  esac
done
[[ -n "$bin_dir" && -n "$out" ]] || { echo "usage: $0 --bin-dir DIR --out DIR [--version V] [--arch A]" >&2; exit 2; }
if [[ -z "$version" ]]; then
  version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
fi
[[ -n "$arch" ]] || arch=$(dpkg --print-architecture)
mkdir -p "$out"

# build_one NAME USER STATE_DIR EXTRA_GROUPS SUMMARY DESCRIPTION
build_one() {
  local name=$1 user=$2 state=$3 groups=$4 summary=$5 description=$6
  local bin="$bin_dir/$name"
  [[ -x "$bin" ]] || { echo "$bin: no such executable" >&2; exit 1; }
  local stage
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' RETURN
  local pkg="$stage/$name"
  install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
    "$pkg/usr/share/doc/$name/examples"
  install -m 0755 "$bin" "$pkg/usr/bin/$name"
  if ((strip)); then
    strip --strip-debug "$pkg/usr/bin/$name"
  fi
  install -m 0644 "$root/deploy/systemd/$name.service" "$pkg/lib/systemd/system/$name.service"
  local example=${name#sealprint-}
  install -m 0644 "$root/deploy/examples/$example.toml" "$pkg/usr/share/doc/$name/examples/$example.toml"
  install -m 0644 "$root/README.md" "$pkg/usr/share/doc/$name/README.md"
  cat >"$pkg/usr/share/doc/$name/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sealprint

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
COPY
  for script in postinst prerm postrm; do
    sed -e "s|@NAME@|$name|g" -e "s|@USER@|$user|g" -e "s|@STATE@|$state|g" \
      -e "s|@EXTRA_GROUPS@|$groups|g" "$here/maintainer/$script.in" >"$pkg/DEBIAN/$script"
    chmod 0755 "$pkg/DEBIAN/$script"
  done
  local size
  size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
  cat >"$pkg/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: sealprint release operator <release@example.invalid>
Section: net
Priority: optional
Depends: libc6 (>= 2.34), libgcc-s1, passwd
Installed-Size: $size
Homepage: https://example.invalid/sealprint
Description: $summary
$description
CONTROL
  local deb="$out/${name}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group "-Z$compression" --build "$pkg" "$deb" >/dev/null
  echo "$deb $(stat -c %s "$deb") bytes"
}

build_one sealprint-agent sealprint-agent /var/lib/sealprint-agent lp "sealprint Print Station agent" \
" Enrolls with a sealprint coordinator, joins the site mesh and prints shipping
 labels on USB, IPP, CUPS and raw TCP printers. Installs the binary, the systemd
 unit (not enabled) and the sealprint-agent user (in group lp for USB printers)."
build_one sealprint-coordinator sealprint /var/lib/sealprint "" "sealprint coordinator" \
" The sealprint coordinator: certificate authority, label store, dispatch and
 admin API. Installs the binary, the systemd unit (not enabled) and the
 sealprint user."
