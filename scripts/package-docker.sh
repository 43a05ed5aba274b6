#!/usr/bin/env bash
# Packages our destinations as Docker images, FROM scratch, from their static native
# binaries: airlock/destination-dev-null:dev, airlock/destination-local-json:dev,
# airlock/destination-csv:dev, airlock/destination-postgres:dev (or the plugins named as arguments, e.g. test-adversary
# for the tests). Needs a Docker engine (DOCKER_HOST is honoured).
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGINS=(destination-dev-null destination-local-json destination-csv destination-postgres)
if [ $# -gt 0 ]; then PLUGINS=("$@"); fi
TARGET="$(rustc -vV | sed -n 's/^host: //p')"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
args=()
for p in "${PLUGINS[@]}"; do args+=(-p "$p"); done
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target "$TARGET" \
  --target-dir target/static --config profile.release.debug=false "${args[@]}"
for p in "${PLUGINS[@]}"; do
  ctx="$(mktemp -d)"
  cp "target/static/$TARGET/release/$p" "$ctx/$p"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY $p /airbyte/$p
ENV AIRBYTE_ENTRYPOINT="/airbyte/$p" AIRLOCK_LOCAL_ROOT="/local"
LABEL io.airbyte.name="airlock/$p" io.airbyte.version="$VERSION"
ENTRYPOINT ["/airbyte/$p"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build --quiet -t "airlock/$p:dev" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "package-docker: built airlock/$p:dev"
done
