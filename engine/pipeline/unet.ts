/**
 * The UNet as a batched noise predictor with classifier-free guidance.
 *
 * One call predicts noise for n latents that share a timestep but may each have their own
 * conditioning and guidance scale: that is what lets latent blending run a whole stage of branches
 * as one batch (2n with guidance) instead of n calls of batch 2.
 */
import { ModelFileError, openSession, type LoadedSession, type SessionOptions, type TensorInfo, ort } from '../onnx/session.ts';
import { floatTensor, numericTensor, readFloat } from '../tensor/tensors.ts';
import type { PromptEmbedding } from './text-encoder.ts';
import { InvalidRequestError } from '../errors.ts';

export interface NoiseRequest {
  /** n latents, each C x h x w, already scaled by the scheduler's scaleModelInput. */
  latents: Float32Array;
  count: number;
  /** Latent height and width (image size / the VAE's scale factor). */
  latentSize: [number, number];
  timestep: number;
  cond: PromptEmbedding[];
  uncond: PromptEmbedding[];
  guidance: number[];
  /** SDXL micro-conditioning: [orig_h, orig_w, crop_top, crop_left, target_h, target_w]. */
  timeIds?: number[];
  /** Inpainting UNets (9 input channels): the mask and masked-picture latents every item shares. */
  inpaint?: InpaintConditioning;
}

/**
 * What an inpainting UNet takes besides the latents, concatenated on the channel axis in diffusers'
 * order for SD 2 inpainting: [latents (4), mask (1), masked_image_latents (4)].
 */
export interface InpaintConditioning {
  /** h x w at latent resolution: 1 = repaint, 0 = keep. */
  mask: Float32Array;
  /** 4 x h x w: the VAE encoding of the picture with the repainted area set to 0 (grey), scaled. */
  maskedImageLatents: Float32Array;
}

/** UNet session runs of one batch size: how many, and their wall milliseconds summed. */
export interface BatchTiming {
  batch: number;
  calls: number;
  ms: number;
}

/** Input channels of an inpainting UNet (SD 1.5 / SD 2 inpainting: 4 + 1 + 4). */
export const INPAINT_UNET_CHANNELS = 9;

export class UNet {
  readonly dtype: string;
  /** Channels of the UNet's sample input (9 for inpainting UNets). */
  readonly channels: number;
  /** Channels of the latents it denoises (and of its output): 4 for inpainting UNets, else `channels`. */
  readonly latentChannels: number;
  private readonly names: { sample: string; timestep: string; hidden: string; textEmbeds?: string; timeIds?: string; timestepCond?: string; out: string };
  /**
   * LCM-distilled UNets take the guidance scale as an embedding (`timestep_cond`, this wide)
   * instead of classifier-free guidance's second pass; undefined for every other UNet.
   */
  readonly timeCondDim: number | undefined;
  private readonly byName: Map<string, TensorInfo>;
  /** Calls made and batch items run so far (for tests, benchmarks and progress estimates). */
  calls = 0;
  items = 0;
  /** Wall time of the session runs by batch size since load, summed (renderVideo reports a render's share). */
  private readonly runTimes = new Map<number, { calls: number; ms: number }>();

  private constructor(
    readonly loaded: LoadedSession,
    /** Largest batch to send in one call; bigger requests are split. */
    readonly maxBatch: number,
    /** Image pixels per latent cell (the VAE's scale factor), for SDXL's default time_ids. */
    readonly vaeScaleFactor: number,
    /** unet/config.json's time_cond_proj_dim, when the folder has one. */
    configTimeCondDim?: number,
  ) {
    const inputs = loaded.inputs;
    this.byName = new Map(inputs.map((i) => [i.name, i]));
    const find = (want: string[], what: string): string => {
      const hit = want.find((w) => this.byName.has(w));
      if (!hit) {
        throw new ModelFileError(loaded.path, `the UNet has no ${what} input (looked for ${want.join(', ')}; it has ${inputs.map((i) => i.name).join(', ')}); is this a Stable Diffusion UNet exported to ONNX?`);
      }
      return hit;
    };
    const sampleNames = ['sample', 'latent_sample', 'x'];
    const timestepNames = ['timestep', 'timesteps', 't'];
    const hiddenNames = ['encoder_hidden_states', 'context'];
    // An input nobody feeds fails every render inside ONNX Runtime ("input 'class_labels' is missing"): refuse it at load.
    const fed = new Set([...sampleNames, ...timestepNames, ...hiddenNames, 'text_embeds', 'time_ids', 'timestep_cond']);
    const unknown = inputs.map((i) => i.name).filter((n) => !fed.has(n));
    if (unknown.length) {
      const hint = unknown.includes('class_labels') ? " (class_labels is the noise level of the x4 upscaler's UNet: use that model for upscaling, not as a text-to-image model)" : '';
      throw new ModelFileError(
        loaded.path,
        `the UNet takes ${unknown.join(', ')}, which a Stable Diffusion text-to-image, inpainting or image-variation UNet does not${hint}; point the model setting at such an export (models/README.md)`,
      );
    }
    this.names = {
      sample: find(sampleNames, 'latent sample'),
      timestep: find(timestepNames, 'timestep'),
      hidden: find(hiddenNames, 'text embedding'),
      textEmbeds: this.byName.has('text_embeds') ? 'text_embeds' : undefined,
      timeIds: this.byName.has('time_ids') ? 'time_ids' : undefined,
      timestepCond: this.byName.has('timestep_cond') ? 'timestep_cond' : undefined,
      out: loaded.outputs.find((o) => o.name === 'out_sample')?.name ?? loaded.outputs[0].name,
    };
    const sample = this.byName.get(this.names.sample)!;
    this.dtype = sample.type;
    this.channels = typeof sample.shape[1] === 'number' && sample.shape[1] > 0 ? sample.shape[1] : 4;
    this.latentChannels = this.channels === INPAINT_UNET_CHANNELS ? 4 : this.channels;
    if (this.channels !== 4 && this.channels !== INPAINT_UNET_CHANNELS) {
      // Depth-to-image (5), instruct-pix2pix (8), the x4 upscaler (7): their extra channels carry a picture nobody gives here.
      throw new ModelFileError(
        loaded.path,
        `the UNet takes ${this.channels} input channels; a text-to-image or image-variation UNet takes 4 and an inpainting UNet ${INPAINT_UNET_CHANNELS} (depth-to-image and instruct-pix2pix exports take 5 and 8, which blendfarm does not render); point the model setting at such an export (models/README.md)`,
      );
    }
    if (this.names.timestepCond) {
      const dim = this.byName.get(this.names.timestepCond)!.shape[1];
      const fromModel = typeof dim === 'number' && dim > 0 ? dim : undefined;
      if (fromModel !== undefined && configTimeCondDim !== undefined && fromModel !== configTimeCondDim) {
        throw new ModelFileError(loaded.path, `the UNet's timestep_cond input is ${fromModel} wide but unet/config.json says time_cond_proj_dim ${configTimeCondDim}; re-export the UNet with its config`);
      }
      this.timeCondDim = fromModel ?? configTimeCondDim;
      if (this.timeCondDim === undefined || this.timeCondDim < 4) {
        throw new ModelFileError(loaded.path, 'the UNet takes timestep_cond (an LCM guidance embedding) but neither its input shape nor unet/config.json (time_cond_proj_dim) says how wide it is; keep config.json next to model.onnx');
      }
    }
  }

  static async load(path: string, opts: SessionOptions & { maxBatch?: number; timeCondProjDim?: number; vaeScaleFactor?: number }): Promise<UNet> {
    return new UNet(await openSession(path, opts), opts.maxBatch ?? 16, opts.vaeScaleFactor ?? 8, opts.timeCondProjDim);
  }

  /** Takes a mask and masked-picture latents besides the latents (SD 2 / SD 1.5 inpainting). */
  get isInpaint(): boolean {
    return this.channels === INPAINT_UNET_CHANNELS;
  }

  get isXL(): boolean {
    return this.names.textEmbeds !== undefined;
  }

  async predict(req: NoiseRequest): Promise<Float32Array> {
    const per = req.latents.length / req.count;
    const out = new Float32Array(req.latents.length);
    // With guidance each latent costs two batch slots; an LCM UNet takes guidance as an embedding instead.
    const guided = this.timeCondDim === undefined && req.guidance.some((g) => g > 1);
    const chunk = Math.max(1, Math.floor(this.maxBatch / (guided ? 2 : 1)));
    for (let start = 0; start < req.count; start += chunk) {
      const end = Math.min(req.count, start + chunk);
      const part = await this.predictChunk(req, start, end, per, guided);
      out.set(part, start * per);
    }
    return out;
  }

  private async predictChunk(req: NoiseRequest, start: number, end: number, per: number, guided: boolean): Promise<Float32Array> {
    const n = end - start;
    const sample = req.latents.subarray(start * per, end * per);
    const conds = req.cond.slice(start, end);
    const unconds = req.uncond.slice(start, end);
    // diffusers' order: unconditional half first, then conditional.
    const batchEmb = guided ? [...unconds, ...conds] : conds;
    const batch = batchEmb.length;
    const { tokens, width } = conds[0];
    const [h, w] = req.latentSize;
    if (h * w * this.latentChannels !== per) throw new Error(`latent size ${per} does not match ${this.latentChannels}x${h}x${w}`);
    const items = this.isInpaint ? withInpaintChannels(sample, n, h * w, req.inpaint, this.loaded.path) : sample;
    const x = guided ? concat([items, items]) : items;
    const sampleInfo = this.byName.get(this.names.sample)!;
    const dims = [batch, this.channels, h, w];
    const feeds: Record<string, ort.Tensor> = {
      [this.names.sample]: floatTensor(sampleInfo.type, x, dims),
      [this.names.timestep]: this.timestepTensor(req.timestep, batch),
      [this.names.hidden]: floatTensor(this.byName.get(this.names.hidden)!.type, concat(batchEmb.map((e) => e.hidden)), [batch, tokens, width]),
    };
    if (this.names.textEmbeds) {
      const pooled = batchEmb.map((e) => {
        if (!e.pooled) throw new Error('this SDXL UNet needs pooled text embeddings, but the text encoders produced none');
        return e.pooled;
      });
      feeds[this.names.textEmbeds] = floatTensor(this.byName.get(this.names.textEmbeds)!.type, concat(pooled), [batch, pooled[0].length]);
    }
    if (this.names.timeIds) {
      const [ph, pw] = [dims[2] * this.vaeScaleFactor, dims[3] * this.vaeScaleFactor];
      const ids = req.timeIds ?? [ph, pw, 0, 0, ph, pw];
      const rep = new Float32Array(batch * ids.length);
      for (let b = 0; b < batch; b++) rep.set(ids, b * ids.length);
      feeds[this.names.timeIds] = floatTensor(this.byName.get(this.names.timeIds)!.type, rep, [batch, ids.length]);
    }
    if (this.names.timestepCond) {
      const dim = this.timeCondDim!;
      const emb = new Float32Array(batch * dim);
      // diffusers' LCM pipeline: w = guidance_scale - 1, one embedding per batch item.
      for (let b = 0; b < batch; b++) emb.set(guidanceScaleEmbedding(req.guidance[start + b] - 1, dim), b * dim);
      feeds[this.names.timestepCond] = floatTensor(this.byName.get(this.names.timestepCond)!.type, emb, [batch, dim]);
    }
    const started = performance.now();
    const result = await this.loaded.session.run(feeds, [this.names.out]);
    const times = this.runTimes.get(batch) ?? { calls: 0, ms: 0 };
    this.runTimes.set(batch, { calls: times.calls + 1, ms: times.ms + (performance.now() - started) });
    this.calls++;
    this.items += batch;
    const eps = readFloat(result[this.names.out]);
    if (!guided) return Float32Array.from(eps);
    const out = new Float32Array(n * per);
    for (let b = 0; b < n; b++) {
      const g = req.guidance[start + b];
      const u = b * per;
      const c = (n + b) * per;
      const o = b * per;
      if (g > 1) for (let i = 0; i < per; i++) out[o + i] = eps[u + i] + g * (eps[c + i] - eps[u + i]);
      else out.set(eps.subarray(c, c + per), o);
    }
    return out;
  }

  /** Session runs since load and their summed wall milliseconds, per batch size (a guided item counts 2), smallest first. */
  runTimings(): BatchTiming[] {
    return [...this.runTimes].map(([batch, t]) => ({ batch, ...t })).sort((a, b) => a.batch - b.batch);
  }

  private timestepTensor(t: number, batch: number): ort.Tensor {
    const info = this.byName.get(this.names.timestep)!;
    const first = info.shape[0];
    // Current optimum: a float scalar (shape []). Older exports: [batch] (symbolic or fixed); some
    // take a fixed [1] that broadcasts over the batch.
    if (info.shape.length === 0) return numericTensor(info.type, [t], []);
    const n = first === 1 ? 1 : batch;
    const dims = [n];
    return numericTensor(info.type, new Array(n).fill(t), dims);
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}

/** n items of [latents 4, mask 1, masked_image_latents 4] x h x w, as an inpainting UNet takes them. */
function withInpaintChannels(sample: Float32Array, n: number, plane: number, c: InpaintConditioning | undefined, path: string): Float32Array {
  if (!c) {
    throw new InvalidRequestError(
      `${path} is an inpainting UNet (9 input channels): it needs a picture and a mask (white = change); give them (--inpaint and --mask or --mask-preset), or use a text-to-image model`,
    );
  }
  if (c.mask.length !== plane || c.maskedImageLatents.length !== 4 * plane) {
    throw new Error(`inpainting conditioning has ${c.mask.length} mask and ${c.maskedImageLatents.length} picture values; the latents need ${plane} and ${4 * plane}`);
  }
  const per = 9 * plane;
  const out = new Float32Array(n * per);
  for (let b = 0; b < n; b++) {
    out.set(sample.subarray(b * 4 * plane, (b + 1) * 4 * plane), b * per);
    out.set(c.mask, b * per + 4 * plane);
    out.set(c.maskedImageLatents, b * per + 5 * plane);
  }
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Float32Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * diffusers' get_guidance_scale_embedding (LatentConsistencyModelPipeline), for one w:
 * w' = 1000 w; f_k = exp(-k ln(10000) / (half - 1)), k < half = dim / 2; [sin(w' f), cos(w' f)],
 * zero-padded to an odd dim. Computed in float32 steps like torch does.
 */
export function guidanceScaleEmbedding(w: number, dim: number): Float32Array {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(dim);
  const step = Math.fround(Math.fround(Math.log(10000)) / (half - 1));
  const ws = Math.fround(w * 1000);
  for (let k = 0; k < half; k++) {
    const f = Math.fround(Math.exp(Math.fround(-step * k)));
    const arg = Math.fround(ws * f);
    out[k] = Math.sin(arg);
    out[half + k] = Math.cos(arg);
  }
  return out;
}
