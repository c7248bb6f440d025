/**
 * Perceptual distance between two frames, pluggable: latent blending only needs "how different do
 * these two images look" to decide where the next branch goes.
 *
 * - LPIPS from an ONNX model when one is configured (the reference uses LPIPS AlexNet v0.1);
 * - otherwise a built-in metric that needs no weights: a full-resolution Laplacian pyramid of the
 *   luminance difference (texture and structure at 2..32 px), plus low-weighted brightness and
 *   colour differences, ranking distortions the way LPIPS does (test/engine/blend/perceptual.test.ts).
 */
import { sharpOf, type RawImage } from '../image.ts';
import { InvalidRequestError } from '../errors.ts';
import { ModelFileError, openSession, openSessionFromBytes, ort, type LoadedSession, type SessionOptions, type TensorInfo } from '../onnx/session.ts';
import { floatTensor, readFloat } from '../tensor/tensors.ts';

export interface PerceptualMetric {
  /** Reported with every transition so results say how gaps were measured. */
  readonly name: string;
  distance(a: RawImage, b: RawImage): Promise<number>;
  /** Several pairs at once (one batched model call where the metric has one); else distance() per pair. */
  distances?(pairs: ReadonlyArray<readonly [RawImage, RawImage]>): Promise<number[]>;
  release?(): Promise<void>;
}

/**
 * The built-in metric's constants, one place for the JavaScript version below and the ONNX graph
 * of the same computation (models/perceptual-graph.ts, OnnxBuiltinMetric).
 */
export const BUILTIN_METRIC = {
  /** Rec. 601 luma weights of R, G, B. */
  luma: [0.299, 0.587, 0.114] as const,
  /** Weight of the coarsest (low-pass) luminance difference: uniform brightness changes barely register with LPIPS. */
  lowPassWeight: 0.1,
  /** Weight of the block-averaged chroma difference (colour casts). */
  chromaWeight: 0.25,
  /** Side of the blocks chroma is averaged over (colour is seen at low resolution). */
  chromaBlock: 8,
  /** Band-pass levels: 2, 4, 8, 16, 32 px detail, then the low-pass rest. */
  levels: 5,
} as const;
const { lowPassWeight: LOW_PASS_WEIGHT, chromaWeight: CHROMA_WEIGHT, chromaBlock: CHROMA_BLOCK, levels: MAX_LEVELS } = BUILTIN_METRIC;
const [LUMA_R, LUMA_G, LUMA_B] = BUILTIN_METRIC.luma;

/**
 * The smallest frame side for which every pyramid level runs (the JavaScript version stops early
 * below it, when a level would be smaller than 4 pixels); the ONNX graph always runs all levels,
 * so OnnxBuiltinMetric hands smaller frames to the JavaScript version.
 */
export const BUILTIN_METRIC_FULL_PYRAMID_SIDE = 4 << (MAX_LEVELS - 1);

/**
 * Separable [1, 2, 1] / 4 blur of a w x h plane (edges clamped) into `out`; returns the sum of
 * |src - out| (the band-pass energy of this level). `tmp` is scratch of the same size.
 */
function blurBand(src: Float32Array, w: number, h: number, out: Float32Array, tmp: Float32Array): number {
  for (let y = 0; y < h; y++) {
    const r = y * w;
    if (w === 1) {
      tmp[r] = src[r];
      continue;
    }
    let left = src[r];
    let mid = src[r];
    for (let x = 0; x < w - 1; x++) {
      const right = src[r + x + 1];
      tmp[r + x] = 0.25 * (left + right) + 0.5 * mid;
      left = mid;
      mid = right;
    }
    tmp[r + w - 1] = 0.75 * mid + 0.25 * left;
  }
  let band = 0;
  for (let y = 0; y < h; y++) {
    const up = (y > 0 ? y - 1 : 0) * w;
    const dn = (y < h - 1 ? y + 1 : h - 1) * w;
    const r = y * w;
    for (let x = 0; x < w; x++) {
      const v = 0.25 * (tmp[up + x] + tmp[dn + x]) + 0.5 * tmp[r + x];
      out[r + x] = v;
      const e = src[r + x] - v;
      band += e < 0 ? -e : e;
    }
  }
  return band;
}

/**
 * The weight-free default metric, at full resolution: a Laplacian pyramid of the luminance
 * difference. Each band-pass level (detail of 2, 4, 8, ... px) adds its mean absolute difference
 * with weight 1, the remaining low-pass difference (brightness) adds its with weight 0.1 and the
 * block-averaged chroma difference (colour) with weight 1/4 (BUILTIN_METRIC). So, like LPIPS, fine texture, noise and blur
 * (lost detail) weigh far more than a uniform brightness or colour shift of the same size.
 * The pyramid is linear, so one pyramid of A - B serves both frames: symmetric, exactly 0 for
 * identical frames, a few ms for a 512x512 pair (bench/results/perceptual.md).
 */
export class BuiltinPerceptualMetric implements PerceptualMetric {
  readonly name = BUILTIN_METRIC_NAME;
  async distance(a: RawImage, b: RawImage): Promise<number> {
    return builtinDistance(a, b);
  }
}

/** Pixels of all pairs in one call of OnnxBuiltinMetric (8 pairs at 512x512, 2 at 1024x1024); bigger stages take several calls. */
export const ONNX_METRIC_PIXELS_PER_CALL = 8 * 512 * 512;

const BUILTIN_METRIC_NAME = 'builtin-laplacian (full-resolution luminance detail at 5 scales, low-pass brightness, chroma)';

/**
 * The built-in metric computed by ONNX Runtime on the renderer's execution provider, from the graph
 * models/perceptual-graph.ts builds (the same computation as builtinDistance, within float32
 * rounding on the CPU: test/models/perceptual-graph.test.ts; on CUDA the device run checks it,
 * bench/perceptual.ts). On a GPU it should take far less than the several milliseconds per pair
 * of the CPU (to be measured by the device run), and a transition measures a stage's new gaps in
 * one call (distances). Inputs `a`, `b`: uint8 [N, H, W, 3]; output `distance`: float [N]. Frames
 * with a side under BUILTIN_METRIC_FULL_PYRAMID_SIDE go to the JavaScript version.
 */
export class OnnxBuiltinMetric implements PerceptualMetric {
  readonly name: string;
  private constructor(private readonly loaded: LoadedSession) {
    this.name = `${BUILTIN_METRIC_NAME}, on ${loaded.ep}`;
  }

  static async load(graph: Uint8Array, opts: SessionOptions = {}): Promise<OnnxBuiltinMetric> {
    const metric = new OnnxBuiltinMetric(await openSessionFromBytes(graph, 'the built-in perceptual metric graph', opts));
    // One small call now: the provider's first-run costs (kernel loading, memory arena) would
    // otherwise land in the first transition's gap timing, which plans its branches.
    const side = BUILTIN_METRIC_FULL_PYRAMID_SIDE;
    const frame: RawImage = { data: new Uint8Array(side * side * 3), width: side, height: side, channels: 3 };
    await metric.distance(frame, frame);
    return metric;
  }

  async distance(a: RawImage, b: RawImage): Promise<number> {
    return (await this.distances([[a, b]]))[0];
  }

  async distances(pairs: ReadonlyArray<readonly [RawImage, RawImage]>): Promise<number[]> {
    if (pairs.length === 0) return [];
    const [{ width: w, height: h }] = pairs[0];
    for (const [a, b] of pairs) {
      if (a.width !== b.width || a.height !== b.height || a.width !== w || a.height !== h) {
        throw new InvalidRequestError(`perceptual distance needs frames of the same size, got ${a.width}x${a.height} and ${b.width}x${b.height}`);
      }
    }
    if (Math.min(w, h) < BUILTIN_METRIC_FULL_PYRAMID_SIDE) return pairs.map(([a, b]) => builtinDistance(a, b));
    // At most ONNX_METRIC_PIXELS_PER_CALL pixels per call: the graph's float planes take about
    // 40 bytes per pixel and pair, beside the UNet's memory.
    const perCall = Math.max(1, Math.floor(ONNX_METRIC_PIXELS_PER_CALL / (w * h)));
    const frame = w * h * 3;
    const out: number[] = [];
    for (let start = 0; start < pairs.length; start += perCall) {
      const chunk = pairs.slice(start, start + perCall);
      const A = new Uint8Array(chunk.length * frame);
      const B = new Uint8Array(chunk.length * frame);
      chunk.forEach(([a, b], i) => {
        A.set(a.data.subarray(0, frame), i * frame);
        B.set(b.data.subarray(0, frame), i * frame);
      });
      const dims = [chunk.length, h, w, 3];
      const result = await this.loaded.session.run({ a: new ort.Tensor('uint8', A, dims), b: new ort.Tensor('uint8', B, dims) });
      out.push(...readFloat(result.distance));
    }
    return out;
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}

/** The built-in metric's value (synchronous; see BuiltinPerceptualMetric). */
export function builtinDistance(a: RawImage, b: RawImage): number {
  if (a.width !== b.width || a.height !== b.height) {
    throw new InvalidRequestError(`perceptual distance needs frames of the same size, got ${a.width}x${a.height} and ${b.width}x${b.height}`);
  }
  const { width: w0, height: h0 } = a;
  const n0 = w0 * h0;
  let d = new Float32Array(n0);
  // Chroma differences summed per block.
  const bw = Math.ceil(w0 / CHROMA_BLOCK);
  const bh = Math.ceil(h0 / CHROMA_BLOCK);
  const cb = new Float64Array(bw * bh);
  const cr = new Float64Array(bw * bh);
  const cnt = new Float64Array(bw * bh);
  const pa = a.data;
  const pb = b.data;
  const k = 1 / 255;
  const colBlock = new Int32Array(w0);
  for (let x = 0; x < w0; x++) colBlock[x] = (x / CHROMA_BLOCK) | 0;
  for (let y = 0; y < h0; y++) {
    const brow = ((y / CHROMA_BLOCK) | 0) * bw;
    let i = y * w0;
    let p = i * 3;
    for (let x = 0; x < w0; x++, i++, p += 3) {
      const dr = pa[p] - pb[p];
      const dg = pa[p + 1] - pb[p + 1];
      const db = pa[p + 2] - pb[p + 2];
      const dy = LUMA_R * dr + LUMA_G * dg + LUMA_B * db;
      d[i] = dy * k;
      const blk = brow + colBlock[x];
      cb[blk] += db - dy;
      cr[blk] += dr - dy;
      cnt[blk]++;
    }
  }
  let chroma = 0;
  for (let i = 0; i < cb.length; i++) chroma += (Math.abs(cb[i]) + Math.abs(cr[i])) / cnt[i];
  chroma *= (0.5 * k) / cb.length;

  let w = w0;
  let h = h0;
  let blurred = new Float32Array(n0);
  const tmp = new Float32Array(n0);
  let detail = 0;
  for (let level = 0; level < MAX_LEVELS && Math.min(w, h) >= 4; level++) {
    detail += blurBand(d, w, h, blurred, tmp) / (w * h);
    // Next level: the blurred difference, every other pixel.
    const nw = Math.max(1, w >> 1);
    const nh = Math.max(1, h >> 1);
    const next = d.subarray(0, nw * nh);
    for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) next[y * nw + x] = blurred[2 * y * w + 2 * x];
    d = next;
    w = nw;
    h = nh;
    blurred = blurred.subarray(0, nw * nh);
  }
  let low = 0;
  for (let i = 0; i < w * h; i++) low += Math.abs(d[i]);
  low /= w * h;
  return detail + LOW_PASS_WEIGHT * low + CHROMA_WEIGHT * chroma;
}

/**
 * LPIPS exported to ONNX. Expected: two float inputs (e.g. `in0`, `in1`), each [1, 3, H, W] RGB in
 * [-1, 1]; one output holding the distance (any shape: its mean is used). A model with fixed H, W gets
 * frames resized to that size. Export, e.g. with the `lpips` Python package:
 *   torch.onnx.export(lpips.LPIPS(net='alex'), (x0, x1), 'lpips.onnx', input_names=['in0','in1'],
 *                     output_names=['distance'], dynamic_axes={'in0': {2:'h',3:'w'}, 'in1': {2:'h',3:'w'}}, opset_version=17)
 */
/** Why a loaded model is not an LPIPS model (two float [N, 3, H, W] inputs, one output); undefined when it fits. */
function lpipsShapeIssue(loaded: LoadedSession): string | undefined {
  if (loaded.inputs.length !== 2) return `it has ${loaded.inputs.length} input${loaded.inputs.length === 1 ? '' : 's'}, not two`;
  for (const input of loaded.inputs) {
    if (input.type !== 'float32' && input.type !== 'float16') return `its input ${input.name} is ${input.type}, not a float image`;
    const channels = input.shape[1];
    if (input.shape.length !== 4 || (typeof channels === 'number' && channels !== 3 && channels !== -1)) {
      return `its input ${input.name} has shape [${input.shape.join(', ')}], not [N, 3, H, W]`;
    }
  }
  if (loaded.outputs.length !== 1) return `it has ${loaded.outputs.length} outputs, not one`;
  return undefined;
}

export class OnnxLpipsMetric implements PerceptualMetric {
  readonly name: string;
  private constructor(private readonly loaded: LoadedSession) {
    this.name = `lpips-onnx (${loaded.path})`;
  }

  static async load(path: string, opts: SessionOptions = {}): Promise<OnnxLpipsMetric> {
    const loaded = await openSession(path, opts);
    const issue = lpipsShapeIssue(loaded);
    if (issue) {
      await loaded.session.release();
      const list = (infos: TensorInfo[]) => infos.map((i) => `${i.name} ${i.type} [${i.shape.join(', ')}]`).join(', ') || 'none';
      throw new ModelFileError(
        path,
        `not a perceptual distance (LPIPS) model: ${issue}. The LPIPS model (--lpips, BLENDFARM_LPIPS_MODEL) rates how different two frames look, to place latent blending's frames; ` +
          `it takes two float image inputs [N, 3, H, W] in [-1, 1] and gives one output, the distance (models/README.md, "Perceptual distance"). ` +
          `This one has inputs ${list(loaded.inputs)} and outputs ${list(loaded.outputs)}; leave out --lpips for the built-in metric`,
      );
    }
    return new OnnxLpipsMetric(loaded);
  }

  private async prepare(img: RawImage, input: { type: string; shape: Array<number | string> }): Promise<{ data: Float32Array; h: number; w: number }> {
    let src = img;
    const [, , fh, fw] = input.shape;
    if (typeof fh === 'number' && typeof fw === 'number' && fh > 0 && fw > 0 && (fh !== img.height || fw !== img.width)) {
      const buf = await (await sharpOf(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })).resize(fw, fh, { fit: 'fill' }).raw().toBuffer();
      src = { data: new Uint8Array(buf), width: fw, height: fh, channels: 3 };
    }
    const plane = src.width * src.height;
    const data = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) data[c * plane + p] = src.data[p * 3 + c] / 127.5 - 1;
    return { data, h: src.height, w: src.width };
  }

  async distance(a: RawImage, b: RawImage): Promise<number> {
    const [i0, i1] = this.loaded.inputs;
    const x0 = await this.prepare(a, i0);
    const x1 = await this.prepare(b, i1);
    const out = await this.loaded.session.run({
      [i0.name]: floatTensor(i0.type, x0.data, [1, 3, x0.h, x0.w]),
      [i1.name]: floatTensor(i1.type, x1.data, [1, 3, x1.h, x1.w]),
    });
    const values = readFloat(out[this.loaded.outputs[0].name]);
    let sum = 0;
    for (const v of values) sum += v;
    return sum / values.length;
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}

export interface PerceptualMetricOptions extends SessionOptions {
  /**
   * Given: when the built-in metric's graph does not open on the GPU provider (out of memory, a
   * provider problem), createPerceptualMetric returns the JavaScript metric instead (the same
   * values, on the CPU) and calls this with why, on one line. Not given: that failure is thrown
   * (a benchmark of the graph must not quietly measure the JavaScript metric).
   */
  onFallback?: (reason: string) => void;
}

/**
 * LPIPS when a model path is given, else the built-in metric: on a GPU provider through ONNX
 * Runtime when a builder of its graph is given (models/perceptual-graph.ts; called only then),
 * otherwise in JavaScript (on the CPU the two take about the same time,
 * bench/results/perceptual.md). A graph that does not load falls back to JavaScript only with
 * `onFallback`; an LPIPS model that does not load always throws (its values are not the
 * built-in metric's).
 */
export async function createPerceptualMetric(lpipsModel?: string, opts: PerceptualMetricOptions = {}, builtinGraph?: () => Uint8Array): Promise<PerceptualMetric> {
  const { onFallback, ...session } = opts;
  if (lpipsModel) return OnnxLpipsMetric.load(lpipsModel, session);
  if (builtinGraph && session.ep && session.ep !== 'cpu') {
    if (!onFallback) return OnnxBuiltinMetric.load(builtinGraph(), session);
    try {
      return await OnnxBuiltinMetric.load(builtinGraph(), session);
    } catch (err) {
      onFallback((err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim());
    }
  }
  return new BuiltinPerceptualMetric();
}
