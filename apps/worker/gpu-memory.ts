// How large a job fits on this worker's GPU, and what running out of memory looks like.
//
// A worker advertises `maxPixels` (farm/queue.ts never hands it a job with more output pixels).
// Precedence: the maxPixels setting; on CUDA, an estimate from the card's total memory (nvidia-smi)
// and the model family; otherwise the farm default. The estimate is a model of ONNX Runtime's
// arenas, which keep each session's peak until the session is released, so the UNet's and the
// VAE's peaks add up:
//
//   peak MiB = base + UNet items x pixels x unetMiBPerMP + attention + pixels x vaeMiBPerMP + gaps
//   gaps = max(ONNX_METRIC_PIXELS_PER_CALL, pixels) x GAP_METRIC_BYTES_PER_PIXEL (the built-in gap
//          metric's graph on the GPU: one call holds at most that many pixels of pair frames)
//   attention (plain graphs only) = items x heads x tokens^2 x 2 bytes x 2 (scores and softmax),
//             tokens = pixels / 64 (SD 1.x/2.x: attention at the first level) or / 256 (SDXL)
//
// `items` is the UNet's batch per call (the engine's maxBatch, 16 by default: 8 branches with
// guidance). A UNet whose graph uses MultiHeadAttention (ONNX Runtime's fused SD graphs, see
// models/README.md "Fast GPU graphs") has no quadratic term. The per-family constants are
// estimates (fp16 weights plus the CUDA context; activations from the largest tensors alive at
// once); bench/results/gpu.md records measured peaks per phase to check them against. The worker
// uses at most 90% of the card.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ONNX_METRIC_PIXELS_PER_CALL, readModelFolder, type ExecutionProvider, type ModelFamily } from '../../engine/index.ts';
import { RenderError } from '../../farm/renderer.ts';

export interface MemoryModel {
  /** Weights of all components (fp16) plus the CUDA context and ONNX Runtime, MiB. */
  baseMiB: number;
  /** UNet activations per batch item per megapixel of output, MiB. */
  unetMiBPerMP: number;
  /** VAE decoder activations per megapixel of output (one image at a time), MiB. */
  vaeMiBPerMP: number;
  /** Heads and pixels per token where the UNet's first attention runs (plain graphs). */
  heads: number;
  pixelsPerToken: number;
}

const SD: MemoryModel = { baseMiB: 2600, unetMiBPerMP: 800, vaeMiBPerMP: 3000, heads: 8, pixelsPerToken: 64 };
const SDXL: MemoryModel = { baseMiB: 7600, unetMiBPerMP: 1000, vaeMiBPerMP: 3000, heads: 10, pixelsPerToken: 256 };
export const MEMORY_MODELS: Record<ModelFamily, MemoryModel> = {
  sd1: SD,
  sd2: { ...SD, heads: 5 },
  'sd2-v': { ...SD, heads: 5 },
  'sd-turbo': { ...SD, heads: 5 },
  sdxl: SDXL,
  'sdxl-turbo': SDXL,
};

/**
 * Float planes the gap metric's graph holds per pixel of a pair at its peak (casts of both
 * frames, their difference, the weighted sums, a pyramid level): an estimate, like the constants above.
 */
export const GAP_METRIC_BYTES_PER_PIXEL = 64;

/** The engine's UNet batch per call when the worker does not set one (engine/pipeline/unet.ts). */
export const DEFAULT_UNET_ITEMS = 16;
/** The farm's default when nothing better is known (the engine renders at most 4096 per side). */
export const DEFAULT_MAX_PIXELS = 2048 * 2048;
const ENGINE_MAX_PIXELS = 4096 * 4096;
const USABLE = 0.9;
const MiB = 1024 * 1024;

export function estimatePeakMiB(family: ModelFamily, pixels: number, opts: { items?: number; fusedAttention?: boolean } = {}): number {
  const m = MEMORY_MODELS[family];
  const items = opts.items ?? DEFAULT_UNET_ITEMS;
  const mp = pixels / MiB;
  const tokens = pixels / m.pixelsPerToken;
  const attention = opts.fusedAttention ? 0 : (items * m.heads * tokens * tokens * 2 * 2) / MiB;
  const gaps = (Math.max(ONNX_METRIC_PIXELS_PER_CALL, pixels) * GAP_METRIC_BYTES_PER_PIXEL) / MiB;
  return m.baseMiB + items * mp * m.unetMiBPerMP + attention + mp * m.vaeMiBPerMP + gaps;
}

/** Largest output size (a multiple of 64x64 pixels) whose estimated peak fits in 90% of `totalMiB`; 0 if none does. */
export function maxPixelsForMemory(totalMiB: number, family: ModelFamily, opts: { items?: number; fusedAttention?: boolean } = {}): number {
  const unit = 64 * 64;
  let lo = 0;
  let hi = ENGINE_MAX_PIXELS / unit;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (estimatePeakMiB(family, mid * unit, opts) <= USABLE * totalMiB) lo = mid;
    else hi = mid - 1;
  }
  return lo * unit;
}

/** Total memory of CUDA device `deviceId` in MiB, from nvidia-smi; null when it cannot be read. */
export function gpuTotalMiB(deviceId = 0): number | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=memory.total', '--format=csv,noheader,nounits', '-i', String(deviceId)], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
    const mib = Number(out.trim().split('\n')[0]);
    return Number.isFinite(mib) && mib > 0 ? mib : null;
  } catch {
    return null;
  }
}

/** Whether the pipeline's UNet graph uses fused attention (looks for MultiHeadAttention in a graph file of weights kept outside). */
export function unetHasFusedAttention(unetFile: string): boolean {
  if (!existsSync(unetFile) || statSync(unetFile).size > 64 * MiB) return false;
  return readFileSync(unetFile).includes('MultiHeadAttention');
}

export interface WorkerMemoryOptions {
  /** The maxPixels setting: wins when set. */
  maxPixels?: number;
  ep?: ExecutionProvider;
  deviceId?: number;
  modelDir?: string;
  /** For tests and odd hosts: the card's memory instead of asking nvidia-smi. */
  gpuMiB?: number | null;
}

const decided = new Map<string, number>();

/** The maxPixels a worker advertises (see the file comment); worked out once per set of options. */
export function workerMaxPixels(opts: WorkerMemoryOptions): number {
  if (opts.maxPixels !== undefined) return opts.maxPixels;
  const key = JSON.stringify([opts.ep, opts.deviceId, opts.modelDir, opts.gpuMiB]);
  let pixels = decided.get(key);
  if (pixels === undefined) decided.set(key, (pixels = estimateWorkerMaxPixels(opts)));
  return pixels;
}

function estimateWorkerMaxPixels(opts: WorkerMemoryOptions): number {
  if (opts.ep !== 'cuda') return DEFAULT_MAX_PIXELS;
  const total = opts.gpuMiB !== undefined ? opts.gpuMiB : gpuTotalMiB(opts.deviceId);
  if (!total) return DEFAULT_MAX_PIXELS;
  let family: ModelFamily = 'sd1';
  let fusedAttention = false;
  if (opts.modelDir) {
    try {
      const folder = readModelFolder(opts.modelDir);
      family = folder.family;
      fusedAttention = unetHasFusedAttention(folder.unet);
    } catch {
      // An unreadable folder fails the first render with a clear error; size for SD 1.x meanwhile.
    }
  }
  return maxPixelsForMemory(total, family, { fusedAttention });
}

/**
 * The error to fail an out-of-memory render with: not retryable (the same job runs out again on
 * the same worker; the farm then refunds it) and saying what to change.
 */
export function outOfMemoryError(err: unknown, size: { width?: number; height?: number }, maxPixels: number): RenderError {
  // The operator's text keeps onnxruntime's whole first line: its end names the allocation that failed.
  const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  const at = size.width && size.height ? ` at ${size.width}x${size.height}` : '';
  const forOwner = `The render ran out of memory on this worker${at}. Try a smaller size or fewer branches.`;
  return new RenderError(
    `The render ran out of memory on this worker${at} (it advertises up to ${maxPixels} pixels per frame). ` +
      `Try a smaller size or fewer branches; an operator can lower it with BLENDFARM_RENDERER_OPTIONS='{"maxPixels": N}'. (${first})`,
    { retryable: false, cause: err, userMessage: forOwner },
  );
}
