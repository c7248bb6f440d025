/**
 * Image variations: Stable Diffusion fine-tuned on CLIP image embeddings (lambdalabs/sd-image-variations-diffusers,
 * exported to ONNX; models/README.md). A CLIP vision encoder turns a picture into an image embedding,
 * which conditions the UNet (encoder_hidden_states [batch, 1, D]) in place of text; the unconditional
 * half of classifier-free guidance gets zeros, as diffusers' StableDiffusionImageVariationPipeline does.
 * A CLIP text encoder with projection (text_embeds, the same space) embeds the prompts CLIP guidance
 * steers towards or away from.
 */
import { loadTokenizer, type ClipTokenizer } from '../tokenizer/clip-tokenizer.ts';
import { chooseScheduler, createScheduler, type Scheduler, type SchedulerKind } from '../schedulers/index.ts';
import { readModelFolder, type ModelFolder } from '../pipeline/model-folder.ts';
import { UNet } from '../pipeline/unet.ts';
import { VaeDecoder } from '../pipeline/vae.ts';
import { denoiseLockstep } from '../pipeline/denoise.ts';
import { resolveSettings, validateSize } from '../pipeline/stable-diffusion.ts';
import type { PromptEmbedding } from '../pipeline/text-encoder.ts';
import { ModelFileError, openSession, type ExecutionProvider, type LoadedSession, type SessionOptions } from '../onnx/session.ts';
import { floatTensor, intTensor, readFloat } from '../tensor/tensors.ts';
import type { RawImage } from '../image.ts';
import { clipPixelValues, readClipImageProcessor, type ClipImageProcessor } from './clip-image.ts';
import { stepNoise } from '../noise.ts';
import { InvalidRequestError, ModelOutputError, nonFinite } from '../errors.ts';

export interface VariationPipelineOptions extends SessionOptions {
  scheduler?: SchedulerKind;
  maxBatch?: number;
}

export class ImageVariationPipeline {
  private textCache = new Map<string, Float32Array>();
  private constructor(
    readonly folder: ModelFolder,
    readonly tokenizer: ClipTokenizer,
    readonly imageEncoder: LoadedSession,
    readonly textEncoder: LoadedSession,
    readonly unet: UNet,
    readonly vae: VaeDecoder,
    readonly processor: ClipImageProcessor,
    readonly schedulerKind: SchedulerKind,
    readonly ep: ExecutionProvider,
  ) {}

  static async load(dir: string, opts: VariationPipelineOptions = {}): Promise<ImageVariationPipeline> {
    const folder = readModelFolder(dir);
    if (folder.kind !== 'image-variation' || !folder.imageEncoder) {
      throw new ModelFileError(dir, `this is a ${folder.kind} model; variations need an image-variation model with image_encoder/model.onnx (lambdalabs/sd-image-variations-diffusers exported as models/README.md says)`);
    }
    const session: SessionOptions = { ep: opts.ep, deviceId: opts.deviceId, threads: opts.threads };
    const tokenizer = await loadTokenizer(folder.tokenizerDir);
    const imageEncoder = await openSession(folder.imageEncoder, session);
    if (!imageEncoder.outputs.some((o) => o.name === 'image_embeds')) {
      throw new ModelFileError(folder.imageEncoder, `the image encoder has no image_embeds output (it has ${imageEncoder.outputs.map((o) => o.name).join(', ')}); export CLIPVisionModelWithProjection (models/README.md)`);
    }
    const textEncoder = await openSession(folder.textEncoder, session);
    if (!textEncoder.outputs.some((o) => o.name === 'text_embeds')) {
      throw new ModelFileError(
        folder.textEncoder,
        `an image-variation folder's text encoder must be CLIP's text model with projection (output text_embeds, the image embeddings' space) for CLIP guidance; it has ${textEncoder.outputs.map((o) => o.name).join(', ')} (models/README.md)`,
      );
    }
    const unet = await UNet.load(folder.unet, { ...session, maxBatch: opts.maxBatch, vaeScaleFactor: folder.vaeScaleFactor });
    const vae = await VaeDecoder.load(folder.vaeDecoder, folder.vaeScalingFactor, { ...session, forceUpcast: folder.vaeForceUpcast, scaleFactor: folder.vaeScaleFactor });
    const choice = chooseScheduler({
      requested: opts.scheduler,
      folderChoice: folder.requestedScheduler,
      config: folder.schedulerConfig,
      fallback: folder.defaults.scheduler,
      fallbackLabel: 'the image-variation default',
    });
    createScheduler(choice.kind, folder.schedulerConfig);
    return new ImageVariationPipeline(folder, tokenizer, imageEncoder, textEncoder, unet, vae, readClipImageProcessor(folder.featureExtractor ?? {}, `${folder.dir}/feature_extractor/preprocessor_config.json`), choice.kind, opts.ep ?? 'cpu');
  }

  get vaeScaleFactor(): number {
    return this.folder.vaeScaleFactor;
  }

  latentSize(width: number, height: number): [number, number] {
    validateSize(width, height, this.folder);
    return [height / this.vaeScaleFactor, width / this.vaeScaleFactor];
  }

  scheduler(steps: number, kind: SchedulerKind = this.schedulerKind, seed = 0): Scheduler {
    const s = createScheduler(kind, this.folder.schedulerConfig, { stepNoise: (i, n) => stepNoise(seed, i, n) });
    s.setTimesteps(steps);
    return s;
  }

  /**
   * The picture's CLIP image embedding: CLIPImageProcessor's preprocessing (clip-image.ts: shortest
   * side to size.shortest_edge with Pillow's bicubic, centre crop, rescale, normalise), then image_embeds.
   */
  async encodeImage(img: RawImage): Promise<Float32Array> {
    return this.encodePixelValues(this.pixelValues(img));
  }

  /** CLIPImageProcessor's pixel_values for the picture ([3, H, W], the processor's crop size). */
  pixelValues(img: RawImage): Float32Array {
    return clipPixelValues(img, this.processor);
  }

  /** image_embeds for pixel_values already made ([batch, 3, H, W] flattened; one embedding per picture). */
  async encodePixelValues(px: Float32Array): Promise<Float32Array> {
    const { width, height } = this.processor;
    const per = 3 * width * height;
    if (px.length === 0 || px.length % per !== 0) throw new InvalidRequestError(`pixel_values must hold batch x 3 x ${height} x ${width} values, got ${px.length}`);
    const input = this.imageEncoder.inputs.find((i) => i.name === 'pixel_values') ?? this.imageEncoder.inputs[0];
    const out = await this.imageEncoder.session.run({ [input.name]: floatTensor(input.type, px, [px.length / per, 3, height, width]) }, ['image_embeds']);
    const e = Float32Array.from(readFloat(out.image_embeds));
    if (nonFinite(e).count > 0) throw new ModelOutputError(`${this.imageEncoder.path}: the image encoder produced NaN/infinite embeddings`);
    return e;
  }

  /** A prompt's CLIP text embedding (text_embeds), in the image embeddings' space. */
  async encodeText(text: string): Promise<Float32Array> {
    const hit = this.textCache.get(text);
    if (hit) return hit;
    const info = this.tokenizer.encodeWithInfo(text, { pad: true });
    const input = this.textEncoder.inputs.find((i) => i.name === 'input_ids') ?? this.textEncoder.inputs[0];
    const out = await this.textEncoder.session.run({ [input.name]: intTensor(input.type, info.ids, [1, info.ids.length]) }, ['text_embeds']);
    const e = Float32Array.from(readFloat(out.text_embeds));
    this.textCache.set(text, e);
    return e;
  }

  /** Checks a requested size against the model and returns the resolved settings. */
  resolve(opts: { width?: number; height?: number; steps?: number; guidance?: number }) {
    return resolveSettings(this.folder.defaults, this.folder, opts);
  }

  /**
   * One picture per (embedding, starting noise) pair, denoised together. `noises` are standard
   * normal latents (C x h x w), scaled by the scheduler's initial sigma here, as diffusers' `latents=`.
   */
  async render(embeddings: Float32Array[], noises: Float32Array[], o: { width: number; height: number; steps: number; guidance: number; seed: number; signal?: AbortSignal }): Promise<RawImage[]> {
    const [h, w] = this.latentSize(o.width, o.height);
    const schedulers = embeddings.map(() => this.scheduler(o.steps, this.schedulerKind, o.seed));
    const sigma = schedulers[0].initNoiseSigma;
    const cond: PromptEmbedding[] = embeddings.map((e) => ({ hidden: e, tokens: 1, width: e.length, truncated: false }));
    const zeros: PromptEmbedding = { hidden: new Float32Array(embeddings[0].length), tokens: 1, width: embeddings[0].length, truncated: false };
    const final = await denoiseLockstep({
      unet: this.unet,
      latentSize: [h, w],
      schedulers,
      xs: noises.map((n) => (sigma === 1 ? Float32Array.from(n) : Float32Array.from(n, (v) => v * sigma))),
      cond,
      uncond: cond.map(() => zeros),
      guidance: cond.map(() => o.guidance),
      signal: o.signal,
    });
    const images: RawImage[] = [];
    for (const x of final) images.push(await this.vae.decode(x, h, w));
    return images;
  }

  get latentChannels(): number {
    return this.unet.latentChannels;
  }

  async release(): Promise<void> {
    await this.imageEncoder.session.release();
    await this.textEncoder.session.release();
    await this.unet.release();
    await this.vae.release();
  }
}
