/**
 * Super-resolution with a trained network on ONNX Runtime (CPU or CUDA), for images and videos.
 *
 * A super-resolution model folder holds
 *   model.onnx (+ its external weights)  input `image` [N, 3, H, W] RGB in [0, 1] -> [N, 3, sH, sW]
 *   upscaler.json                        { "kind": "super-resolution", "name", "scale", "receptiveRadius" }
 * (models/esrgan converts the @upscalerjs ESRGAN/RDN weights into exactly this). Images go through
 * the network in overlapping tiles (tiles.ts), so any frame size runs in bounded memory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFileError, openSession, type LoadedSession, type SessionOptions } from '../onnx/session.ts';
import { floatTensor, readFloat } from '../tensor/tensors.ts';
import type { RawImage } from '../image.ts';
import { upscaleTiled, type TileOptions } from './tiles.ts';

/** Tiles per network call when none is given: one on the CPU (no gain from more), eight on a GPU. */
export const DEFAULT_TILE_BATCH = { cpu: 1, gpu: 8 } as const;

export interface SuperResolutionManifest {
  kind: 'super-resolution';
  name: string;
  scale: number;
  /** Input pixels on each side that one output pixel depends on. */
  receptiveRadius: number;
}

export interface SuperResolutionLoadOptions extends SessionOptions {
  /** Tiles per network call; default 1 on the CPU (no gain measured, bench/results/upscale.md), 8 on GPUs. */
  batch?: number;
}

/** Reads and checks a super-resolution folder's upscaler.json. */
export function readSuperResolutionManifest(dir: string): SuperResolutionManifest {
  const file = join(dir, 'upscaler.json');
  if (!existsSync(file)) throw new ModelFileError(file, 'file not found (expected a super-resolution model folder: model.onnx and upscaler.json)');
  let json: Partial<SuperResolutionManifest>;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as Partial<SuperResolutionManifest>;
  } catch (err) {
    throw new ModelFileError(file, `not valid JSON (${(err as Error).message})`);
  }
  if (json.kind !== 'super-resolution') throw new ModelFileError(file, `"kind" must be "super-resolution", got ${JSON.stringify(json.kind)}`);
  if (!Number.isInteger(json.scale) || (json.scale as number) < 2) throw new ModelFileError(file, `"scale" must be a whole number of at least 2, got ${JSON.stringify(json.scale)}`);
  const radius = json.receptiveRadius ?? 16;
  if (!Number.isInteger(radius) || radius < 0) throw new ModelFileError(file, `"receptiveRadius" must be a whole number of pixels, got ${JSON.stringify(json.receptiveRadius)}`);
  return { kind: 'super-resolution', name: String(json.name ?? 'super-resolution'), scale: json.scale as number, receptiveRadius: radius };
}

export class SuperResolutionUpscaler {
  /** Network calls and tiles run so far (for tests and reports). */
  calls = 0;
  tiles = 0;

  private constructor(
    private readonly loaded: LoadedSession,
    readonly manifest: SuperResolutionManifest,
    readonly defaultBatch: number,
  ) {}

  static async load(dir: string, opts: SuperResolutionLoadOptions = {}): Promise<SuperResolutionUpscaler> {
    const manifest = readSuperResolutionManifest(dir);
    const loaded = await openSession(join(dir, 'model.onnx'), opts);
    const input = loaded.inputs[0];
    if (loaded.inputs.length !== 1 || input.shape.length !== 4 || (typeof input.shape[1] === 'number' && input.shape[1] > 0 && input.shape[1] !== 3)) {
      await loaded.session.release();
      throw new ModelFileError(join(dir, 'model.onnx'), `expected one input [N, 3, H, W] (RGB in [0, 1]), got ${loaded.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ')}`);
    }
    const ep = opts.ep ?? 'cpu';
    return new SuperResolutionUpscaler(loaded, manifest, opts.batch ?? DEFAULT_TILE_BATCH[ep === 'cpu' ? 'cpu' : 'gpu']);
  }

  get name(): string {
    return this.manifest.name;
  }

  get scale(): number {
    return this.manifest.scale;
  }

  get ep(): string {
    return this.loaded.ep;
  }

  /** The network on a packed batch of tiles (no tiling): [n, 3, h, w] in [0, 1] -> [n, 3, sh, sw]. */
  async runTiles(input: Float32Array, n: number, h: number, w: number): Promise<Float32Array> {
    const info = this.loaded.inputs[0];
    const outName = this.loaded.outputs[0].name;
    const result = await this.loaded.session.run({ [info.name]: floatTensor(info.type, input, [n, 3, h, w]) }, [outName]);
    this.calls++;
    this.tiles += n;
    return readFloat(result[outName]);
  }

  /** One image, `scale` times larger on each side. */
  async upscaleImage(img: RawImage, opts: TileOptions = {}): Promise<RawImage> {
    if (img.width < 1 || img.height < 1) throw new RangeError(`cannot upscale an empty ${img.width}x${img.height} image`);
    return upscaleTiled(img, this.scale, this.manifest.receptiveRadius, (x, n, h, w) => this.runTiles(x, n, h, w), {
      ...opts,
      batch: opts.batch ?? this.defaultBatch,
    });
  }

  /** Every frame upscaled, in order, one at a time (feeds encodeVideo without holding the large frames). */
  async *upscaleFrames(
    frames: Iterable<RawImage> | AsyncIterable<RawImage>,
    opts: TileOptions & { onFrame?: (done: number) => void } = {},
  ): AsyncGenerator<RawImage> {
    let done = 0;
    for await (const frame of frames) {
      yield await this.upscaleImage(frame, opts);
      opts.onFrame?.(++done);
    }
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}
