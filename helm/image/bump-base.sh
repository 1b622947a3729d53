#!/usr/bin/env bash
# Moves the Dockerfile's base image to another tag, pinned by digest:
#   helm/image/bump-base.sh python:3.11.15-slim-bookworm                 resolve the digest
#   helm/image/bump-base.sh python:3.11.15-slim-bookworm sha256:<64 hex>  use this digest
# The digest is the multi-platform index's, the same for every architecture: what `crane digest`
# prints, `docker buildx imagetools inspect` shows as Digest, or the sha256 of `skopeo inspect
# --raw` (resolving needs one of them and the registry; give the digest where neither is at hand).
# Rewrites the ARG PYTHON_IMAGE line and every mention of the old tag in the Dockerfile's comments
# (DOCKERFILE=path to edit another file). Then: `make image-check` (builds on a stand-in of the
# new tag), `make images` for the real base, `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
dockerfile=${DOCKERFILE:-Dockerfile}
usage() { echo "usage: $0 IMAGE:TAG [sha256:DIGEST]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
ref=$1
digest=${2:-}
if ! [[ $ref =~ ^[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; then
  echo "bump-base: $ref is not IMAGE:TAG (no digest: it is resolved or given apart)" >&2
  exit 2
fi

if [ -z "$digest" ]; then
  if command -v crane >/dev/null; then
    digest=$(crane digest "$ref")
  elif command -v skopeo >/dev/null; then
    digest=sha256:$(skopeo inspect --raw "docker://$ref" | sha256sum | cut -d' ' -f1)
  elif docker buildx version >/dev/null 2>&1; then
    digest=$(docker buildx imagetools inspect "$ref" --format '{{.Manifest.Digest}}')
  else
    echo "bump-base: no crane, skopeo or docker buildx to resolve $ref: give its digest" >&2
    exit 3
  fi
fi
if ! [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "bump-base: $digest is not sha256:<64 hex>" >&2
  exit 2
fi

old=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$dockerfile")
[ -n "$old" ] || { echo "bump-base: no ARG PYTHON_IMAGE= line in $dockerfile" >&2; exit 1; }
old_tag=${old%%@*}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -e "s|^ARG PYTHON_IMAGE=.*|ARG PYTHON_IMAGE=$ref@$digest|" \
    -e "/^#/s|${old_tag//./\\.}|$ref|g" "$dockerfile" >"$tmp"
cat "$tmp" >"$dockerfile"
echo "bump-base: $old -> $ref@$digest"
