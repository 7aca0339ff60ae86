#!/usr/bin/env bash
# System tools for tests/test_container.py, from Debian's packages: podman and buildah
# build the image from deploy/Dockerfile and run it; mmdebstrap makes the local base image
# (deploy/local-base.sh, cached in /var/cache/edge-worker). Idempotent; does nothing when
# the tools are already there.
set -euo pipefail

missing=()
for tool in podman buildah mmdebstrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "setup-container: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq podman buildah mmdebstrap >/dev/null
