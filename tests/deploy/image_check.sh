#!/usr/bin/env bash
# The Dockerfile's images built for real without any registry, and a command run in one of them
# the way a trial pod runs it. tests/deploy/test_image.py drives it (`make image-check`).
#
#   tests/deploy/image_check.sh build [controller] [trainer]   build (default: both), print sizes
#   tests/deploy/image_check.sh name TARGET                    the local name of TARGET's image
#   tests/deploy/image_check.sh run IMAGE [--user UID:GID] [--tmpfs DIR]... [--ro HOST:DIR]...
#                                   [--env NAME=VALUE]... -- COMMAND [ARG]...
#
# Base image: the Dockerfile pins python:<tag>@sha256:<digest>, which only a registry serves. The
# build stands in a Debian bookworm rootfs made with debootstrap (from the apt mirror), imported
# as python:<tag> (the digest stripped), and passes --build-arg PYTHON_IMAGE=python:<tag>.
# Python packages: each pin of helm/image/requirements-<target>.txt is fetched once on the host by
# `pip download` (which takes the wheels the host's pip config finds on local disk, PyPI for the
# rest) into a wheelhouse; RUN steps see it and a pip.conf saying no-index + find-links (bind
# mounts of this build only: the image keeps neither), so the build itself uses no network.
# Images are tagged localhost/kubohb-<target>:<version of pyproject.toml>.
# Storage: overlay where the kernel mounts it here, else vfs (which copies every layer in full:
# slow, and ~6 GB per layer of the trainer). KUBOHB_STORAGE_DRIVER=vfs|overlay overrides.
#
# `run` is a small stand-in for the kubelet: the image's root file system bind-mounted read-only
# (readOnlyRootFilesystem), a tmpfs for each --tmpfs (the pod's emptyDir volumes) and a 64 MiB
# /dev/shm (the runtime's default), --ro host folders mounted read-only, fresh /proc (own PID
# namespace) and /dev (null, zero, full, random, urandom), then chroot as --user (default: the
# image's USER) with no_new_privs, in the image's WORKDIR, with only the image's ENV and --env
# (later ones win). The network is the host's (loopback servers are reachable).
#
# Caches the rootfs, the wheelhouse and the storage under .tools/image-check (delete it for a cold
# run). Needs root, buildah, debootstrap. Exit 3 = a tool is missing, 2 = bad usage.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/../.."
work=$PWD/.tools/image-check
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
start=$(date +%s)
say() { echo "image-check [$(( $(date +%s) - start ))s] $*"; }
die() { echo "image-check: $*" >&2; exit 1; }
usage() {
  echo "usage: $self build [controller] [trainer] | name TARGET | run IMAGE [...] -- CMD" >&2
  exit 2
}

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null \
      || { echo "image-check: $tool missing (apt-get install buildah debootstrap)" >&2; exit 3; }
  done
  if [ "$(id -u)" != 0 ]; then
    echo "image-check: needs root (debootstrap, mounts, chroot)" >&2
    exit 3
  fi
}

version() {
  "$py" -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])"
}
image_name() { echo "localhost/kubohb-$1:$(version)"; }

overlay_works() {
  local d rc=1
  d=$(mktemp -d "$work/overlay-probe.XXXXXX")
  mkdir "$d/l" "$d/u" "$d/w" "$d/m"
  if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
    umount "$d/m" && rc=0
  fi
  rm -rf "$d"
  return $rc
}

storage() { # sets driver and bah, the buildah command line on this check's own storage
  mkdir -p "$work"
  driver=${KUBOHB_STORAGE_DRIVER:-}
  if [ -z "$driver" ]; then
    if overlay_works; then driver=overlay; else driver=vfs; fi
  fi
  # One storage per driver: containers-storage refuses to open a store made by another driver.
  bah=(buildah --storage-driver "$driver"
       --root "$work/storage-$driver" --runroot "$work/run-$driver")
}

# ---------------------------------------------------------------------------------------- build

stand_in_base() { # prints the name the base is imported as
  local base mirror ctr mnt
  base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile)
  base=${base%%@*}  # python:<tag>@sha256:<digest> -> python:<tag>
  base=docker.io/library/${base#docker.io/library/}
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  if [ ! -x "$work/rootfs/usr/bin/python3" ]; then
    say "debootstrap --variant=minbase bookworm from $mirror" >&2
    rm -rf "$work/rootfs"
    # python3 + python3-venv stand in for the python image's interpreter (bookworm: CPython 3.11);
    # passwd for useradd, ca-certificates as the python image has them.
    debootstrap --variant=minbase --include=python3,python3-venv,passwd,ca-certificates \
      bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  fi
  if ! "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
    say "importing the rootfs as $base" >&2
    ctr=$("${bah[@]}" from scratch)
    mnt=$("${bah[@]}" mount "$ctr")
    cp -a "$work/rootfs/." "$mnt/"
    "${bah[@]}" umount "$ctr" >/dev/null
    "${bah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd python3 "$ctr"
    "${bah[@]}" commit --quiet "$ctr" "$base" >/dev/null
    "${bah[@]}" rm "$ctr" >/dev/null
  fi
  echo "$base"
}

wheelhouse() { # fetch the wheels of TARGET's lock file (pip skips those already there)
  local minor arch
  local -a platforms=()
  arch=$(uname -m)
  # bookworm's glibc is 2.36; pip does not widen a manylinux_2_X platform to older ones itself
  for minor in $(seq 36 -1 5); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
  for minor in 2014 2010 1; do platforms+=(--platform "manylinux${minor}_$arch"); done  # aliases
  say "pip download: helm/image/requirements-$1.txt -> .tools/image-check/wheels"
  "$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" \
    --python-version 3.11 --implementation cp --abi cp311 "${platforms[@]}" \
    -r "helm/image/requirements-$1.txt" >"$work/pip-download-$1.log" 2>&1 \
    || { tail -20 "$work/pip-download-$1.log" >&2; exit 1; }
}

build() {
  need buildah debootstrap
  storage
  local targets=("$@") base target image
  [ ${#targets[@]} -gt 0 ] || targets=(controller trainer)
  for target in "${targets[@]}"; do
    case $target in controller|trainer) ;; *) usage ;; esac
  done
  say "storage driver: $driver"
  base=$(stand_in_base)
  printf '[global]\nno-index = true\nfind-links = /wheels\n' >"$work/pip.conf"
  for target in "${targets[@]}"; do
    wheelhouse "$target"
    image=$(image_name "$target")
    say "buildah bud --target $target --tag $image"
    "${bah[@]}" bud --isolation chroot --pull=never --layers --force-rm \
      --build-arg "PYTHON_IMAGE=${base#docker.io/library/}" \
      --volume "$work/wheels:/wheels:ro" --volume "$work/pip.conf:/etc/pip.conf:ro" \
      --target "$target" --tag "$image" . >"$work/bud-$target.log" 2>&1 \
      || { tail -30 "$work/bud-$target.log" >&2; exit 1; }
    say "image $image: $("${bah[@]}" images --format '{{.Size}}' "$image")"
  done
  say "image $base (the stand-in base): $("${bah[@]}" images --format '{{.Size}}' "$base")"
  say "ok"
}

# ------------------------------------------------------------------------------------------ run

run() {
  need buildah unshare setpriv chroot
  storage
  [ $# -gt 0 ] || usage
  local image=$1 user="" ctr="" root rc opt spec
  shift
  local -a opts=() tmpfs=() ro=()
  while [ $# -gt 0 ]; do
    case $1 in
      --user) user=$2; shift 2 ;;
      --tmpfs) tmpfs+=("$2"); opts+=("$1" "$2"); shift 2 ;;
      --ro) ro+=("$2"); opts+=("$1" "$2"); shift 2 ;;
      --env) opts+=("$1" "$2"); shift 2 ;;
      --) shift; break ;;
      *) usage ;;
    esac
  done
  [ $# -gt 0 ] || usage
  local inspect=("${bah[@]}" inspect --type image --format)
  user=${user:-$("${inspect[@]}" '{{.OCIv1.Config.User}}' "$image")}
  [ -n "$user" ] || user=0:0
  [[ $user == *:* ]] || user=$user:$user
  local workdir
  workdir=$("${inspect[@]}" '{{.OCIv1.Config.WorkingDir}}' "$image")
  local -a env=()
  while IFS= read -r spec; do
    [ -n "$spec" ] && env+=(--env "$spec")
  done < <("${inspect[@]}" '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$image")

  ctr=$("${bah[@]}" from --pull=never "$image")
  # shellcheck disable=SC2064  # expand now: the names are known
  trap "\"\${bah[@]}\" rm '$ctr' >/dev/null 2>&1 || true" EXIT
  root=$("${bah[@]}" mount "$ctr")
  # Mount points, made in the container's own layer (the image is not changed).
  mkdir -p "$root/proc" "$root/dev" "$root/tmp"
  for opt in "${tmpfs[@]}"; do mkdir -p "$root$opt"; done
  for spec in "${ro[@]}"; do
    [ -e "${spec%%:*}" ] || die "run: --ro $spec: ${spec%%:*} does not exist"
    mkdir -p "$root${spec#*:}"
  done
  rc=0
  unshare --mount --propagation private --pid --fork -- \
    "$self" __inside "$root" "${workdir:-/}" "$user" "${env[@]}" "${opts[@]}" -- "$@" || rc=$?
  exit $rc
}

inside() { # in the new mount and PID namespaces: build the pod's file system, chroot, exec
  local root=$1 workdir=$2 user=$3 dev spec
  shift 3
  local -a env=()
  mount --bind "$root" "$root"  # a mount of its own, so that it can be made read-only
  mount -o remount,bind,ro "$root"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount -t tmpfs -o nosuid,noexec,mode=755,size=64k dev "$root/dev"
  for dev in null zero full random urandom; do
    : >"$root/dev/$dev"
    mount --bind "/dev/$dev" "$root/dev/$dev"
  done
  ln -s /proc/self/fd "$root/dev/fd"
  mkdir "$root/dev/shm"
  mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=64m shm "$root/dev/shm"
  while [ $# -gt 0 ]; do
    case $1 in
      --tmpfs) mount -t tmpfs -o nosuid,nodev,mode=1777 scratch "$root$2"; shift 2 ;;
      --ro)
        spec=$2
        mount --bind "${spec%%:*}" "$root${spec#*:}"
        mount -o remount,bind,ro "$root${spec#*:}"
        shift 2 ;;
      --env) env+=("$2"); shift 2 ;;
      --) shift; break ;;
    esac
  done
  exec setpriv --no-new-privs chroot --userspec="$user" --groups="${user#*:}" "$root" \
    /usr/bin/env -i -C "$workdir" "${env[@]}" "$@"
}

case ${1:-} in
  build) shift; build "$@" ;;
  name) [ $# = 2 ] || usage; image_name "$2" ;;
  run) shift; run "$@" ;;
  __inside) shift; inside "$@" ;;
  *) usage ;;
esac
