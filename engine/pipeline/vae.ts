/** VAE decoder (latents -> RGB) and optional encoder (RGB -> latents), with the model's scaling factor. */
import { openSession, type LoadedSession, type SessionOptions } from '../onnx/session.ts';
import { floatTensor, readFloat } from '../tensor/tensors.ts';
import { imagesFromVaeOutput, vaeInputFromImage, type RawImage } from '../image.ts';

export class VaeDecoder {
  calls = 0;
  private constructor(
    readonly loaded: LoadedSession,
    readonly scalingFactor: number,
  ) {}

  static async load(path: string, scalingFactor: number, opts: SessionOptions): Promise<VaeDecoder> {
    return new VaeDecoder(await openSession(path, opts), scalingFactor);
  }

  /** Decodes one latent (C x h x w, in the UNet's scaled space) to an image 8x its size. */
  async decode(latent: Float32Array, h: number, w: number): Promise<RawImage> {
    const input = this.loaded.inputs[0];
    const c = latent.length / (h * w);
    const scaled = new Float32Array(latent.length);
    for (let i = 0; i < latent.length; i++) scaled[i] = latent[i] / this.scalingFactor;
    const outName = this.loaded.outputs[0].name;
    const result = await this.loaded.session.run({ [input.name]: floatTensor(input.type, scaled, [1, c, h, w]) }, [outName]);
    this.calls++;
    const t = result[outName];
    const [, , H, W] = t.dims as number[];
    return imagesFromVaeOutput(readFloat(t), 1, H, W)[0];
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}

export class VaeEncoder {
  private constructor(
    readonly loaded: LoadedSession,
    readonly scalingFactor: number,
  ) {}

  static async load(path: string, scalingFactor: number, opts: SessionOptions): Promise<VaeEncoder> {
    return new VaeEncoder(await openSession(path, opts), scalingFactor);
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
    const data = readFloat(t);
    const keep = c === 8 ? 4 : c;
    const latent = new Float32Array(keep * h * w);
    for (let i = 0; i < latent.length; i++) latent[i] = data[i] * this.scalingFactor;
    return { latent, h, w };
  }

  async release(): Promise<void> {
    await this.loaded.session.release();
  }
}
