/**
 * CLIPImageProcessor (feature_extractor/preprocessor_config.json), as transformers turns a picture
 * into the pixel_values CLIP's vision tower takes:
 *
 *   resize   shortest side to size.shortest_edge, the other floor(shortest_edge * long / short)
 *            (get_resize_output_image_size), or to size.height x size.width; Pillow's resampling
 *            (`resample`, bicubic for CLIP) on uint8, reimplemented here bit for bit
 *   crop     crop_size from the centre, top-left at floor((side - crop) / 2), zeros where the
 *            picture is smaller than the crop; only the part of the resize inside the crop is
 *            computed (the same values), so a 4000x1 picture costs what a square one does
 *   values   uint8 * rescale_factor (1/255), then (x - image_mean) / image_std per channel; [3, H, W]
 *
 * Checked against transformers 5.17 (test/engine/variation/clip-reference.test.ts): the same uint8
 * picture as its PIL backend (CLIPImageProcessorPil, transformers 4's CLIPImageProcessor) at every
 * value, and at most one level off its torchvision backend (transformers 5's default) at a few
 * hundred of the 150528 values.
 */
import type { RawImage } from '../image.ts';
import { ModelFileError } from '../onnx/session.ts';

export const CLIP_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];

/** Pillow's resampling filters by their PIL.Image.Resampling number (NEAREST, 0, is not supported). */
export const PIL_RESAMPLE_FILTERS = { 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' } as const;
export type PilFilter = (typeof PIL_RESAMPLE_FILTERS)[keyof typeof PIL_RESAMPLE_FILTERS];

export interface ClipImageProcessor {
  /** do_resize + size: the shortest side to a length, or an exact size; null = no resize. */
  resize: { shortestEdge: number } | { width: number; height: number } | null;
  filter: PilFilter;
  /** do_center_crop + crop_size; null = no crop. */
  crop: { width: number; height: number } | null;
  /** do_rescale + rescale_factor (1 when off). */
  rescale: number;
  /** do_normalize + image_mean / image_std; null = no normalisation. */
  normalize: { mean: number[]; std: number[] } | null;
  /** Size of pixel_values (the crop, or an exact resize). */
  width: number;
  height: number;
}

const positiveInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Reads CLIPImageProcessor's settings, with its defaults for what the file leaves out. */
export function readClipImageProcessor(config: Record<string, unknown>, file = 'feature_extractor/preprocessor_config.json'): ClipImageProcessor {
  const bad = (what: string) => new ModelFileError(file, `${what} (CLIPImageProcessor's preprocessor_config.json as transformers writes it)`);
  let resize: ClipImageProcessor['resize'] = null;
  if (config.do_resize !== false) {
    const size = config.size ?? { shortest_edge: 224 };
    if (positiveInt(size)) resize = { shortestEdge: size as number }; // old files: an int is the shortest edge for CLIP
    else if (size && typeof size === 'object') {
      const s = size as Record<string, unknown>;
      if (s.longest_edge !== undefined && s.longest_edge !== null) throw bad(`"size" with longest_edge is not supported, got ${JSON.stringify(size)}`);
      if (positiveInt(s.shortest_edge)) resize = { shortestEdge: s.shortest_edge as number };
      else if (positiveInt(s.height) && positiveInt(s.width)) resize = { width: s.width as number, height: s.height as number };
    }
    if (!resize) throw bad(`"size" should be {"shortest_edge": n}, {"height": h, "width": w} or a whole number, got ${JSON.stringify(size)}`);
  }
  const resample = config.resample ?? 3;
  const filter = PIL_RESAMPLE_FILTERS[resample as keyof typeof PIL_RESAMPLE_FILTERS];
  if (!filter) throw bad(`"resample" should be one of PIL's filters 1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box), 5 (hamming), got ${JSON.stringify(resample)}`);
  let crop: ClipImageProcessor['crop'] = null;
  if (config.do_center_crop !== false) {
    const c = config.crop_size ?? 224;
    if (positiveInt(c)) crop = { width: c as number, height: c as number };
    else if (c && typeof c === 'object' && positiveInt((c as Record<string, unknown>).height) && positiveInt((c as Record<string, unknown>).width)) {
      crop = { width: (c as { width: number }).width, height: (c as { height: number }).height };
    } else throw bad(`"crop_size" should be {"height": h, "width": w} or a whole number, got ${JSON.stringify(c)}`);
  }
  const rescale = config.do_rescale === false ? 1 : Number(config.rescale_factor ?? 1 / 255);
  if (!(rescale > 0)) throw bad(`"rescale_factor" should be a positive number, got ${JSON.stringify(config.rescale_factor)}`);
  let normalize: ClipImageProcessor['normalize'] = null;
  if (config.do_normalize !== false) {
    const mean = (config.image_mean ?? CLIP_IMAGE_MEAN) as number[];
    const std = (config.image_std ?? CLIP_IMAGE_STD) as number[];
    if (!Array.isArray(mean) || mean.length !== 3 || mean.some((m) => typeof m !== 'number') || !Array.isArray(std) || std.length !== 3 || std.some((s) => !(typeof s === 'number' && s > 0))) {
      throw bad('expected image_mean (3 values) and image_std (3 positive values)');
    }
    normalize = { mean, std };
  }
  const out = crop ?? (resize && 'width' in resize ? resize : null);
  if (!out) throw bad('without a centre crop the size must be exact ({"height": h, "width": w}): the image encoder takes one size');
  return { resize, filter, crop, rescale, normalize, width: out.width, height: out.height };
}

/** transformers' resize target for a width x height picture ([width, height]). */
export function clipResizeSize(width: number, height: number, p: ClipImageProcessor): [number, number] {
  if (!p.resize) return [width, height];
  if ('width' in p.resize) return [p.resize.width, p.resize.height];
  const s = p.resize.shortestEdge;
  // get_resize_output_image_size(default_to_square=False): int(size * long / short) for the long side.
  return width <= height ? [s, Math.floor((s * height) / width)] : [Math.floor((s * width) / height), s];
}

const FILTERS: Record<PilFilter, { support: number; f: (x: number) => number }> = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, f: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  hamming: {
    support: 1,
    f: (x) => {
      x = Math.abs(x);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      return (Math.sin(x) / x) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
    },
  },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    f: (x) => {
      const sinc = (v: number) => (v === 0 ? 1 : Math.sin(v * Math.PI) / (v * Math.PI));
      return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
  },
};

/** Pillow's 8-bit fixed point: 22 fraction bits, rounding offset, clip to 0..255. */
const PRECISION_BITS = 32 - 8 - 2;

/**
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc for the output indices [from, from + count):
 * per output index (relative to `from`), first input index, count, integer weights. An index's
 * coefficients depend only on the index itself, so a range is computed exactly as the whole.
 */
function coefficients(inSize: number, outSize: number, filter: PilFilter, from = 0, count = outSize) {
  const { support: baseSupport, f } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = baseSupport * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(count * 2);
  const kk = new Int32Array(count * ksize);
  const w = new Float64Array(ksize);
  for (let i = 0; i < count; i++) {
    const xx = from + i;
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[i * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[i * 2] = xmin;
    bounds[i * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

const clip8 = (ss: number) => {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** A rectangle of a resized picture, in its pixels. */
export interface PixelRegion {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Image.resize((width, height), filter) of Pillow for an RGB picture, to the same uint8 values:
 * a horizontal pass over the rows the vertical pass needs, then a vertical pass, each rounded and
 * clipped to uint8 (Resample.c, ImagingResampleInner).
 *
 * With `region`, only that part of the resized picture is computed and returned (region.width x
 * region.height), to the same values as cropping the whole resize: each output column's and row's
 * weights depend only on its own index. Nothing of width x height is allocated: the horizontal pass
 * (first, as Pillow's: the values depend on its uint8 rounding before the vertical pass) makes only
 * the region's columns, for only the input rows the region's rows read, so the intermediate is
 * region.width x those rows (for CLIP's shortest-side resize, about crop x the picture's short side),
 * then the vertical pass makes the region.
 */
export function resizeLikePillow(img: RawImage, width: number, height: number, filter: PilFilter = 'bicubic', region?: PixelRegion): RawImage {
  if (!(positiveInt(width) && positiveInt(height))) throw new RangeError(`resize to ${width}x${height}: the size must be whole positive numbers`);
  const r = region ?? { left: 0, top: 0, width, height };
  if (!(Number.isInteger(r.left) && Number.isInteger(r.top) && positiveInt(r.width) && positiveInt(r.height) && r.left >= 0 && r.top >= 0 && r.left + r.width <= width && r.top + r.height <= height)) {
    throw new RangeError(`region ${r.width}x${r.height} at (${r.left}, ${r.top}) is not inside the ${width}x${height} resize`);
  }
  const C = img.channels;
  const needH = width !== img.width;
  const needV = height !== img.height;
  if (!needH && !needV) {
    // No resampling: the region of the picture itself.
    const out = new Uint8Array(r.width * r.height * C);
    for (let y = 0; y < r.height; y++) out.set(img.data.subarray(((r.top + y) * img.width + r.left) * C, ((r.top + y) * img.width + r.left + r.width) * C), y * r.width * C);
    return { data: out, width: r.width, height: r.height, channels: 3 };
  }
  const vert = needV ? coefficients(img.height, height, filter, r.top, r.height) : null;
  // The source of the vertical pass, and where the region's first column is in it.
  let src = img.data;
  let srcW = img.width;
  let srcX = r.left;
  if (needH) {
    // Input rows the vertical pass reads (all of the region's rows when there is none).
    let first = r.top;
    let rows = r.height;
    if (vert) {
      first = vert.bounds[0];
      rows = vert.bounds[r.height * 2 - 2] + vert.bounds[r.height * 2 - 1] - first;
      for (let i = 0; i < r.height; i++) vert.bounds[i * 2] -= first;
    }
    const { ksize, bounds, kk } = coefficients(img.width, width, filter, r.left, r.width);
    const tmp = new Uint8Array(r.width * rows * C);
    for (let yy = 0; yy < rows; yy++) {
      const row = (yy + first) * img.width * C;
      for (let xx = 0; xx < r.width; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const k = xx * ksize;
        for (let c = 0; c < C; c++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < xmax; x++) ss += img.data[row + (x + xmin) * C + c] * kk[k + x];
          tmp[(yy * r.width + xx) * C + c] = clip8(ss);
        }
      }
    }
    if (!vert) return { data: tmp, width: r.width, height: r.height, channels: 3 };
    src = tmp;
    srcW = r.width;
    srcX = 0;
  }
  const out = new Uint8Array(r.width * r.height * C);
  const { ksize, bounds, kk } = vert!;
  for (let yy = 0; yy < r.height; yy++) {
    const ymin = bounds[yy * 2];
    const ymax = bounds[yy * 2 + 1];
    const k = yy * ksize;
    for (let xx = 0; xx < r.width; xx++) {
      for (let c = 0; c < C; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < ymax; y++) ss += src[((y + ymin) * srcW + srcX + xx) * C + c] * kk[k + y];
        out[(yy * r.width + xx) * C + c] = clip8(ss);
      }
    }
  }
  return { data: out, width: r.width, height: r.height, channels: 3 };
}

/**
 * The uint8 picture CLIPImageProcessor normalises: resized and centre-cropped (RGB, width x height of `p`).
 * Only the part of the resize inside the crop is computed (resizeLikePillow's region), so a very thin
 * picture (4000x1: a 896000x224 resize) costs what its 224x224 crop does.
 */
export function clipProcessedImage(img: RawImage, p: ClipImageProcessor): RawImage {
  const [rw, rh] = clipResizeSize(img.width, img.height, p);
  if (!p.crop) return rw === img.width && rh === img.height ? img : resizeLikePillow(img, rw, rh, p.filter);
  const { width, height } = p.crop;
  // numpy center_crop: top = (h - crop) // 2 (floor, also when negative: then zero padding).
  const top = Math.floor((rh - height) / 2);
  const left = Math.floor((rw - width) / 2);
  // The part of the resized picture inside the crop (all of the crop unless the picture is smaller).
  const x0 = Math.max(0, left);
  const y0 = Math.max(0, top);
  const region = { left: x0, top: y0, width: Math.min(rw, left + width) - x0, height: Math.min(rh, top + height) - y0 };
  const part = resizeLikePillow(img, rw, rh, p.filter, region);
  if (region.width === width && region.height === height) return part;
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < region.height; y++) out.set(part.data.subarray(y * region.width * 3, (y + 1) * region.width * 3), ((y0 - top + y) * width + x0 - left) * 3);
  return { data: out, width, height, channels: 3 };
}

/** CLIPImageProcessor's pixel_values for one picture: [3, height, width], channel-planar. */
export function clipPixelValues(img: RawImage, p: ClipImageProcessor): Float32Array {
  const pic = clipProcessedImage(img, p);
  const plane = pic.width * pic.height;
  const px = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = p.normalize?.mean[c] ?? 0;
    const std = p.normalize?.std[c] ?? 1;
    for (let i = 0; i < plane; i++) px[c * plane + i] = (pic.data[i * 3 + c] * p.rescale - mean) / std;
  }
  return px;
}
