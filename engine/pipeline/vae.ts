/** VAE decoder (latents -> RGB) and optional encoder (RGB -> latents), with the model's scaling factor. */
import { ModelFileError, openSession, openSessionFromBytes, type LoadedSession, type SessionOptions } from '../onnx/session.ts';
import { upcastModelToFloat32 } from '../onnx/upcast.ts';
import { floatTensor, readFloat } from '../tensor/tensors.ts';
import { imagesFromVaeOutput, vaeInputFromImage, type RawImage } from '../image.ts';
import { ModelOutputError, nonFinite } from '../errors.ts';
import { readFileSync } from 'node:fs';

/** What to do about an fp16 decoder (SDXL's VAE overflows in fp16: `force_upcast` in its config). */
export interface VaeDecoderOptions extends SessionOptions {
  /** vae_decoder/config.json force_upcast: decode in fp32 as diffusers does, converting an fp16 model. */
  forceUpcast?: boolean;
  /** Pixels per latent cell the folder says the decoder makes (ModelFolder.vaeScaleFactor); checked on every decode. */
  scaleFactor?: number;
}

const FP16_FIX =
  'use an fp32 VAE decoder (optimum-cli export onnx without --dtype fp16, or replace vae_decoder/ with an fp32 export) ' +
  'or an fp16-fixed VAE (madebyollin/sdxl-vae-fp16-fix exported as vae_decoder/)';

/** The end of a VAE-size error: the factor the folder gave, where it comes from and the fix. */
const scaleMismatch = (f: number) =>
  `, but the folder says ${f}x (vae_decoder/config.json's block_out_channels, or 8 when it gives none); put the export's own config.json next to vae_decoder/model.onnx`;

export class VaeDecoder {
  calls = 0;
  /** Wall milliseconds of those session runs, summed since load. */
  ms = 0;
  /** Load-time notes for the user (an fp16 VAE that should be upcast but cannot be). */
  readonly warnings: string[] = [];
  private constructor(
    private loaded: LoadedSession,
    readonly scalingFactor: number,
    /** The decoder's weights were fp16 and it now runs in fp32 (diffusers' force_upcast). */
    readonly upcast: boolean,
    /** The dtype of the model file as exported. */
    readonly exportedDtype: string,
    private readonly options: SessionOptions,
    private readonly scaleFactor?: number,
  ) {}

  static async load(path: string, scalingFactor: number, opts: VaeDecoderOptions): Promise<VaeDecoder> {
    const loaded = await openSession(path, opts);
    const dtype = loaded.inputs[0].type;
    const session: SessionOptions = { ep: opts.ep, deviceId: opts.deviceId, threads: opts.threads };
    if (dtype === 'float16' && opts.forceUpcast) {
      try {
        const fp32 = await upcastSession(path, session);
        await loaded.session.release();
        return new VaeDecoder(fp32, scalingFactor, true, dtype, session, opts.scaleFactor);
      } catch (err) {
        // Keep the fp16 decoder: images that do not overflow still decode, and those that do are refused.
        const vae = new VaeDecoder(loaded, scalingFactor, false, dtype, session, opts.scaleFactor);
        vae.warnings.push(
          `${path}: this fp16 VAE decoder is marked force_upcast (it overflows in fp16) but could not be converted to fp32 (${(err as Error).message}); ` +
            `images that overflow will fail instead of rendering; ${FP16_FIX}`,
        );
        return vae;
      }
    }
    return new VaeDecoder(loaded, scalingFactor, false, dtype, session, opts.scaleFactor);
  }

  /** The dtype the decoder runs in now. */
  get dtype(): string {
    return this.loaded.inputs[0].type;
  }

  /**
   * Decodes one latent (C x h x w, in the UNet's scaled space) to an image (h x w times the VAE's
   * scale factor). NaN or infinity in the output is an error, never a black frame; an fp16 decoder
   * that overflows is retried once in fp32 (converted from the fp16 file) before giving up.
   */
  async decode(latent: Float32Array, h: number, w: number): Promise<RawImage> {
    const bad = nonFinite(latent);
    if (bad.count > 0) {
      throw new ModelOutputError(
        `the latents to decode hold ${bad.count} NaN/infinite values (of ${latent.length}): the UNet or the sampler diverged; ` +
          'check that the scheduler config matches the model (prediction_type) and, for fp16 UNets, try an fp32 export',
      );
    }
    let out = await this.run(latent, h, w);
    let badOut = nonFinite(out.data);
    if (badOut.count > 0 && this.dtype === 'float16') {
      // An fp16 VAE overflowed: decode in fp32 from now on (what diffusers does for force_upcast VAEs).
      const fp32 = await upcastSession(this.loaded.path, this.options).catch((err: unknown) => {
        throw new ModelOutputError(
          `${this.loaded.path}: the fp16 VAE decoder overflowed (${badOut.count} NaN/infinite values of ${out.data.length}) and could not be converted to fp32 ` +
            `(${(err as Error).message}); ${FP16_FIX}`,
        );
      });
      await this.loaded.session.release();
      this.loaded = fp32;
      (this as { upcast: boolean }).upcast = true;
      out = await this.run(latent, h, w);
      badOut = nonFinite(out.data);
    }
    if (badOut.count > 0) {
      const fix = this.exportedDtype === 'float16' ? FP16_FIX : 'the VAE decoder file may be damaged; re-export it';
      throw new ModelOutputError(
        `${this.loaded.path}: the VAE decoder produced ${badOut.count} NaN/infinite values (of ${out.data.length}) instead of an image` +
          `${this.upcast ? ' even in fp32' : ''}; ${fix}`,
      );
    }
    return imagesFromVaeOutput(out.data, 1, out.H, out.W)[0];
  }

  private async run(latent: Float32Array, h: number, w: number): Promise<{ data: Float32Array; H: number; W: number }> {
    const input = this.loaded.inputs[0];
    const c = latent.length / (h * w);
    const scaled = new Float32Array(latent.length);
    for (let i = 0; i < latent.length; i++) scaled[i] = latent[i] / this.scalingFactor;
    const outName = this.loaded.outputs[0].name;
    const started = performance.now();
    const result = await this.loaded.session.run({ [input.name]: floatTensor(input.type, scaled, [1, c, h, w]) }, [outName]);
    this.ms += performance.now() - started;
    this.calls++;
    const t = result[outName];
    const [, , H, W] = t.dims as number[];
    const f = this.scaleFactor;
    if (f !== undefined && (H !== h * f || W !== w * f)) {
      // Otherwise every frame comes out at another size than the one asked for, without a word.
      throw new ModelFileError(
        this.loaded.path,
        `the VAE decoder made a ${W}x${H} picture from ${w}x${h} latents (${W / w}x)${scaleMismatch(f)}`,
      );
    }
    return { data: readFloat(t), H, W };
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}

async function upcastSession(path: string, opts: SessionOptions): Promise<LoadedSession> {
  const bytes = upcastModelToFloat32(readFileSync(path), path);
  return openSessionFromBytes(bytes, `${path} (upcast to fp32)`, opts);
}

export class VaeEncoder {
  private constructor(
    readonly loaded: LoadedSession,
    readonly scalingFactor: number,
    private readonly scaleFactor?: number,
  ) {}

  /** `opts.scaleFactor`: pixels per latent cell the folder says (ModelFolder.vaeScaleFactor); checked on every encode. */
  static async load(path: string, scalingFactor: number, opts: SessionOptions & { scaleFactor?: number }): Promise<VaeEncoder> {
    return new VaeEncoder(await openSession(path, opts), scalingFactor, opts.scaleFactor);
  }

  /**
   * Image -> scaled latents. Exports differ: some output a sampled `latent_sample` (4 channels),
   * others the distribution's `latent_parameters` (mean and log-variance, 8 channels); the mean is
   * used for the latter so encoding is deterministic.
   */
  async encode(img: RawImage): Promise<{ latent: Float32Array; h: number; w: number }> {
    const input = this.loaded.inputs[0];
    const outName = this.loaded.outputs[0].name;
    const result = await this.loaded.session.run(
      { [input.name]: floatTensor(input.type, vaeInputFromImage(img), [1, 3, img.height, img.width]) },
      [outName],
    );
    const t = result[outName];
    const [, c, h, w] = t.dims as number[];
    const f = this.scaleFactor;
    if (f !== undefined && (img.height !== h * f || img.width !== w * f)) {
      throw new ModelFileError(
        this.loaded.path,
        `the VAE encoder made ${w}x${h} latents from a ${img.width}x${img.height} picture (${img.width / w}x)${scaleMismatch(f)}`,
      );
    }
    const data = readFloat(t);
    const keep = c === 8 ? 4 : c;
    const latent = new Float32Array(keep * h * w);
    for (let i = 0; i < latent.length; i++) latent[i] = data[i] * this.scalingFactor;
    const bad = nonFinite(latent);
    if (bad.count > 0) throw new ModelOutputError(`${this.loaded.path}: the VAE encoder produced ${bad.count} NaN/infinite values; ${FP16_FIX.replace(/decoder/g, 'encoder')}`);
    return { latent, h, w };
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}
