#!/usr/bin/env bash
# Packages airlock itself as a container image, airlock:TAG, FROM scratch: the binary
# (which carries its plugins as WASI components, so the image needs nothing else),
# stripped; the C libraries it links (glibc's, copied from this machine, at the paths
# its loader looks in); an empty home and /tmp; a non-root user (65532). This is the
# image the Jobs of `airlock k8s job` run (`--image airlock:TAG`); they mount the home
# and /tmp as emptyDirs and keep the rest of the file system read-only.
#   AIRLOCK_IMAGE_BINARY  the airlock binary to package (default: a release build)
#   AIRLOCK_IMAGE_TAG     the image's tag (default: the crate's version; the tests use test)
# Needs a Docker engine (DOCKER_HOST is honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
TAG="${AIRLOCK_IMAGE_TAG:-$VERSION}"
BIN="${AIRLOCK_IMAGE_BINARY:-}"
if [ -z "$BIN" ]; then
  cargo build --release -p airlock
  BIN=target/release/airlock
fi
if [ ! -x "$BIN" ]; then
  echo "package-airlock: no airlock binary at $BIN (set AIRLOCK_IMAGE_BINARY)" >&2
  exit 1
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp" "$ctx/home"
strip -o "$rootfs/usr/local/bin/airlock" "$BIN"
# Every library the loader maps, the loader included, at the path ldd names.
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
chmod 1777 "$rootfs/tmp"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 home/ /var/lib/airlock/
ENV AIRLOCK_HOME=/var/lib/airlock HOME=/var/lib/airlock TMPDIR=/tmp
USER 65532:65532
WORKDIR /var/lib/airlock
LABEL org.opencontainers.image.title="airlock" org.opencontainers.image.version="$VERSION"
ENTRYPOINT ["/usr/local/bin/airlock"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet -t "airlock:$TAG" "$ctx" >/dev/null
echo "package-airlock: built airlock:$TAG"
