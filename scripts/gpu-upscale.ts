/**
 * node dist/gpu-upscale.mjs [--ep cuda] [--device 0] [--models DIR,...] [--size 512] [--tiles 128,256]
 *   [--batches 1,4,8,16] [--repeats 3] [--out DIR]
 *
 * Upscale speed by tile batch: each super-resolution model folder (default: the esrgan-slim 4x
 * conversion in the model cache, which `bash scripts/gpu-bundle.sh` makes) upscales one
 * size x size frame (the bot's default render size) through the engine's SuperResolutionUpscaler,
 * for every tile side and tiles-per-call batch: median ms per frame after a warm-up, output
 * megapixels per second, and the largest difference from batch 1 (tiles do not depend on their
 * batch, so it must be 0 or 1 level). The engine's GPU default is 8 tiles per call
 * (engine/upscale/super-resolution.ts); this is what should confirm or change it. Writes
 * upscale-gpu.json and upscale-gpu.md to --out. Needs only onnxruntime-node (no sharp, no
 * ffmpeg): the frame is drawn in code. The model folder is BLENDFARM_MODEL_CACHE's when that is set. CI runs it on the CPU with small sizes
 * (test/scripts/gpu-upscale.test.ts); scripts/gpu-run.sh runs it on a GPU after the benchmark.
 */
import { parseArgs } from 'node:util';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SuperResolutionUpscaler, type RawImage } from '../engine/index.ts';
import { DEFAULT_SUPER_RESOLUTION_MODEL, modelCacheRoot } from '../models/esrgan/catalog.ts';
import { CONVERTER_VERSION } from '../models/esrgan/convert.ts';
import { deviceName, gpuEp, median, wholeNumber, wholeNumbers } from '../bench/gpu-common.ts';

const { values } = parseArgs({
  options: {
    ep: { type: 'string', default: 'cuda' },
    device: { type: 'string', default: '0' },
    models: { type: 'string' },
    size: { type: 'string', default: '512' },
    tiles: { type: 'string', default: '128,256' },
    batches: { type: 'string', default: '1,4,8,16' },
    repeats: { type: 'string', default: '3' },
    out: { type: 'string', default: '.' },
  },
});
const ep = gpuEp(values.ep);
const deviceId = Number(values.device);
const size = wholeNumber('size', values.size!);
const tiles = wholeNumbers('tiles', values.tiles!);
const batches = wholeNumbers('batches', values.batches!);
const repeats = wholeNumber('repeats', values.repeats!);

/** The default upscaler's 4x conversion in the model cache (ensureSuperResolutionModel names it <model>-<version>-c<converter>/x4). */
function defaultModels(): string[] {
  const root = modelCacheRoot();
  const prefix = `${DEFAULT_SUPER_RESOLUTION_MODEL}-`;
  const suffix = `-c${CONVERTER_VERSION}`;
  const found = existsSync(root) ? readdirSync(root).filter((d) => d.startsWith(prefix) && d.endsWith(suffix) && existsSync(join(root, d, 'x4', 'model.onnx'))) : [];
  if (found.length !== 1) throw new Error(`${found.length === 0 ? 'no' : 'more than one'} ${DEFAULT_SUPER_RESOLUTION_MODEL} 4x conversion in ${root}: run bash scripts/gpu-bundle.sh here first (it converts it), or pass --models`);
  return [join(root, found[0], 'x4')];
}
const modelDirs = values.models ? values.models.split(',').map((d) => resolve(d.trim())) : defaultModels();

/** A frame with edges, gradients and texture at every scale, the same on every run. */
function testFrame(w: number, h: number): RawImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const ring = Math.sin(Math.hypot(x - w / 2, y - h / 2) * 0.15) * 60;
      data[i] = Math.max(0, Math.min(255, Math.round(128 + ring + (x / w) * 60)));
      data[i + 1] = (x >> 4) % 2 === (y >> 4) % 2 ? 200 : 40;
      data[i + 2] = Math.round(255 * ((x * 7 + y * 13) % 97) / 96);
    }
  }
  return { data, width: w, height: h, channels: 3 };
}

function maxDiff(a: RawImage, b: RawImage): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

interface Row {
  model: string;
  scale: number;
  tile: number;
  batch: number;
  tilesPerFrame: number;
  msPerFrame: number;
  outputMegapixelsPerSecond: number;
  maxDiffVsBatch1: number;
}

const outDir = resolve(values.out!);
await mkdir(outDir, { recursive: true });
const frame = testFrame(size, size);
const rows: Row[] = [];
const report = { gpu: deviceName(ep, deviceId), ep, date: new Date().toISOString(), frame: `${size}x${size}`, repeats, rows };
const save = () => writeFile(join(outDir, 'upscale-gpu.json'), JSON.stringify(report, null, 2) + '\n');

for (const dir of modelDirs) {
  // One session per model; the tiles per call are an option of each upscale.
  const upscaler = await SuperResolutionUpscaler.load(dir, { ep, deviceId });
  try {
    for (const tile of tiles) {
      let reference: RawImage | undefined;
      for (const batch of batches) {
        const first = await upscaler.upscaleImage(frame, { tile, batch }); // warm-up: allocator and kernel choice at this batch
        reference ??= first;
        const tilesBefore = upscaler.tiles;
        const times: number[] = [];
        for (let r = 0; r < repeats; r++) {
          const t0 = performance.now();
          await upscaler.upscaleImage(frame, { tile, batch });
          times.push(performance.now() - t0);
        }
        const ms = median(times, (t) => t);
        const scale = upscaler.manifest.scale;
        const row: Row = {
          model: upscaler.manifest.name,
          scale,
          tile,
          batch,
          tilesPerFrame: (upscaler.tiles - tilesBefore) / repeats,
          msPerFrame: Number(ms.toFixed(2)),
          outputMegapixelsPerSecond: Number(((size * scale) ** 2 / 1e6 / (ms / 1000)).toFixed(3)),
          maxDiffVsBatch1: maxDiff(first, reference),
        };
        rows.push(row);
        console.log(`${row.model} x${scale} tile ${tile} batch ${batch}: ${row.msPerFrame} ms/frame (${row.tilesPerFrame} tiles), ${row.outputMegapixelsPerSecond} MP/s, max diff vs batch 1: ${row.maxDiffVsBatch1}`);
        await save();
      }
    }
  } finally {
    await upscaler.release();
  }
}

const md = [
  `## ${report.date.slice(0, 10)}, ${report.gpu}, ${ep.toUpperCase()} EP`,
  '',
  `\`node dist/gpu-upscale.mjs ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
  '',
  `One ${size}x${size} frame, median of ${repeats} after a warm-up. Tiles do not depend on their batch: the last column must be 0 or 1.`,
  '',
  '| model | tile | tiles per call | tiles per frame | ms per frame | output MP/s | max diff vs batch 1 |',
  '| --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.model} x${r.scale} | ${r.tile} | ${r.batch} | ${r.tilesPerFrame} | ${r.msPerFrame} | ${r.outputMegapixelsPerSecond} | ${r.maxDiffVsBatch1} |`),
  '',
].join('\n');
await writeFile(join(outDir, 'upscale-gpu.md'), md);
await save();
console.log(md);
process.exitCode = rows.every((r) => r.maxDiffVsBatch1 <= 1) ? 0 : 1;
