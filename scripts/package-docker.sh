#!/usr/bin/env bash
# Packages our destinations as Docker images, FROM scratch, from their static native
# binaries: airlock/destination-dev-null:dev, airlock/destination-local-json:dev,
# airlock/destination-csv:dev, airlock/destination-postgres:dev (or the plugins named as
# arguments, e.g. test-adversary for the tests). Needs a Docker engine (DOCKER_HOST is
# honoured).
#   AIRLOCK_PACKAGE_PROFILE     cargo profile of the binaries (default release)
#   AIRLOCK_PACKAGE_TARGET_DIR  their target folder (default target/static)
#   AIRLOCK_PACKAGE_TAG         the images' tag (default dev; the tests use test)
#   --build-only                build the static binaries, make no image (the tests run
#                               these very binaries as local executables too)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_ONLY=0
if [ "${1:-}" = "--build-only" ]; then BUILD_ONLY=1; shift; fi
PLUGINS=(destination-dev-null destination-local-json destination-csv destination-postgres)
if [ $# -gt 0 ]; then PLUGINS=("$@"); fi
PROFILE="${AIRLOCK_PACKAGE_PROFILE:-release}"
TARGET_DIR="${AIRLOCK_PACKAGE_TARGET_DIR:-target/static}"
TAG="${AIRLOCK_PACKAGE_TAG:-dev}"
# cargo names the dev profile's folder `debug`.
PROFILE_DIR="$PROFILE"
if [ "$PROFILE" = dev ]; then PROFILE_DIR=debug; fi
TARGET="$(rustc -vV | sed -n 's/^host: //p')"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
args=()
for p in "${PLUGINS[@]}"; do args+=(-p "$p"); done
# --target keeps the static flag off build scripts and proc macros.
env -u CARGO_TARGET_DIR -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --profile "$PROFILE" --target "$TARGET" --target-dir "$TARGET_DIR" \
  --config profile.release.debug=false "${args[@]}"
if [ "$BUILD_ONLY" = 1 ]; then exit 0; fi
for p in "${PLUGINS[@]}"; do
  ctx="$(mktemp -d)"
  cp "$TARGET_DIR/$TARGET/$PROFILE_DIR/$p" "$ctx/$p"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY $p /airbyte/$p
ENV AIRBYTE_ENTRYPOINT="/airbyte/$p" AIRLOCK_LOCAL_ROOT="/local"
LABEL io.airbyte.name="airlock/$p" io.airbyte.version="$VERSION"
ENTRYPOINT ["/airbyte/$p"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build --quiet -t "airlock/$p:$TAG" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "package-docker: built airlock/$p:$TAG"
done
