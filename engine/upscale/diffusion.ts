/**
 * The Stable Diffusion x4 upscaler (stabilityai/stable-diffusion-x4-upscaler exported to ONNX), used
 * the way latent blending uses it: the keyframes of a low-resolution transition are upscaled as their
 * own latent-blending transition, so consecutive upscaled frames share their early denoising steps
 * and do not flicker.
 *
 * One trajectory follows diffusers' StableDiffusionUpscalePipeline:
 *   image in [-1, 1]; noise_level (default 20) added with the low_res_scheduler (DDPM):
 *     cond = sqrt(abar_low[nl]) image + sqrt(1 - abar_low[nl]) noise
 *   latents ~ N(0, 1) * init_noise_sigma at the low-res size (4 channels)
 *   each step: unet(cat([scale_model_input(latents), cond], channel axis), t, text, class_labels = nl),
 *     classifier-free guidance with the unconditional half first, scheduler.step
 *   image = vae_decoder(latents / scaling_factor)  (the x4 VAE's own factor, 0.08333)
 *
 * The tree over keyframes K_0..K_n-1: the first and last run in full from one shared noise; the
 * middle keyframe of every interval branches off its two neighbours at an injection step (deeper for
 * deeper levels), from the slerp of their latents at that step, with its own conditioning. Optional
 * in-between frames per gap branch off later still, conditioned on the slerp of the two neighbours'
 * noised low-res images and the lerp of their text embeddings (the reference's mixed conditioning).
 * All branches of one level run as one batched UNet call per step.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFileError, openSession, type LoadedSession, type SessionOptions, type TensorInfo, ort } from '../onnx/session.ts';
import { floatTensor, numericTensor, readFloat } from '../tensor/tensors.ts';
import { loadTokenizer } from '../tokenizer/clip-tokenizer.ts';
import { TextEncoders, lerpEmbedding, type PromptEmbedding } from '../pipeline/text-encoder.ts';
import { VaeDecoder } from '../pipeline/vae.ts';
import { readJson, requireModelFolder, unetDownsampling } from '../pipeline/model-folder.ts';
import { MAX_GUIDANCE, MAX_STEPS } from '../pipeline/stable-diffusion.ts';
import { chooseScheduler, createScheduler, type Scheduler, type SchedulerKind } from '../schedulers/index.ts';
import { makeAlphasCumprod, makeBetas, resolveSchedulerConfig, SCHEDULER_BASE_DEFAULTS } from '../schedulers/scheduler.ts';
import { MAX_SEED, SeededRandom, drawSeed, latentNoise } from '../noise.ts';
import { slerp } from '../blend/slerp.ts';
import { throwIfCancelled } from '../pipeline/denoise.ts';
import { InvalidRequestError } from '../errors.ts';
import type { RawImage } from '../image.ts';

/** Denoising steps of the x4 upscaler when a request names none. */
export const DEFAULT_UPSCALE_STEPS = 25;
/** The fewest steps the x4 upscaler's tree can branch between. */
export const MIN_UPSCALE_STEPS = 2;

export interface DiffusionUpscalerFolder {
  dir: string;
  unet: string;
  vaeDecoder: string;
  textEncoder: string;
  tokenizerDir: string;
  schedulerConfig: Record<string, unknown>;
  lowResSchedulerConfig: Record<string, unknown>;
  vaeScalingFactor: number;
  /** Output pixels per latent cell: 4 for the x4 upscaler (2^(len(block_out_channels) - 1)). */
  scale: number;
  /**
   * The UNet downsamples its input 2^(len(block_out_channels) - 1) times per side (unet/config.json;
   * 8 for the released model), so the low-res size must be a multiple of it.
   */
  sizeMultiple: number;
  maxNoiseLevel: number;
}


/** Reads an x4 upscaler folder in the diffusers / optimum ONNX layout. */
export function readDiffusionUpscalerFolder(dir: string): DiffusionUpscalerFolder {
  requireModelFolder(dir, 'stabilityai/stable-diffusion-x4-upscaler exported to ONNX: model_index.json, unet/, vae_decoder/, text_encoder/, tokenizer/, scheduler/, low_res_scheduler/');
  const index = readJson(join(dir, 'model_index.json'), 'the pipeline index, model_index.json');
  const cls = String(index._class_name ?? '');
  if (!/StableDiffusionUpscalePipeline$/.test(cls)) {
    throw new ModelFileError(join(dir, 'model_index.json'), `_class_name is "${cls}", not a StableDiffusionUpscalePipeline; point --weights (BLENDFARM_X4_UPSCALER_DIR) at the x4 upscaler's ONNX export (models/README.md, "Upscalers")`);
  }
  const file = (component: string) => {
    const f = join(dir, component, 'model.onnx');
    if (!existsSync(f)) throw new ModelFileError(f, `file not found (expected the ${component} exported to ONNX as ${component}/model.onnx)`);
    return f;
  };
  const vaeConfigFile = [join(dir, 'vae_decoder', 'config.json'), join(dir, 'vae', 'config.json')].find((f) => existsSync(f));
  const vaeConfig = vaeConfigFile ? readJson(vaeConfigFile, 'the VAE config') : {};
  const blocks = Array.isArray(vaeConfig.block_out_channels) ? vaeConfig.block_out_channels.length : 3;
  const unetConfigFile = join(dir, 'unet', 'config.json');
  const unetConfig = existsSync(unetConfigFile) ? readJson(unetConfigFile, 'the UNet config') : {};
  // The one rule of model-folder.ts; the released x4 UNet has 4 blocks (8) when its config does not say.
  const sizeMultiple = unetDownsampling(unetConfigFile, unetConfig) ?? 8;
  return {
    dir,
    unet: file('unet'),
    vaeDecoder: file('vae_decoder'),
    textEncoder: file('text_encoder'),
    tokenizerDir: join(dir, 'tokenizer'),
    schedulerConfig: readJson(join(dir, 'scheduler', 'scheduler_config.json'), 'the scheduler config'),
    lowResSchedulerConfig: readJson(join(dir, 'low_res_scheduler', 'scheduler_config.json'), "the low-res image's noise scheduler config (DDPMScheduler)"),
    vaeScalingFactor: Number(vaeConfig.scaling_factor ?? 0.08333),
    scale: 2 ** (blocks - 1),
    sizeMultiple,
    maxNoiseLevel: Number(index.max_noise_level ?? 350),
  };
}

/** The x4 UNet: 7 input channels (4 latent + 3 image) and the noise level as class labels. */
class UpscaleUNet {
  calls = 0;
  items = 0;
  private readonly byName: Map<string, TensorInfo>;
  private readonly names: { sample: string; timestep: string; hidden: string; labels: string; out: string };

  constructor(readonly loaded: LoadedSession) {
    this.byName = new Map(loaded.inputs.map((i) => [i.name, i]));
    const find = (want: string[], what: string) => {
      const hit = want.find((w) => this.byName.has(w));
      if (!hit) throw new ModelFileError(loaded.path, `the upscaler UNet has no ${what} input (looked for ${want.join(', ')}; it has ${loaded.inputs.map((i) => i.name).join(', ')})`);
      return hit;
    };
    this.names = {
      sample: find(['sample'], 'latent sample'),
      timestep: find(['timestep', 'timesteps'], 'timestep'),
      hidden: find(['encoder_hidden_states'], 'text embedding'),
      labels: find(['class_labels', 'noise_level'], 'noise level (class_labels)'),
      out: loaded.outputs.find((o) => o.name === 'out_sample')?.name ?? loaded.outputs[0].name,
    };
    const ch = this.byName.get(this.names.sample)!.shape[1];
    if (typeof ch === 'number' && ch > 0 && ch !== 7) {
      throw new ModelFileError(loaded.path, `the UNet takes ${ch} input channels; the x4 upscaler's takes 7 (4 latent + 3 low-res image). Is this a text-to-image UNet?`);
    }
  }

  /** v/eps for n inputs of [7, h, w] (already concatenated), one timestep, per-item text and noise level. */
  async run(sample: Float32Array, n: number, h: number, w: number, t: number, hidden: PromptEmbedding[], noiseLevel: number): Promise<Float32Array> {
    const info = (name: string) => this.byName.get(name)!;
    const ts = info(this.names.timestep);
    const tn = ts.shape[0] === 1 ? 1 : n;
    const { tokens, width } = hidden[0];
    const text = new Float32Array(n * tokens * width);
    hidden.forEach((e, k) => text.set(e.hidden, k * tokens * width));
    const feeds: Record<string, ort.Tensor> = {
      [this.names.sample]: floatTensor(info(this.names.sample).type, sample, [n, 7, h, w]),
      [this.names.timestep]: numericTensor(ts.type, new Array(tn).fill(t), ts.shape.length === 0 ? [] : [tn]),
      [this.names.hidden]: floatTensor(info(this.names.hidden).type, text, [n, tokens, width]),
      [this.names.labels]: numericTensor(info(this.names.labels).type, new Array(n).fill(noiseLevel), [n]),
    };
    const out = await this.loaded.session.run(feeds, [this.names.out]);
    this.calls++;
    this.items += n;
    return Float32Array.from(readFloat(out[this.names.out]));
  }
}

export interface DiffusionUpscaleRequest {
  /** Low-resolution keyframes, in order, all the same size. */
  keyframes: RawImage[];
  /** Each keyframe's position in the transition, 0..1 (text mixing); default evenly spaced. */
  fracts?: number[];
  promptA?: string;
  /** Default: promptA. */
  promptB?: string;
  negativePrompt?: string;
  seed?: number;
  /** Default 25 (diffusers' default is 75). */
  steps?: number;
  /** Default 9 (diffusers' default). */
  guidance?: number;
  /** Noise added to the low-res image, 0..max_noise_level (default 20, diffusers' default). */
  noiseLevel?: number;
  /** Where the first keyframe branches off its neighbours, as a fraction of the steps (default 0.5). */
  depthStrength?: number;
  /** Extra frames per gap between neighbouring keyframes, with slerped conditioning (default 0). */
  inBetween?: number;
  signal?: AbortSignal;
  /** After each finished frame. */
  onFrame?: (done: number, total: number) => void;
}

export interface DiffusionUpscaledFrame {
  image: RawImage;
  fract: number;
  /** Index of the keyframe this frame upscales; null for an in-between frame. */
  keyframe: number | null;
  /** First own denoising step (0: ran in full); the steps before are its parents'. */
  injIdx: number;
  /** Frame indices (in `frames`) whose latents it branched from. */
  parents: [number, number] | null;
}

export interface DiffusionUpscaleResult {
  frames: DiffusionUpscaledFrame[];
  seed: number;
  steps: number;
  guidance: number;
  noiseLevel: number;
  /** UNet batch items run (a batch item is one latent, twice with guidance). */
  unetItems: number;
  /** Latents entering each step, per frame (null before its injection step); for tests. */
  latents: Array<Array<Float32Array | null>>;
}

interface Node {
  fract: number;
  keyframe: number | null;
  /** Index in the ordered output. */
  order: number;
  cond: Float32Array;
  text: PromptEmbedding;
  injIdx: number;
  parents: [number, number] | null;
  /** Latent entering step i (index i), and the final latent at index N (the schedule's length). */
  latents: Array<Float32Array | null>;
}

/** A request's settings once checked, defaults filled in (DiffusionUpscaler.settingsOf). */
interface UpscaleSettings {
  steps: number;
  guidance: number;
  noiseLevel: number;
  depth: number;
  inBetween: number;
  fracts: number[];
  seed: number;
}

/** What every level of one upscale shares (DiffusionUpscaler.denoiseLevel). */
interface LevelRun extends UpscaleSettings {
  /** The shared starting noise of the branches that run in full. */
  start: Float32Array;
  uncond: PromptEmbedding;
  width: number;
  height: number;
  timesteps: number[];
  signal?: AbortSignal;
}

/**
 * The branch tree over the keyframe nodes (see the file comment): `ordered` holds every frame in
 * output order (each keyframe followed by `inBetween` new frames, but the last), `levels` the batches
 * to run in order: 0 = the two ends in full, then bisection of the keyframe list (each level branching
 * `stride` steps later), then the in-betweens. Sets each branching node's injIdx and parents.
 */
function branchTree(keyNodes: Node[], N: number, depth: number, inBetween: number): { ordered: Node[]; levels: Node[][] } {
  const n = keyNodes.length;
  const ordered: Node[] = new Array((n - 1) * (inBetween + 1) + 1);
  for (const node of keyNodes) ordered[node.order] = node;
  const base = Math.max(1, Math.floor(N * depth));
  const stride = Math.max(1, Math.ceil(N / 10));
  const injAt = (level: number) => Math.min(N - 1, base + (level - 1) * stride);
  const levels: Node[][] = [[keyNodes[0], ...(n > 1 ? [keyNodes[n - 1]] : [])]];
  let intervals: [number, number][] = n > 2 ? [[0, n - 1]] : [];
  for (let level = 1; intervals.length > 0; level++) {
    const next: [number, number][] = [];
    const batch: Node[] = [];
    for (const [a, b] of intervals) {
      const m = Math.floor((a + b) / 2);
      const node = keyNodes[m];
      node.injIdx = injAt(level);
      node.parents = [keyNodes[a].order, keyNodes[b].order];
      batch.push(node);
      if (m - a >= 2) next.push([a, m]);
      if (b - m >= 2) next.push([m, b]);
    }
    levels.push(batch);
    intervals = next;
  }
  if (inBetween > 0) {
    const idx = injAt(levels.length);
    const batch: Node[] = [];
    for (let k = 0; k < n - 1; k++) {
      const [L, R] = [keyNodes[k], keyNodes[k + 1]];
      for (let m = 1; m <= inBetween; m++) {
        const t = m / (inBetween + 1);
        const node: Node = {
          fract: L.fract + t * (R.fract - L.fract),
          keyframe: null,
          order: L.order + m,
          // The reference's mixed conditioning: slerp of the neighbours' noised low-res images.
          cond: slerp(L.cond, R.cond, t),
          text: lerpEmbedding(L.text, R.text, t),
          injIdx: idx,
          parents: [L.order, R.order],
          latents: new Array(N + 1).fill(null),
        };
        ordered[node.order] = node;
        batch.push(node);
      }
    }
    levels.push(batch);
  }
  return { ordered, levels };
}

export class DiffusionUpscaler {
  readonly name = 'x4-diffusion';

  private constructor(
    readonly folder: DiffusionUpscalerFolder,
    private readonly text: TextEncoders,
    private readonly unet: UpscaleUNet,
    private readonly vae: VaeDecoder,
    private readonly schedulerKind: SchedulerKind,
    private readonly lowResAlphasCumprod: Float64Array,
    /** Why the scheduler scheduler_config.json names is not the one used (set by load). */
    readonly warnings: string[],
  ) {}

  /** `scheduler`: the caller's choice; else scheduler_config.json's class when the engine has it, else DDIM. */
  static async load(dir: string, opts: SessionOptions & { scheduler?: SchedulerKind } = {}): Promise<DiffusionUpscaler> {
    const folder = readDiffusionUpscalerFolder(dir);
    const tokenizer = await loadTokenizer(folder.tokenizerDir);
    const session: SessionOptions = { ep: opts.ep, deviceId: opts.deviceId, threads: opts.threads };
    const text = await TextEncoders.load({ textEncoder: folder.textEncoder }, [tokenizer], false, session);
    const unet = new UpscaleUNet(await openSession(folder.unet, session));
    const vae = await VaeDecoder.load(folder.vaeDecoder, folder.vaeScalingFactor, session);
    // The engine's one scheduler rule (it also fails at load time on an unusable config).
    const choice = chooseScheduler({ requested: opts.scheduler, config: folder.schedulerConfig, fallback: 'ddim', fallbackLabel: "the x4 upscaler's released scheduler" });
    const low = resolveSchedulerConfig(folder.lowResSchedulerConfig, SCHEDULER_BASE_DEFAULTS, 'low_res_scheduler');
    return new DiffusionUpscaler(folder, text, unet, vae, choice.kind, makeAlphasCumprod(makeBetas(low)), choice.warning ? [choice.warning] : []);
  }

  get scale(): number {
    return this.folder.scale;
  }

  get unetItems(): number {
    return this.unet.items;
  }

  private scheduler(steps: number, seed: number): Scheduler {
    const rng = new SeededRandom(seed);
    const s = createScheduler(this.schedulerKind, this.folder.schedulerConfig, { rng: () => rng.nextGaussian() });
    s.setTimesteps(steps);
    return s;
  }

  /** The low-res image in [-1, 1], CHW, noised to `level` with the low-res DDPM schedule and the shared noise. */
  private conditioning(img: RawImage, level: number, noise: Float32Array): Float32Array {
    const plane = img.width * img.height;
    const a = this.lowResAlphasCumprod[level];
    const sa = Math.sqrt(a);
    const sn = Math.sqrt(1 - a);
    const out = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = sa * (img.data[p * 3 + c] / 127.5 - 1) + sn * noise[c * plane + p];
    return out;
  }

  /** Upscales the keyframes as one latent-blending transition (see the file comment). */
  async upscaleKeyframes(req: DiffusionUpscaleRequest): Promise<DiffusionUpscaleResult> {
    const settings = this.settingsOf(req);
    const { steps, seed } = settings;
    const { width: w, height: h } = req.keyframes[0];
    const promptA = req.promptA ?? '';
    const [tA, tB, uncond] = [
      await this.text.encode(promptA),
      await this.text.encode(req.promptB ?? promptA),
      await this.text.encode(req.negativePrompt ?? '', { negative: true }),
    ];
    // The conditioning noise's seed follows the request's, wrapping at the top of the 32-bit range
    // (seed MAX_SEED, which a user may give, would otherwise be refused as 2^32).
    const imageNoise = latentNoise(seed === MAX_SEED ? 0 : seed + 1, 3 * w * h);
    const sched0 = this.scheduler(steps, seed);
    // UNet steps per trajectory: the schedule's length (steps + 1 for PNDM, whose schedule repeats a timestep).
    const N = sched0.timesteps.length;
    const start = latentNoise(seed, 4 * w * h);
    if (sched0.initNoiseSigma !== 1) for (let i = 0; i < start.length; i++) start[i] *= sched0.initNoiseSigma;

    const keyNodes: Node[] = req.keyframes.map((img, k) => ({
      fract: settings.fracts[k],
      keyframe: k,
      order: k * (settings.inBetween + 1),
      cond: this.conditioning(img, settings.noiseLevel, imageNoise),
      text: lerpEmbedding(tA, tB, settings.fracts[k]),
      injIdx: 0,
      parents: null,
      latents: new Array(N + 1).fill(null),
    }));
    const { ordered, levels } = branchTree(keyNodes, N, settings.depth, settings.inBetween);

    const itemsBefore = this.unet.items;
    let done = 0;
    const images = new Map<Node, RawImage>();
    for (const batch of levels) {
      throwIfCancelled(req.signal);
      const finals = await this.denoiseLevel(batch, ordered, { ...settings, start, uncond, width: w, height: h, timesteps: sched0.timesteps, signal: req.signal });
      for (const [k, node] of batch.entries()) {
        node.latents[N] = finals[k];
        images.set(node, await this.vae.decode(finals[k], h, w));
        req.onFrame?.(++done, ordered.length);
      }
    }
    return {
      frames: ordered.map((node) => ({ image: images.get(node)!, fract: node.fract, keyframe: node.keyframe, injIdx: node.injIdx, parents: node.parents })),
      seed,
      steps,
      guidance: settings.guidance,
      noiseLevel: settings.noiseLevel,
      unetItems: this.unet.items - itemsBefore,
      latents: ordered.map((node) => node.latents),
    };
  }

  /** The request checked once, with every default filled in (the file's one place for them). */
  private settingsOf(req: DiffusionUpscaleRequest): UpscaleSettings {
    const n = req.keyframes.length;
    if (n === 0) throw new InvalidRequestError('give at least one keyframe to upscale');
    const { width: w, height: h } = req.keyframes[0];
    for (const k of req.keyframes) {
      if (k.width !== w || k.height !== h) throw new InvalidRequestError(`all keyframes must have the same size; got ${w}x${h} and ${k.width}x${k.height}`);
    }
    const m = this.folder.sizeMultiple;
    if (w % m !== 0 || h % m !== 0) throw new InvalidRequestError(`the x4 upscaler needs a low-res size that is a multiple of ${m} on each side, got ${w}x${h}; pad or crop the keyframes (upscaleFrames pads them)`);
    const steps = req.steps ?? DEFAULT_UPSCALE_STEPS;
    if (!Number.isInteger(steps) || steps < MIN_UPSCALE_STEPS || steps > MAX_STEPS) throw new InvalidRequestError(`steps must be a whole number from ${MIN_UPSCALE_STEPS} to ${MAX_STEPS}, got ${steps}`);
    const guidance = req.guidance ?? 9;
    if (!(guidance >= 0 && guidance <= MAX_GUIDANCE)) throw new InvalidRequestError(`guidance must be between 0 and ${MAX_GUIDANCE}, got ${guidance}`);
    const noiseLevel = req.noiseLevel ?? 20;
    if (!Number.isInteger(noiseLevel) || noiseLevel < 0 || noiseLevel > this.folder.maxNoiseLevel) {
      throw new InvalidRequestError(`noise level must be a whole number from 0 to ${this.folder.maxNoiseLevel} (the model's max_noise_level), got ${noiseLevel}`);
    }
    const depth = req.depthStrength ?? 0.5;
    if (!(depth > 0 && depth < 1)) throw new InvalidRequestError(`depth strength must be between 0 and 1 (exclusive), got ${depth}`);
    const inBetween = req.inBetween ?? 0;
    if (!Number.isInteger(inBetween) || inBetween < 0 || inBetween > 16) throw new InvalidRequestError(`in-between frames must be a whole number from 0 to 16, got ${inBetween}`);
    const fracts = req.fracts ?? req.keyframes.map((_, i) => (n === 1 ? 0 : i / (n - 1)));
    if (fracts.length !== n) throw new InvalidRequestError(`fracts has ${fracts.length} entries for ${n} keyframes`);
    return { steps, guidance, noiseLevel, depth, inBetween, fracts, seed: req.seed ?? drawSeed() };
  }

  /**
   * Runs one level's branches together from their shared injection step to the end, one batched UNet
   * call per step, and returns each branch's final latent. A branch with parents starts from the slerp
   * of their latents at that step; the ends start from the shared noise. Records each branch's latent
   * entering every step (node.latents) for the levels below.
   */
  private async denoiseLevel(batch: Node[], ordered: Node[], run: LevelRun): Promise<Float32Array[]> {
    const { steps, seed, guidance, noiseLevel, width: w, height: h, timesteps } = run;
    const plane = w * h;
    const per = 4 * plane;
    const N = timesteps.length;
    const from = batch[0].injIdx;
    // Each branch's first step is set explicitly, as latent blending does: a schedule with a
    // repeated timestep (PNDM, Karras sigmas) cannot tell from the timestep where a branch starts.
    const scheds = batch.map(() => {
      const s = this.scheduler(steps, seed);
      s.setBeginIndex(from);
      return s;
    });
    let xs = batch.map((node) => {
      if (!node.parents) return Float32Array.from(run.start);
      const [pa, pb] = node.parents.map((o) => ordered[o]);
      const span = pb.fract - pa.fract;
      const t = span !== 0 ? (node.fract - pa.fract) / span : (node.order - pa.order) / (pb.order - pa.order);
      return slerp(pa.latents[from]!, pb.latents[from]!, t);
    });
    const guided = guidance > 1;
    // diffusers' order: the unconditional half first, then the conditional one.
    const halves = guided ? [true, false] : [false];
    const count = batch.length * halves.length;
    for (let i = from; i < N; i++) {
      throwIfCancelled(run.signal);
      batch.forEach((node, k) => (node.latents[i] = xs[k]));
      const t = timesteps[i];
      const sample = new Float32Array(count * 7 * plane);
      const hidden: PromptEmbedding[] = [];
      let slot = 0;
      for (const unc of halves) {
        for (const [k, node] of batch.entries()) {
          sample.set(scheds[k].scaleModelInput(xs[k], t), slot * 7 * plane);
          sample.set(node.cond, slot * 7 * plane + per);
          hidden.push(unc ? run.uncond : node.text);
          slot++;
        }
      }
      const out = await this.unet.run(sample, count, h, w, t, hidden, noiseLevel);
      xs = batch.map((_, k) => {
        const c = out.subarray((guided ? batch.length + k : k) * per, (guided ? batch.length + k + 1 : k + 1) * per);
        let pred: Float32Array = c;
        if (guided) {
          const u = out.subarray(k * per, (k + 1) * per);
          pred = new Float32Array(per);
          for (let j = 0; j < per; j++) pred[j] = u[j] + guidance * (c[j] - u[j]);
        }
        return Float32Array.from(scheds[k].step(pred, t, xs[k]).prevSample);
      });
    }
    return xs;
  }

  /**
   * Frames of a video as one transition (every frame a keyframe), for upscaleVideo. Sizes that are not
   * a multiple of the UNet's (folder.sizeMultiple, 8) are padded by repeating the edge and cropped back after.
   */
  async *upscaleFrames(
    frames: RawImage[],
    opts: Omit<DiffusionUpscaleRequest, 'keyframes' | 'onFrame'> & { onFrame?: (done: number) => void } = {},
  ): AsyncGenerator<RawImage> {
    if (frames.length === 0) return;
    const { width, height } = frames[0];
    const m = this.folder.sizeMultiple;
    const pw = Math.ceil(width / m) * m;
    const ph = Math.ceil(height / m) * m;
    const padded = frames.map((f) => padEdge(f, pw, ph));
    const result = await this.upscaleKeyframes({ ...opts, inBetween: 0, keyframes: padded, onFrame: (d) => opts.onFrame?.(d) });
    const s = this.scale;
    for (const frame of result.frames) yield cropTo(frame.image, width * s, height * s);
  }

  async release(): Promise<void> {
    for (const s of this.text.sessions) await s.session.release();
    await this.unet.loaded.session.release();
    await this.vae.release();
  }
}

function padEdge(img: RawImage, w: number, h: number): RawImage {
  if (img.width === w && img.height === h) return img;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const src = (Math.min(y, img.height - 1) * img.width + Math.min(x, img.width - 1)) * 3;
      data.set(img.data.subarray(src, src + 3), (y * w + x) * 3);
    }
  return { data, width: w, height: h, channels: 3 };
}

function cropTo(img: RawImage, w: number, h: number): RawImage {
  if (img.width === w && img.height === h) return img;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(img.data.subarray(y * img.width * 3, (y * img.width + w) * 3), y * w * 3);
  return { data, width: w, height: h, channels: 3 };
}
