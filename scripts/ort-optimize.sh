#!/usr/bin/env bash
# bash scripts/ort-optimize.sh [--target cuda|cpu|cpu-fp16] IN OUT [STATS_JSON]
#
# Runs ONNX Runtime's own Stable Diffusion optimizer, the command models/README.md gives users
# ("Fast GPU graphs"), on the Optimum export folder IN, writing OUT:
#   --target cuda (default): `--float16`, every fusion (NhwcConv, GroupNorm, SkipGroupNorm,
#     BiasSplitGelu, BiasAdd, packed QKV/KV, MultiHeadAttention, ...): runs on the CUDA provider only.
#   --target cpu: fp32 with only the fusions that have CPU kernels (attention, LayerNorm, Gelu):
#     what a CPU worker can load.
#   --target cpu-fp16: the same fusions in fp16 (the optimizer's fp16 conversion, as for CUDA):
#     checks the engine's fp16 path on a CPU; slower than fp32 there, not for CPU workers.
# then:
#   - sets the ONNX IR version of any model written above 13 to 13 (onnxruntime-node 1.29 reads at
#     most 13; the README gives users the same one-liner),
#   - writes STATS_JSON (default OUT/optimizer-stats.json): the onnxruntime version that optimized,
#     and per component its node count and com.microsoft op counts.
# Needs python3 with onnx, onnxruntime and sympy, numpy below 2.4 (any onnxruntime build: the
# optimizer rewrites graphs without a GPU).
# OUT is replaced if it exists and this script wrote it (it holds the mark .ort-optimize) or it is
# empty; the script refuses an OUT that is IN or holds it, or another non-empty folder.
# Exit codes: 0 done; 2 bad arguments; 5 python3, onnx, onnxruntime or sympy missing; 6 numpy 2.4 or later (the
# optimizer up to ONNX Runtime 1.30 fails on it while fusing the VAE's attention); otherwise the
# optimizer's.
# scripts/gpu-run.sh runs it on the device on test/fixtures/tiny-sd-optimum, then
# scripts/gpu-ort-optimized.ts renders both folders and compares them with diffusers.
set -euo pipefail
USAGE="usage: bash scripts/ort-optimize.sh [--target cuda|cpu|cpu-fp16] IN OUT [STATS_JSON]"
# A bad command line is exit 2 with the usage, whatever this machine's Python has.
usage() { echo "ort-optimize: $1"; echo "$USAGE"; exit 2; }
TARGET=cuda
if [ "${1:-}" = --target ]; then
  [ $# -ge 2 ] || usage "--target needs a value: cuda, cpu or cpu-fp16"
  TARGET="$2"
  shift 2
fi
case "$TARGET" in
  cuda) FLAGS=(--float16) ;;
  cpu) FLAGS=(--disable_group_norm --disable_skip_group_norm --disable_bias_splitgelu --disable_bias_add --disable_nhwc_conv --disable_packed_kv --disable_packed_qkv) ;;
  cpu-fp16) FLAGS=(--float16 --disable_group_norm --disable_skip_group_norm --disable_bias_splitgelu --disable_bias_add --disable_nhwc_conv --disable_packed_kv --disable_packed_qkv) ;;
  *) usage "--target takes cuda, cpu or cpu-fp16, got '$TARGET'" ;;
esac
[ $# -ge 2 ] && [ $# -le 3 ] || usage "give the input folder and the output folder (and optionally the stats file)"
IN="$1"
OUT="$2"
STATS="${3:-$OUT/optimizer-stats.json}"
# OUT is replaced only when it is missing, empty or an earlier output of this script; never when it
# is IN or holds IN (a user's export must not be deleted by a typo).
[ -d "$IN" ] || { echo "ort-optimize: $IN is not a folder (expected an Optimum export: model_index.json, unet/, ...)"; exit 2; }
in_real=$(cd "$IN" && pwd -P)
if [ -e "$OUT" ]; then
  out_real=$(cd "$OUT" 2>/dev/null && pwd -P) || { echo "ort-optimize: $OUT exists and is not a folder; give a new folder for the output"; exit 2; }
  case "$in_real/" in "$out_real"/*) echo "ort-optimize: the output folder $OUT is the input or holds it; give a new folder for the output"; exit 2 ;; esac
  if [ -n "$(ls -A "$OUT")" ] && [ ! -e "$OUT/.ort-optimize" ]; then
    echo "ort-optimize: $OUT is not empty and was not written by this script; give a new folder for the output (it would be replaced)"
    exit 2
  fi
fi
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import onnx, onnxruntime, sympy' 2>/dev/null; then
  echo "ort-optimize: $PY with onnx, onnxruntime and sympy is needed (pip install -r scripts/ort-optimize-requirements.txt)"
  exit 5
fi
if ! "$PY" -c 'import sys, numpy; sys.exit(tuple(int(x) for x in numpy.__version__.split(".")[:2]) >= (2, 4))'; then
  echo "ort-optimize: numpy $("$PY" -c 'import numpy; print(numpy.__version__)') is too new for ONNX Runtime's SD optimizer (it fails fusing the VAE's attention: \"only 0-dimensional arrays can be converted to Python scalars\"); pip install -r scripts/ort-optimize-requirements.txt"
  exit 6
fi
# The optimizer only formats its log with coloredlogs (a dependency of the onnxruntime wheel);
# a Python without it gets a no-op stand-in rather than a failed run.
shim=""
trap '[ -z "$shim" ] || rm -rf "$shim"' EXIT
if ! "$PY" -c 'import coloredlogs' 2>/dev/null; then
  shim=$(mktemp -d)
  printf 'def install(*args, **kwargs):\n    pass\n' > "$shim/coloredlogs.py"
  export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
  echo "ort-optimize: coloredlogs missing, using a no-op stand-in"
fi
[ ! -e "$OUT" ] || rm -rf "$OUT"
"$PY" -m onnxruntime.transformers.models.stable_diffusion.optimize_pipeline -i "$IN" -o "$OUT" "${FLAGS[@]}"
# The mark that lets a later run replace this folder (wherever STATS_JSON goes).
echo "written by scripts/ort-optimize.sh --target $TARGET from $in_real" > "$OUT/.ort-optimize"
# Files the engine reads that the optimizer does not copy (it copies model_index.json, scheduler/,
# tokenizer/ and each component's config.json): anything else at the top level, e.g. blendfarm.json.
for f in "$IN"/*.json; do
  [ -e "$OUT/$(basename "$f")" ] || case "$(basename "$f")" in reference.json) ;; *) cp "$f" "$OUT/" ;; esac
done
"$PY" - "$OUT" "$STATS" <<'PY'
import json, os, sys
import onnx, onnxruntime
out, stats_path = sys.argv[1], sys.argv[2]
stats = {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "components": {}}
for name in sorted(os.listdir(out)):
    path = os.path.join(out, name, "model.onnx")
    if not os.path.isfile(path):
        continue
    model = onnx.load(path, load_external_data=False)
    if model.ir_version > 13:
        model.ir_version = 13
        onnx.save(model, path)
    contrib = {}
    for node in model.graph.node:
        if node.domain == "com.microsoft":
            contrib[node.op_type] = contrib.get(node.op_type, 0) + 1
    stats["components"][name] = {"nodes": len(model.graph.node), "ir_version": model.ir_version, "contrib": dict(sorted(contrib.items()))}
with open(stats_path, "w") as f:
    json.dump(stats, f, indent=2)
print(json.dumps(stats))
PY
