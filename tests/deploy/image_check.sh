#!/usr/bin/env bash
# Builds the controller image for real without any registry: the Dockerfile's base image is
# replaced by a Debian bookworm rootfs made with debootstrap (from the apt mirror) and tagged with
# the base's name, then `buildah bud --target controller` builds the image and `kubohb --help` runs
# inside it. Needs root, buildah and debootstrap. Caches the rootfs and the buildah storage under
# .tools/image-check (delete it for a cold run). Exit 3 = a tool is missing.
#   tests/deploy/image_check.sh [target]   (default: controller)
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-controller}
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "image-check: $tool missing (apt-get install buildah debootstrap)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "image-check: debootstrap needs root" >&2; exit 3; }

work=$PWD/.tools/image-check
mkdir -p "$work"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
base=docker.io/library/${base#docker.io/library/}
bah=(buildah --storage-driver vfs --root "$work/storage" --runroot "$work/run")
start=$(date +%s)
say() { echo "image-check [$(( $(date +%s) - start ))s] $*"; }

if [ ! -x "$work/rootfs/usr/bin/python3" ]; then
  say "debootstrap --variant=minbase bookworm from $mirror"
  rm -rf "$work/rootfs"
  # python3 + python3-venv stand in for the python image's interpreter (bookworm: CPython 3.11);
  # passwd for useradd, ca-certificates for pip over https.
  debootstrap --variant=minbase --include=python3,python3-venv,passwd,ca-certificates \
    bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
fi

if ! "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  say "importing the rootfs as $base"
  ctr=$("${bah[@]}" from scratch)
  mnt=$("${bah[@]}" mount "$ctr")
  cp -a "$work/rootfs/." "$mnt/"
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  "${bah[@]}" commit --quiet "$ctr" "$base" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null
fi

# TLS to PyPI may go through a proxy whose CA only the host trusts: RUN steps see the host's CA
# bundle and a pip.conf naming it (bind mounts of this build only; the image does not keep them).
ca=/etc/ssl/certs/ca-certificates.crt
mounts=()
if [ -f "$ca" ]; then
  printf '[global]\ncert = %s\n' "$ca" >"$work/pip.conf"
  mounts=(--volume "$ca:$ca:ro" --volume "$work/pip.conf:/etc/pip.conf:ro")
fi
image=localhost/kubohb-$target:check
say "buildah bud --target $target"
"${bah[@]}" bud --isolation chroot --pull=never --layers "${mounts[@]}" --target "$target" \
  --tag "$image" . \
  >"$work/bud.log" 2>&1 || { tail -30 "$work/bud.log" >&2; exit 1; }
say "image $image: $("${bah[@]}" images --format '{{.Size}}' "$image")"

ctr=$("${bah[@]}" from --pull=never "$image")
trap '"${bah[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
if [ "$target" = controller ]; then
  say "buildah run: kubohb --help"
  "${bah[@]}" run --isolation chroot "$ctr" -- kubohb --help
  user=$("${bah[@]}" run --isolation chroot "$ctr" -- id -u)
  [ "$user" = 10001 ] || { echo "image-check: runs as uid $user, expected 10001" >&2; exit 1; }
  if "${bah[@]}" run --isolation chroot "$ctr" -- python -c "import torch" 2>/dev/null; then
    echo "image-check: torch is installed in the controller image" >&2; exit 1
  fi
else
  say "buildah run: python -m trainer --help"
  "${bah[@]}" run --isolation chroot "$ctr" -- python -m trainer --help
fi
say "ok"
