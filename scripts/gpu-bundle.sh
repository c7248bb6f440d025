#!/usr/bin/env bash
# Bundles the benchmarks into dist/*.mjs for a GPU host that has only node and onnxruntime-node
# (the kit from ../shared/gpu: `bash ../shared/gpu/make-kit.sh .gpu-kit 90`). Native and optional
# packages stay external; nothing the benchmarks run needs sharp or ffmpeg.
#
# On the GPU host, from the repository root:
#   bash .gpu-kit/unpack.sh .gpu-kit/part1.tar.xz && bash .gpu-kit/unpack.sh .gpu-kit/part2.tar.xz
#   source /opt/blendkit/env.sh && ln -sfn /opt/blendkit/node_modules node_modules
#   node dist/bench-unet.mjs --shape sd15 --ep cuda --batches 2,4,8,16
#   node dist/bench-blend.mjs --synthetic-unet sd15 --ep cuda --size 512 --steps 30
#   node dist/bench-gpu.mjs --ep cuda --shape sd15     # the issue-12 benchmark; scripts/gpu-run.sh runs it all
# It also converts the esrgan-slim 4x upscaler into models/.cache/upscalers (from its npm package,
# which the GPU host lacks), for dist/gpu-upscale.mjs: carry that folder along (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for src in bench/unet.ts bench/blend.ts bench/gpu.ts bench/perceptual.ts scripts/gpu-check-fusion.ts scripts/gpu-upscale.ts scripts/gpu-ort-optimized.ts scripts/gpu-ort-vs-builder.ts; do
  name=$(basename "$src" .ts)
  case "$src" in bench/*) out="dist/bench-$name.mjs" ;; *) out="dist/$name.mjs" ;; esac
  npx esbuild "$src" --bundle --platform=node --format=esm --target=node20 \
    --external:onnxruntime-node --external:sharp --external:ffmpeg-static \
    --external:@ffmpeg-installer/ffmpeg --external:@ffprobe-installer/ffprobe \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
    --outfile="$out" --log-level=warning
done
npx tsx -e "import('./models/esrgan/catalog.ts').then(async (m) => console.log('upscaler for gpu-upscale:', await m.ensureSuperResolutionModel('esrgan-slim', 4)))"
ls -la dist/
