#!/usr/bin/env bash
# Makes the base image that `cvtk deploy docker` builds on by default,
# localhost/debian-base:bookworm, from Debian's own packages (mmdebstrap), so
# that no container registry is needed. Idempotent: an existing image is kept.
# Needs mmdebstrap and podman (apt-get install mmdebstrap podman), as root.
# Usage: scripts/make-base-image.sh [IMAGE] [SUITE]
set -euo pipefail
image=${1:-localhost/debian-base:bookworm}
suite=${2:-bookworm}
if podman image exists "$image"; then
  echo "base image $image already exists"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "making base image $image: Debian $suite, minbase variant (mmdebstrap)"
mmdebstrap --quiet --variant=minbase "$suite" "$tmp/base.tar"
podman import --quiet "$tmp/base.tar" "$image" >/dev/null
echo "made $image ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
