#!/usr/bin/env bash
# Fetches the ONNX Runtime CPU library for linux/amd64 from the npm package
# onnxruntime-node (Debian has none), checks its sha256 and prints its path.
# Used by .ci/run and `make ort`; the YOLO detector dlopens it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/onnxruntime
lib=$dir/libonnxruntime.so.1.30.0
want=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
if [ -f "$lib" ] && echo "$want  $lib" | sha256sum -c --status; then
  echo "$PWD/$lib"; exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent onnxruntime-node@1.30.0 >/dev/null &&
  tar xzf onnxruntime-node-1.30.0.tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1)
echo "$want  $tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --status
mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib"
echo "$PWD/$lib"
