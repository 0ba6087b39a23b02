#!/usr/bin/env bash
# Builds the sealprint container images without pulling any base image (no registry can be
# reached): each image is `FROM scratch` plus a root filesystem assembled here.
#
#   deploy/build-images.sh                    # release build, then the three images
#   deploy/build-images.sh --bin-dir DIR      # use already built binaries from DIR
#   deploy/build-images.sh --no-demo          # production images only
#   TAG=1.2.3 deploy/build-images.sh          # image tag (default: latest)
#
# Linking: static musl binaries when the x86_64-unknown-linux-musl target can be added to the
# pinned toolchain (ring's C builds with musl-gcc, or the host gcc); otherwise the
# glibc binaries plus every shared library `ldd` names, and the dynamic loader. Set
# LINK=musl or LINK=glibc to force one. Debug info is stripped (symbols kept) unless
# KEEP_DEBUG=1.
#
# Images: sealprint-coordinator:$TAG and sealprint-agent:$TAG (production; uid 10001, /data
# their writable volume, and the coordinator's /key for its master key), and
# sealprint-demo:$TAG, a TEST AND DEMO image for deploy/compose.yaml (the printer simulator
# sealprint-printer-sim and the one-shots sealprint-compose-demo, from the testkit crate).
set -euo pipefail

cd "$(dirname "$0")/.."
TAG=${TAG:-latest}
LINK=${LINK:-auto}
MUSL=x86_64-unknown-linux-musl
UID_GID=10001
BINS=(sealprint-coordinator sealprint-agent)
DEMO_BINS=(sealprint-printer-sim sealprint-compose-demo)
bin_dir=
demo=1

while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --no-demo) demo=; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cargo_build() {
  local args=(build --release --locked)
  for b in "${BINS[@]}" ${demo:+"${DEMO_BINS[@]}"}; do args+=(--bin "$b"); done
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

# Assembles the build context $STAGE/$1 (default target/images/$1) from the Dockerfile
# deploy/$2 and the binaries $3…, then builds image $1:$TAG.
build_image() {
  local name=$1 dockerfile=$2
  shift 2
  local ctx=${STAGE:-target/images}/$name
  rm -rf "$ctx"
  local root=$ctx/rootfs
  mkdir -p "$root"/{etc/sealprint,tmp} "$ctx"/{data,handover,records}
  chmod 1777 "$root/tmp"
  local b
  for b in "$@"; do
    [[ -x $bin_dir/$b ]] || { echo "missing binary: $bin_dir/$b" >&2; exit 1; }
    copy_with_libs "$bin_dir/$b" "$root"
  done
  printf 'root:x:0:0:root:/:/sbin/nologin\nsealprint:x:%s:%s:sealprint:/data:/sbin/nologin\n' \
    "$UID_GID" "$UID_GID" >"$root/etc/passwd"
  printf 'root:x:0:\nsealprint:x:%s:\n' "$UID_GID" >"$root/etc/group"
  # TLS roots for outbound HTTPS (the coordinator calls the Selling Partner API).
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  cp "deploy/$dockerfile" "$ctx/Dockerfile"
  echo "image $name:$TAG from $* in $bin_dir ($(du -sh "$root" | cut -f1) root filesystem)"
  docker build --quiet --tag "$name:$TAG" "$ctx"
}

for name in "${BINS[@]}"; do
  build_image "$name" "${name#sealprint-}.Dockerfile" "$name"
done
if [[ -n $demo ]]; then
  build_image sealprint-demo demo.Dockerfile "${DEMO_BINS[@]}"
fi
docker image ls --filter reference="sealprint-*:$TAG"
