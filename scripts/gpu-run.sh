#!/usr/bin/env bash
# The device run for issue 12 (fused graphs on a GPU): one script, run from the repository root
# on a GPU host that has the NVIDIA driver, CUDA 13 and cuDNN 9 but no Node.js. bench/README.md
# ("GPU run") gives the exact `run` calls. Prepare here first:
#   bash ../shared/gpu/make-kit.sh .gpu-kit 90 && bash scripts/gpu-bundle.sh
#
# What it does, each step under its own time limit, everything logged to $OUT/run.log:
#   1. unpacks whichever kit archives travelled (.gpu-kit/part1.tar.xz: node + onnxruntime-node;
#      part2.tar.xz: the CUDA provider) into /opt/blendkit. Kit + working tree exceed one call's
#      64 MiB, so the archives may come in two calls to the same warm machine: a call that leaves
#      a part missing stops here with exit code 3 and says which part to send next.
#   2. node dist/gpu-check-fusion.mjs --ep cuda: plain vs fused for the full fusion and each
#      CUDA-only contrib op alone, on small SD-channel shapes (about a minute), writes
#      $OUT/fusion-check.json with `benchOps`: the ops that passed.
#   3. node dist/bench-perceptual.mjs --ep cuda: the built-in gap metric's ONNX graph on the GPU
#      against the JavaScript version (exit 1 above 1e-4 relative) and ms per 512x512 pair, 1 and
#      8 pairs per call; writes $OUT/perceptual.json (milliseconds). It takes seconds and runs
#      before the benchmark, whose transitions measure their gaps with the same graph.
#   4. node dist/bench-gpu.mjs --ep cuda --shape sd15 --ops <benchOps>: generates the SD 1.5-size
#      synthetic UNet and VAE (plain and fused with those ops) on the device into models/.cache
#      (kept while the machine stays warm, so a rerun skips it), measures, writes $OUT/gpu.json and
#      $OUT/gpu.md (bench/results/gpu.md with the CUDA section added or replaced). A kernel that
#      fails the check therefore costs its own speed-up, not the whole benchmark.
#   5. node dist/gpu-upscale.mjs --ep cuda: upscale ms per 512x512 frame by tiles per call (1, 4,
#      8, 16) and tile side, with the esrgan-slim 4x model carried in models/.cache/upscalers;
#      writes $OUT/upscale-gpu.json and .md. Skipped when the model was not carried.
#   6. bash scripts/ort-optimize.sh --target $EP on test/fixtures/tiny-sd-optimum (ONNX Runtime's own
#      SD optimizer, the command models/README.md gives users; needs the device's python3 with onnx,
#      onnxruntime and sympy, skipped with a note otherwise), then node dist/gpu-ort-optimized.mjs:
#      the optimized and the plain export through the engine against diffusers' own image; writes
#      $OUT/optimizer-stats.json, ort-optimize.log, ort-optimized.json and .md (well under a minute).
#      Steps 6 and 7 come last: they need the device's Python, and the step limits together
#      (735 s) exceed call 2's 540 s, so a benchmark that runs to its limit leaves them out.
#   7. node dist/gpu-ort-vs-builder.mjs --ep cuda --shape check: ONNX Runtime's optimizer (fp16, every
#      fusion) and the project's 'cuda' builder on the same plain synthetic UNet, ms per call at
#      batch 2/8/16 and agreement with the plain graph; writes $OUT/ort-vs-builder.json and .md.
#      The optimizer's row needs the device's Python (as step 6); limit 90 s.
# Exit code: 0 all passed; 3 kit incomplete; 4 a dist/ bundle missing; otherwise the first failing step's.
# Knobs: TOTAL_TIMEOUT (s from the start for all steps, default 525), BENCH_ARGS (extra bench:gpu arguments), BENCH_TIMEOUT (s, default 330),
# CHECK_ARGS (extra gpu-check-fusion arguments), CHECK_TIMEOUT (s, default 120), UPSCALE_ARGS (extra gpu-upscale arguments), UPSCALE_TIMEOUT
# (s, default 45), ORT_OPT_TIMEOUT and ORT_CHECK_TIMEOUT (s, default 60 each), ORT_CHECK_ARGS,
# ORT_OPT_DIR, PERCEPTUAL_TIMEOUT (s, default 30), ORT_VS_TIMEOUT (s, default 90), ORT_VS_ARGS,
# SKIP_ORT_VS=1, SKIP_PERCEPTUAL=1, SKIP_BENCH=1, SKIP_CHECK=1 (then the full 'cuda' fusion), SKIP_UPSCALE=1, SKIP_ORT_OPT=1.
# Dry run on a machine without a GPU (test/scripts/gpu-run.test.ts does this): EP=cpu SHAPE=tiny
# with BLENDKIT pointing at a folder that has bin/node and env.sh; the CUDA provider is then not
# required, and a node_modules folder that is a real folder (a development checkout) is kept.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/out/gpu-run}"
mkdir -p "$OUT"
LOG="$OUT/run.log"
exec > >(tee -a "$LOG") 2>&1
echo "== gpu-run $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader || echo "nvidia-smi failed"
# What the optimizer steps (6, 7) will find; every call reports it, call 1 included.
"${PYTHON:-python3}" -c 'import sys
for m in ("numpy", "onnx", "onnxruntime", "sympy", "torch"):
    try:
        print(m, __import__(m).__version__, end="; ")
    except Exception as e:
        print(m, "missing", end="; ")
print("python", sys.version.split()[0])' 2>/dev/null || echo "no python3"

K="${BLENDKIT:-/opt/blendkit}"
EP="${EP:-cuda}"
SHAPE="${SHAPE:-sd15}"
has_part() { # already unpacked on this (warm) machine?
  case "$1" in
    part1) [ -x "$K/bin/node" ] ;;
    part2) [ "$EP" != cuda ] || [ -s "$K/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so" ] ;;
  esac
}
for part in part1 part2; do
  if ! has_part "$part" && [ -s ".gpu-kit/$part.tar.xz" ]; then
    t0=$SECONDS
    bash .gpu-kit/unpack.sh ".gpu-kit/$part.tar.xz" || { echo "unpacking $part failed"; exit 3; }
    echo "unpacked $part in $((SECONDS - t0)) s"
  fi
done
missing=()
has_part part1 || missing+=("part1 (node + onnxruntime-node)")
has_part part2 || missing+=("part2 (CUDA provider)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "kit incomplete on this machine: missing ${missing[*]}; send it with the next call (carry .gpu-kit/<part>.tar.xz and .gpu-kit/unpack.sh) while this machine is warm"
  exit 3
fi
for f in dist/bench-gpu.mjs dist/bench-perceptual.mjs dist/gpu-check-fusion.mjs dist/gpu-upscale.mjs dist/gpu-ort-optimized.mjs dist/gpu-ort-vs-builder.mjs; do
  [ -s "$f" ] || { echo "$f missing: run 'bash scripts/gpu-bundle.sh' here and carry dist"; exit 4; }
done
# shellcheck disable=SC1091
source "$K/env.sh"
# The kit's onnxruntime-node, unless this is a development checkout with its own node_modules.
if [ -L node_modules ] || [ ! -e node_modules ]; then ln -sfn "$K/node_modules" node_modules; fi
echo "node $(node --version)"

rc=0
ops_arg=()
# One deadline for all steps (TOTAL_TIMEOUT s from the script's start, default 525: call 2's
# 540 s limit less a margin), so the script itself ends, with complete files and its exit code,
# before the run is killed: each step gets at most what is left, and a step with under 10 s left
# is skipped with a line saying so.
DEADLINE=$(( ${TOTAL_TIMEOUT:-525} ))
# At least 1: `timeout 0` would mean no limit at all.
left() { local want=$1 remain=$(( DEADLINE - SECONDS - 5 )); [ "$remain" -lt 1 ] && remain=1; [ "$remain" -lt "$want" ] && echo "$remain" || echo "$want"; }
has_time() { [ "$(left 10)" -ge 10 ] || { echo "== $1 skipped: no time left of TOTAL_TIMEOUT=${TOTAL_TIMEOUT:-525} s"; return 1; }; }
if [ "${SKIP_CHECK:-0}" != 1 ] && has_time "fusion check"; then
  t0=$SECONDS
  # shellcheck disable=SC2086
  # The tiny benchmark shape checks on the tiny shapes too (a CPU dry run).
  timeout "$(left "${CHECK_TIMEOUT:-120}")" node dist/gpu-check-fusion.mjs --ep "$EP" --out "$OUT" --shape "$([ "$SHAPE" = tiny ] && echo tiny || echo check)" ${CHECK_ARGS:-}
  r=$?
  echo "== fusion check exit $r after $((SECONDS - t0)) s"
  [ $r -eq 0 ] || rc=$r
  # The ops that passed (all of the 'cuda' fusion when it passed as a whole; none: the plain graph
  # twice). Only an unreadable file leaves the full fusion.
  ops=$(node -e 'try { const r = require(require("node:path").resolve(process.argv[1])); if (Array.isArray(r.benchOps)) console.log("ok:" + r.benchOps.join(",")); } catch {}' "$OUT/fusion-check.json")
  case "$ops" in ok:*) ops_arg=(--ops "${ops#ok:}"); echo "== benchmarking fused ops: ${ops#ok:}" ;; esac
fi
if [ "${SKIP_PERCEPTUAL:-0}" != 1 ] && has_time "perceptual metric"; then
  t0=$SECONDS
  timeout "$(left "${PERCEPTUAL_TIMEOUT:-30}")" node dist/bench-perceptual.mjs --ep "$EP" --out "$OUT"
  r=$?
  echo "== perceptual metric exit $r after $((SECONDS - t0)) s"
  [ $r -eq 0 ] || [ $rc -ne 0 ] || rc=$r
fi
if [ "${SKIP_BENCH:-0}" != 1 ] && has_time "bench:gpu"; then
  [ -f "$OUT/gpu.md" ] || cp bench/results/gpu.md "$OUT/gpu.md" 2>/dev/null || true
  t0=$SECONDS
  # shellcheck disable=SC2086
  timeout "$(left "${BENCH_TIMEOUT:-330}")" node dist/bench-gpu.mjs --ep "$EP" --shape "$SHAPE" --out "$OUT" ${ops_arg[@]+"${ops_arg[@]}"} ${BENCH_ARGS:-}
  r=$?
  echo "== bench:gpu exit $r after $((SECONDS - t0)) s"
  [ $r -eq 0 ] || [ $rc -ne 0 ] || rc=$r
fi
if [ "${SKIP_UPSCALE:-0}" != 1 ] && has_time "upscale bench"; then
  if ls "${BLENDFARM_MODEL_CACHE:-models/.cache}"/upscalers/esrgan-slim-*/x4/model.onnx >/dev/null 2>&1; then
    t0=$SECONDS
    # shellcheck disable=SC2086
    timeout "$(left "${UPSCALE_TIMEOUT:-45}")" node dist/gpu-upscale.mjs --ep "$EP" --out "$OUT" ${UPSCALE_ARGS:-}
    r=$?
    echo "== upscale bench exit $r after $((SECONDS - t0)) s"
    [ $r -eq 0 ] || [ $rc -ne 0 ] || rc=$r
  else
    echo "== upscale bench skipped: models/.cache/upscalers/esrgan-slim-*/x4 was not carried"
  fi
fi
if [ "${SKIP_ORT_OPT:-0}" != 1 ] && has_time "ORT optimizer check"; then
  t0=$SECONDS
  opt="${ORT_OPT_DIR:-$PWD/models/.cache/tiny-sd-ort-$EP}"
  timeout "$(left "${ORT_OPT_TIMEOUT:-60}")" bash scripts/ort-optimize.sh --target "$EP" test/fixtures/tiny-sd-optimum "$opt" "$OUT/optimizer-stats.json" > "$OUT/ort-optimize.log" 2>&1
  r=$?
  tail -n 3 "$OUT/ort-optimize.log"
  case $r in
    5|6) echo "== ORT optimizer check skipped: $(head -n 1 "$OUT/ort-optimize.log")" ;;
    *)
      if [ $r -eq 0 ]; then
        # shellcheck disable=SC2086
        timeout "$(left "${ORT_CHECK_TIMEOUT:-60}")" node dist/gpu-ort-optimized.mjs --ep "$EP" --optimized "$opt" --stats "$OUT/optimizer-stats.json" --out "$OUT" ${ORT_CHECK_ARGS:-}
        r=$?
      fi
      echo "== ORT optimizer check exit $r after $((SECONDS - t0)) s"
      [ $r -eq 0 ] || [ $rc -ne 0 ] || rc=$r
      ;;
  esac
fi
if [ "${SKIP_ORT_VS:-0}" != 1 ] && has_time "ORT optimizer vs builder"; then
  t0=$SECONDS
  # shellcheck disable=SC2086
  timeout "$(left "${ORT_VS_TIMEOUT:-90}")" node dist/gpu-ort-vs-builder.mjs --ep "$EP" --shape "$([ "$SHAPE" = tiny ] && echo tiny || echo check)" --out "$OUT" ${ORT_VS_ARGS:-}
  r=$?
  echo "== ORT optimizer vs builder exit $r after $((SECONDS - t0)) s"
  [ $r -eq 0 ] || [ $rc -ne 0 ] || rc=$r
fi
nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
ls -la "$OUT"
exit $rc
