/**
 * Large images through a fixed-size network: overlapping tiles, each upscaled on its own, blended
 * with feathered weights so no seam shows.
 *
 * Along each axis tiles of `tile` low-resolution pixels start every `tile - overlap` pixels (the last
 * one is moved back to end at the image edge), so every tile has the same size and tiles can be
 * batched. Inside an overlap a tile's weight is 0 for the first `margin` pixels from its inner edge
 * (the pixels that "see" the tile's zero padding), then ramps linearly to 1; at image edges the weight
 * is 1. Two overlapping tiles' weights never both vanish (overlap > 2 margin), and the blend is
 * normalised by the summed weight.
 *
 * Memory is bounded by one row of tiles: the output is accumulated in a band of tile height (times
 * the scale) that slides down the image, and finished rows are written out as 8-bit RGB at once.
 */
import { type RawImage, toByte } from '../image.ts';
import { throwIfCancelled } from '../pipeline/denoise.ts';

/** Tile side in input pixels when none is given. */
export const DEFAULT_TILE = 128;

export interface TileOptions {
  /** Tile side in input pixels (default 128). */
  tile?: number;
  /** Overlap between neighbouring tiles in input pixels (default from the model's receptive field). */
  overlap?: number;
  /** Input pixels at a tile's inner edge that get no weight (default from the model's receptive field). */
  margin?: number;
  /** Tiles per network call (default 1; GPUs gain from more). */
  batch?: number;
  signal?: AbortSignal;
  /** After each network call: tiles done so far, and in all. */
  onTile?: (done: number, total: number) => void;
}

/** Runs the network on `count` tiles packed as [count, 3, h, w] floats in [0, 1]; returns [count, 3, sh, sw]. */
export type TileRunner = (input: Float32Array, count: number, h: number, w: number) => Promise<Float32Array>;

export interface TileGrid {
  tile: [number, number];
  xs: number[];
  ys: number[];
  overlap: number;
  margin: number;
}

const MAX_DEFAULT_MARGIN = 12;

/** Start offsets of equal tiles covering `length` (one tile of `length` when it is shorter than `tile`). */
export function tileStarts(length: number, tile: number, overlap: number): number[] {
  if (length <= tile) return [0];
  const step = tile - overlap;
  if (step < 1) throw new RangeError(`tile overlap ${overlap} must be smaller than the tile size ${tile}`);
  const starts: number[] = [];
  for (let s = 0; s + tile < length; s += step) starts.push(s);
  starts.push(length - tile);
  return starts;
}

/** Tile layout and blend parameters for an image, from the model's receptive radius. */
export function planTiles(width: number, height: number, receptiveRadius: number, opts: TileOptions = {}): TileGrid {
  // Deep networks' theoretical receptive field (hundreds of pixels for RRDN) far exceeds what
  // actually reaches an output pixel; half of it, capped, keeps the overlap affordable.
  const margin = opts.margin ?? Math.min(MAX_DEFAULT_MARGIN, Math.ceil(receptiveRadius / 2));
  const overlap = opts.overlap ?? 2 * margin + 8;
  const tile = opts.tile ?? DEFAULT_TILE;
  if (!Number.isInteger(tile) || tile < 8) throw new RangeError(`tile size must be a whole number of at least 8 pixels, got ${tile}`);
  if (!Number.isInteger(overlap) || overlap <= 2 * margin || overlap >= tile) {
    throw new RangeError(`tile overlap must be a whole number above twice the margin (${2 * margin}) and below the tile size (${tile}), got ${overlap}`);
  }
  const tw = Math.min(tile, width);
  const th = Math.min(tile, height);
  return { tile: [tw, th], xs: tileStarts(width, tw, overlap), ys: tileStarts(height, th, overlap), overlap, margin };
}

/**
 * Weight of output position u (0..size*scale-1) across one tile axis. `lead`/`trail`: a neighbouring
 * tile overlaps that side (image edges get full weight).
 */
export function featherWeights(size: number, scale: number, lead: boolean, trail: boolean, overlap: number, margin: number): Float32Array {
  const out = new Float32Array(size * scale);
  const ramp = overlap - 2 * margin;
  for (let u = 0; u < out.length; u++) {
    const d = (u + 0.5) / scale; // distance from the leading edge, in input pixels
    let w = 1;
    if (lead) w = Math.min(w, Math.max(0, (d - margin) / ramp));
    if (trail) w = Math.min(w, Math.max(0, (size - d - margin) / ramp));
    out[u] = w;
  }
  return out;
}

function tileInput(img: RawImage, x0: number, y0: number, w: number, h: number, out: Float32Array, offset: number): void {
  const plane = w * h;
  for (let y = 0; y < h; y++) {
    let src = ((y0 + y) * img.width + x0) * 3;
    const row = y * w;
    for (let x = 0; x < w; x++, src += 3) {
      out[offset + row + x] = img.data[src] / 255;
      out[offset + plane + row + x] = img.data[src + 1] / 255;
      out[offset + 2 * plane + row + x] = img.data[src + 2] / 255;
    }
  }
}

/** Upscales `img` by `scale` through `run`, tile by tile, with blended seams. */
export async function upscaleTiled(img: RawImage, scale: number, receptiveRadius: number, run: TileRunner, opts: TileOptions = {}): Promise<RawImage> {
  const grid = planTiles(img.width, img.height, receptiveRadius, opts);
  const batch = Math.max(1, Math.floor(opts.batch ?? 1));
  const [tw, th] = grid.tile;
  const W = img.width * scale;
  const H = img.height * scale;
  const otw = tw * scale;
  const oth = th * scale;
  const out = new Uint8Array(W * H * 3);
  // The sliding band: output rows [bandY, bandY + oth), RGB sums and weights.
  const acc = new Float32Array(oth * W * 3);
  const wsum = new Float32Array(oth * W);
  let bandY = 0;
  const flush = (untilY: number) => {
    const rows = untilY - bandY;
    if (rows <= 0) return;
    for (let r = 0; r < rows; r++) {
      for (let x = 0; x < W; x++) {
        const i = r * W + x;
        const wt = wsum[i];
        const o = ((bandY + r) * W + x) * 3;
        for (let c = 0; c < 3; c++) {
          const v = wt > 0 ? (acc[i * 3 + c] / wt) * 255 : 0;
          out[o + c] = toByte(v);
        }
      }
    }
    acc.copyWithin(0, rows * W * 3);
    acc.fill(0, (oth - rows) * W * 3);
    wsum.copyWithin(0, rows * W);
    wsum.fill(0, (oth - rows) * W);
    bandY = untilY;
  };

  const total = grid.xs.length * grid.ys.length;
  let done = 0;
  const wy = grid.ys.map((_, j) => featherWeights(th, scale, j > 0, j < grid.ys.length - 1, grid.overlap, grid.margin));
  const wx = grid.xs.map((_, i) => featherWeights(tw, scale, i > 0, i < grid.xs.length - 1, grid.overlap, grid.margin));
  const per = 3 * tw * th;
  const operPlane = otw * oth;
  for (const [j, y0] of grid.ys.entries()) {
    flush(y0 * scale);
    for (let start = 0; start < grid.xs.length; start += batch) {
      throwIfCancelled(opts.signal);
      const idx = grid.xs.slice(start, start + batch).map((_, k) => start + k);
      const input = new Float32Array(per * idx.length);
      idx.forEach((i, k) => tileInput(img, grid.xs[i], y0, tw, th, input, k * per));
      const result = await run(input, idx.length, th, tw);
      if (result.length !== idx.length * 3 * operPlane) {
        throw new Error(`the upscaler returned ${result.length} values for ${idx.length} tile(s) of ${tw}x${th}; expected ${idx.length * 3 * operPlane} (${scale}x)`);
      }
      idx.forEach((i, k) => {
        const base = k * 3 * operPlane;
        const ox = grid.xs[i] * scale;
        const oy = y0 * scale - bandY;
        for (let v = 0; v < oth; v++) {
          const wyv = wy[j][v];
          if (wyv === 0) continue;
          const rowA = (oy + v) * W + ox;
          for (let u = 0; u < otw; u++) {
            const wt = wyv * wx[i][u];
            if (wt === 0) continue;
            const a = rowA + u;
            const s = base + v * otw + u;
            acc[a * 3] += wt * result[s];
            acc[a * 3 + 1] += wt * result[s + operPlane];
            acc[a * 3 + 2] += wt * result[s + 2 * operPlane];
            wsum[a] += wt;
          }
        }
      });
      done += idx.length;
      opts.onTile?.(done, total);
    }
  }
  flush(H);
  return { data: out, width: W, height: H, channels: 3 };
}
