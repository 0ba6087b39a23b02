#!/usr/bin/env bash
# Builds the sealprint container images without pulling any base image (no registry can be
# reached): each image is `FROM scratch` plus a root filesystem assembled here.
#
#   deploy/build-images.sh                    # release build, then both images
#   deploy/build-images.sh --bin-dir DIR      # use already built binaries from DIR
#   TAG=1.2.3 deploy/build-images.sh          # image tag (default: latest)
#
# Linking: static musl binaries when the x86_64-unknown-linux-musl target can be added to the
# pinned toolchain (ring's C builds with musl-gcc, or the host gcc); otherwise the
# glibc binaries plus every shared library `ldd` names, and the dynamic loader. Set
# LINK=musl or LINK=glibc to force one. Debug info is stripped (symbols kept) unless
# KEEP_DEBUG=1.
#
# Images: sealprint-coordinator:$TAG and sealprint-agent:$TAG. Both run as uid 10001 with
# /data as their only writable volume.
set -euo pipefail

cd "$(dirname "$0")/.."
TAG=${TAG:-latest}
LINK=${LINK:-auto}
MUSL=x86_64-unknown-linux-musl
UID_GID=10001
BINS=(sealprint-coordinator sealprint-agent)
bin_dir=

while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cargo_build() {
  local args=(build --release --locked)
  for b in "${BINS[@]}"; do args+=(--bin "$b"); done
  cargo "${args[@]}" "$@"
}

if [[ -z $bin_dir ]]; then
  if [[ $LINK != glibc ]] && rustup target add "$MUSL" >/dev/null 2>&1; then
    echo "building static binaries ($MUSL)"
    # cc-rs looks for x86_64-linux-musl-gcc, which Debian does not ship: ring's C (the only C
    # in the graph) builds for musl with musl-gcc (Debian's musl-tools) or the host gcc.
    if [[ -z ${CC_x86_64_unknown_linux_musl:-} ]]; then
      if command -v musl-gcc >/dev/null; then
        export CC_x86_64_unknown_linux_musl=musl-gcc
      else
        export CC_x86_64_unknown_linux_musl=gcc
      fi
    fi
    cargo_build --target "$MUSL"
    bin_dir=target/$MUSL/release
  elif [[ $LINK == musl ]]; then
    echo "the $MUSL target cannot be added to the toolchain" >&2
    exit 1
  else
    echo "building glibc binaries (their shared libraries go into the images)"
    cargo_build
    bin_dir=target/release
  fi
fi

# Copies $1 and, when it is dynamically linked, every library ldd resolves plus the loader,
# under the same paths, into rootfs $2.
copy_with_libs() {
  local bin=$1 root=$2
  local dest=$root/usr/local/bin/$(basename "$bin")
  install -D -m 0755 "$bin" "$dest"
  # The release profile keeps line tables; the image keeps symbols (named backtraces) only.
  if [[ -z ${KEEP_DEBUG:-} ]] && command -v strip >/dev/null; then
    strip --strip-debug "$dest"
  fi
  if ldd "$bin" >/dev/null 2>&1; then
    local lib
    # Lines look like "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
    # "/lib64/ld-linux-x86-64.so.2 (0x...)"; vdso has no file.
    for lib in $(ldd "$bin" | awk '/=>/ { print $3; next } /^[[:space:]]*\// { print $1 }'); do
      [[ -f $lib ]] || continue
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  fi
}

stage_root=target/images
for name in "${BINS[@]}"; do
  bin=$bin_dir/$name
  [[ -x $bin ]] || { echo "missing binary: $bin" >&2; exit 1; }
  ctx=$stage_root/$name
  rm -rf "$ctx"
  root=$ctx/rootfs
  mkdir -p "$root"/{etc/sealprint,tmp} "$ctx/data"
  chmod 1777 "$root/tmp"
  copy_with_libs "$bin" "$root"
  printf 'root:x:0:0:root:/:/sbin/nologin\nsealprint:x:%s:%s:sealprint:/data:/sbin/nologin\n' \
    "$UID_GID" "$UID_GID" >"$root/etc/passwd"
  printf 'root:x:0:\nsealprint:x:%s:\n' "$UID_GID" >"$root/etc/group"
  # TLS roots for outbound HTTPS (the coordinator calls the Selling Partner API).
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  cp "deploy/${name#sealprint-}.Dockerfile" "$ctx/Dockerfile"
  echo "image $name:$TAG from $bin ($(du -sh "$root" | cut -f1) root filesystem)"
  docker build --quiet --tag "$name:$TAG" "$ctx"
done
docker image ls --filter reference='sealprint-*'
