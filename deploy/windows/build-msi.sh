#!/usr/bin/env bash
# Builds sealprint-agent-<version>-x64.msi from sealprint-agent.exe with wixl (Debian's
# `wixl`, from msitools), on Linux. With --cert/--key, the exe is Authenticode-signed
# before it goes into the MSI, then the MSI is signed, both with osslsigncode, and both
# signatures are checked with `osslsigncode verify` against --cert (or --ca when the
# certificate chains to a CA).
#
#   deploy/windows/build-msi.sh --exe target/x86_64-pc-windows-gnu/release/sealprint-agent.exe \
#       --out dist [--version 0.1.0] [--cert code-signing.pem --key code-signing.key [--ca ca.pem]]
#       [--no-strip]
#
# The exe is stripped of debug information (x86_64-w64-mingw32-strip --strip-debug) before
# it is signed, unless --no-strip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# The arguments the Service Control Manager starts the agent with.
service_args="service run"
usage="usage: $0 --exe PATH --out DIR [--version V] [--cert PEM --key PEM [--ca PEM]] [--no-strip]"
exe= out= version= cert= key= ca= strip=1
while (($#)); do
  case "$1" in
    --exe) exe=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --cert) cert=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --no-strip) strip=0; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[[ -n "$exe" && -n "$out" ]] || { echo "$usage" >&2; exit 2; }
[[ -z "$cert" && -z "$key" ]] || [[ -n "$cert" && -n "$key" ]] || { echo "--cert and --key go together" >&2; exit 2; }
[[ -f "$exe" ]] || { echo "$exe: no such file" >&2; exit 1; }
if [[ -z "$version" ]]; then
  version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
fi
command -v wixl >/dev/null || { echo "wixl is missing: apt-get install wixl msitools" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# wixl resolves sources relative to the .wxs: stage the three files together.
cp "$here/sealprint-agent.wxs" "$here/harden.js" "$stage/"

# sign IN OUT DESCRIPTION: Authenticode signature (SHA-256), then verified.
sign() {
  osslsigncode sign -certs "$cert" -key "$key" -h sha256 -n "$3" \
    -i https://example.invalid/sealprint -in "$1" -out "$2" >/dev/null
  osslsigncode verify -CAfile "${ca:-$cert}" -in "$2" >/dev/null \
    || { echo "osslsigncode verify failed for $2" >&2; exit 1; }
}

cp "$exe" "$stage/plain.exe"
if ((strip)); then
  x86_64-w64-mingw32-strip --strip-debug "$stage/plain.exe"
fi
if [[ -n "$cert" ]]; then
  sign "$stage/plain.exe" "$stage/sealprint-agent.exe" "sealprint agent"
  cp "$stage/sealprint-agent.exe" "$out/sealprint-agent.exe"
else
  mv "$stage/plain.exe" "$stage/sealprint-agent.exe"
fi

msi="$out/sealprint-agent-$version-x64.msi"
(cd "$stage" && wixl -a x64 -D "Version=$version" -D AgentExe=sealprint-agent.exe \
  -D "ServiceArgs=$service_args" -o unsigned.msi sealprint-agent.wxs)
if [[ -n "$cert" ]]; then
  sign "$stage/unsigned.msi" "$msi" "sealprint agent installer"
else
  mv "$stage/unsigned.msi" "$msi"
fi
echo "$msi $(stat -c %s "$msi") bytes"
