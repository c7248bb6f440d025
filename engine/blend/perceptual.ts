/**
 * Perceptual distance between two frames, pluggable: latent blending only needs "how different do
 * these two images look" to decide where the next branch goes.
 *
 * - LPIPS from an ONNX model when one is configured (the reference uses LPIPS AlexNet v0.1);
 * - otherwise a built-in metric that needs no weights: multi-scale differences of luminance,
 *   chroma and luminance gradients (structure), averaged over three scales.
 */
import { sharpOf, type RawImage } from '../image.ts';
import { openSession, type LoadedSession, type SessionOptions } from '../onnx/session.ts';
import { floatTensor, readFloat } from '../tensor/tensors.ts';

export interface PerceptualMetric {
  /** Reported with every transition so results say how gaps were measured. */
  readonly name: string;
  distance(a: RawImage, b: RawImage): Promise<number>;
  release?(): Promise<void>;
}

interface Planes {
  w: number;
  h: number;
  y: Float32Array;
  cb: Float32Array;
  cr: Float32Array;
}

function toPlanes(img: RawImage, maxSide: number): Planes {
  // Box-downsample to at most maxSide on the long side: detail finer than that is noise to this metric.
  const f = Math.max(1, Math.ceil(Math.max(img.width, img.height) / maxSide));
  const w = Math.floor(img.width / f);
  const h = Math.floor(img.height / f);
  const y = new Float32Array(w * h);
  const cb = new Float32Array(w * h);
  const cr = new Float32Array(w * h);
  const norm = 1 / (255 * f * f);
  for (let by = 0; by < h; by++) {
    for (let bx = 0; bx < w; bx++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dy = 0; dy < f; dy++) {
        let p = ((by * f + dy) * img.width + bx * f) * 3;
        for (let dx = 0; dx < f; dx++, p += 3) {
          r += img.data[p];
          g += img.data[p + 1];
          b += img.data[p + 2];
        }
      }
      r *= norm;
      g *= norm;
      b *= norm;
      const o = by * w + bx;
      y[o] = 0.299 * r + 0.587 * g + 0.114 * b;
      cb[o] = 0.5 * (b - y[o]);
      cr[o] = 0.5 * (r - y[o]);
    }
  }
  return { w, h, y, cb, cr };
}

function halve(p: Planes): Planes {
  const w = Math.max(1, p.w >> 1);
  const h = Math.max(1, p.h >> 1);
  const shrink = (src: Float32Array) => {
    const out = new Float32Array(w * h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const x0 = Math.min(p.w - 1, 2 * x);
        const y0 = Math.min(p.h - 1, 2 * y);
        const x1 = Math.min(p.w - 1, x0 + 1);
        const y1 = Math.min(p.h - 1, y0 + 1);
        out[y * w + x] = 0.25 * (src[y0 * p.w + x0] + src[y0 * p.w + x1] + src[y1 * p.w + x0] + src[y1 * p.w + x1]);
      }
    return out;
  };
  return { w, h, y: shrink(p.y), cb: shrink(p.cb), cr: shrink(p.cr) };
}

function scaleDistance(a: Planes, b: Planes): number {
  const n = a.w * a.h;
  let lum = 0;
  let chroma = 0;
  let grad = 0;
  for (let yy = 0; yy < a.h; yy++) {
    for (let xx = 0; xx < a.w; xx++) {
      const i = yy * a.w + xx;
      lum += Math.abs(a.y[i] - b.y[i]);
      chroma += Math.abs(a.cb[i] - b.cb[i]) + Math.abs(a.cr[i] - b.cr[i]);
      const right = xx + 1 < a.w ? i + 1 : i;
      const down = yy + 1 < a.h ? i + a.w : i;
      const gax = a.y[right] - a.y[i];
      const gay = a.y[down] - a.y[i];
      const gbx = b.y[right] - b.y[i];
      const gby = b.y[down] - b.y[i];
      grad += Math.abs(gax - gbx) + Math.abs(gay - gby);
    }
  }
  return (lum + chroma + 2 * grad) / n;
}

/** The weight-free default metric. Symmetric, zero for identical images, grows with visible change. */
export class BuiltinPerceptualMetric implements PerceptualMetric {
  readonly name = 'builtin-multiscale (luminance, chroma, gradients at 3 scales)';
  async distance(a: RawImage, b: RawImage): Promise<number> {
    if (a.width !== b.width || a.height !== b.height) throw new RangeError('perceptual distance needs images of the same size');
    let pa = toPlanes(a, 128);
    let pb = toPlanes(b, 128);
    let total = 0;
    for (let s = 0; s < 3; s++) {
      total += scaleDistance(pa, pb);
      pa = halve(pa);
      pb = halve(pb);
    }
    return total / 3;
  }
}

/**
 * LPIPS exported to ONNX. Expected: two float inputs (e.g. `in0`, `in1`), each [1, 3, H, W] RGB in
 * [-1, 1]; one output holding the distance (any shape: its mean is used). A model with fixed H, W gets
 * frames resized to that size. Export, e.g. with the `lpips` Python package:
 *   torch.onnx.export(lpips.LPIPS(net='alex'), (x0, x1), 'lpips.onnx', input_names=['in0','in1'],
 *                     output_names=['distance'], dynamic_axes={'in0': {2:'h',3:'w'}, 'in1': {2:'h',3:'w'}}, opset_version=17)
 */
export class OnnxLpipsMetric implements PerceptualMetric {
  readonly name: string;
  private constructor(private readonly loaded: LoadedSession) {
    this.name = `lpips-onnx (${loaded.path})`;
  }

  static async load(path: string, opts: SessionOptions = {}): Promise<OnnxLpipsMetric> {
    const loaded = await openSession(path, opts);
    if (loaded.inputs.length < 2) {
      throw new Error(`${path}: an LPIPS model needs two image inputs ([1,3,H,W] in [-1,1]); this one has ${loaded.inputs.length}`);
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

/** LPIPS when a model path is given, else the built-in metric. */
export async function createPerceptualMetric(lpipsModel?: string, opts: SessionOptions = {}): Promise<PerceptualMetric> {
  return lpipsModel ? OnnxLpipsMetric.load(lpipsModel, opts) : new BuiltinPerceptualMetric();
}
