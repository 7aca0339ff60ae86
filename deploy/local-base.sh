#!/usr/bin/env bash
# A stand-in for python:3.11-slim made from Debian's packages, for machines that cannot
# pull from a registry. Prints the local image name on stdout (progress goes to stderr):
#
#   podman build --isolation=chroot -f deploy/Dockerfile \
#       --build-arg BASE_IMAGE="$(deploy/local-base.sh)" -t edge-worker .
#
# Laid out as the official image is where deploy/Dockerfile relies on it: python, python3
# and pip in /usr/local/bin (a virtual environment at /usr/local, so `pip install` needs no
# --break-system-packages and installs console scripts to /usr/local/bin), apt-get,
# groupadd/useradd, LANG=C.UTF-8, and the docs/man/locale files left out as in Debian's
# slim images. git and ca-certificates are already in it. The machine's own extra CA
# certificates (/usr/local/share/ca-certificates) are trusted too, so pip in the build
# works behind the same TLS-inspecting proxy as the machine itself.
#
# Cached by its inputs (this script and those certificates): the image is tagged with their
# hash, and the root file system tarball is kept in $LOCAL_BASE_CACHE_DIR (default
# /var/cache/edge-worker), so a second run imports or reuses it in seconds instead of
# bootstrapping again. Needs root, mmdebstrap and podman.
set -euo pipefail

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY="deb http://deb.debian.org/debian-security ${SUITE}-security main"
PACKAGES=python3.11,python3.11-venv,ca-certificates,git,passwd
CACHE_DIR="${LOCAL_BASE_CACHE_DIR:-/var/cache/edge-worker}"
EXTRA_CAS=/usr/local/share/ca-certificates

say() { echo "local-base: $*" >&2; }

for tool in mmdebstrap podman sha256sum flock; do
    command -v "$tool" >/dev/null || { say "$tool is not installed"; exit 1; }
done

key=$(
    {
        cat "$0"
        find "$EXTRA_CAS" -name '*.crt' -type f -print0 2>/dev/null | sort -z | xargs -0r cat
    } | sha256sum | cut -c1-16
)
image="localhost/edge-worker-base:$key"
tarball="$CACHE_DIR/base-$key.tar"

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/local-base.lock"
flock 9 # one bootstrap at a time; the others wait and then find it cached

if podman image exists "$image"; then
    say "cached: $image"
    echo "$image"
    exit 0
fi

if [ ! -s "$tarball" ]; then
    say "bootstrapping Debian $SUITE into $tarball (about half a minute)"
    partial="$CACHE_DIR/partial-$key.tar"
    rm -f "$partial"
    apt_conf=$(mktemp -d)
    trap 'rm -rf "$apt_conf"' EXIT
    # As in Debian's official images: apt keeps no package caches or downloaded .debs, so
    # a Dockerfile's `apt-get update && apt-get install` layer holds only what it installs.
    clean='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
    cat >"$apt_conf/docker-clean" <<EOF
DPkg::Post-Invoke { "$clean"; };
APT::Update::Post-Invoke { "$clean"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$apt_conf/docker-no-languages"
    mmdebstrap --variant=apt --format=tar --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='chroot "$1" python3.11 -m venv /usr/local' \
        --customize-hook="copy-in $apt_conf/docker-clean $apt_conf/docker-no-languages /etc/apt/apt.conf.d" \
        --customize-hook="if [ -d $EXTRA_CAS ]; then cp $EXTRA_CAS/*.crt \"\$1/usr/local/share/ca-certificates/\" 2>/dev/null || true; fi" \
        --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/root/.cache' \
        "$SUITE" "$partial" "$MIRROR" "$SECURITY" >&2
    mv "$partial" "$tarball"
    # Older bootstraps of other inputs are of no further use.
    find "$CACHE_DIR" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
fi

say "importing $tarball as $image"
podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$image" >/dev/null
# Base images of older inputs go (those still under a built image stay, refused by rmi).
podman images --format '{{.Repository}}:{{.Tag}}' --filter reference=localhost/edge-worker-base |
    grep -vx "$image" | xargs -r podman rmi >/dev/null 2>&1 || true
echo "$image"
