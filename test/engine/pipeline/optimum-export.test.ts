/**
 * A real `optimum-cli export onnx` folder (tiny SD 1.x, random weights, byte-identical to optimum's
 * output; see test/fixtures/tiny-sd-optimum/README.md) loaded as a user would load it, checked
 * against diffusers' own numbers: each ONNX component on torch's inputs, then the whole DDIM
 * pipeline from diffusers' starting latents to the final image.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { StableDiffusionPipeline, InvalidRequestError, ModelFileError, readModelFolder, sharpOfForTests } from './optimum-helpers.ts';
import { testModelDir } from '../../../models/paths.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { maxAbsDiff, readReference, relDiff } from '../../helpers/reference-arrays.ts';

const DIR = fileURLToPath(new URL('../../fixtures/tiny-sd-optimum/', import.meta.url));
const { meta, ref } = readReference(DIR);

const ddim = meta.cases.find((c: { name: string }) => c.name === 'ddim_64');

describe('tiny-sd-optimum: what a user points BLENDFARM_MODEL_DIR at', () => {
  let pipe: StableDiffusionPipeline;
  beforeAll(async () => {
    pipe = await StableDiffusionPipeline.load(DIR);
  });
  afterAll(() => pipe?.release());

  it('reads the VAE scale factor from vae_decoder/config.json (2 here, not 8) and the defaults from it', () => {
    const folder = readModelFolder(DIR);
    expect(folder.vaeScaleFactor).toBe(2);
    expect(pipe.vaeScaleFactor).toBe(2);
    expect(folder.family).toBe('sd1');
    expect(folder.defaults.width).toBe(64); // unet sample_size 32 x 2
    expect(pipe.latentSize(64, 96)).toEqual([48, 32]);
  });

  it('validates sizes against the model\'s scale factor', async () => {
    await expect(pipe.generate({ prompt: 'x', width: 65, height: 64, steps: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(pipe.generate({ prompt: 'x', width: 65, height: 64, steps: 1 })).rejects.toThrow(/width must be a multiple of 4 for this model/);
  });

  it('and against its UNet\'s downsampling (block_out_channels: 2 blocks, halved once): 66 px is refused before ONNX Runtime fails on it (it was: "Concat ... mismatched dimensions of 33 and 34")', async () => {
    expect(readModelFolder(DIR).sizeMultiple).toBe(4);
    await expect(pipe.generate({ prompt: 'x', width: 66, height: 64, steps: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(pipe.generate({ prompt: 'x', width: 66, height: 64, steps: 1 })).rejects.toThrow(
      /^width must be a multiple of 4 for this model \(its VAE's factor 2 x its UNet's downsampling 2\) between 16 and 4096 pixels, got 66$/,
    );
    expect(() => pipe.resolve({ prompt: 'x', width: 68, height: 64 })).not.toThrow();
  });

  it('text encoder: the tokenizer gives diffusers\' ids and the hidden states match torch (int64 input_ids)', async () => {
    for (const key of ['prompt', 'negative_empty', 'negative_blurry']) {
      const { text, input_ids } = meta.text_encoder[key];
      expect(pipe.tokenizers[0].encodeWithInfo(text, { pad: true }).ids).toEqual(input_ids);
      const emb = await pipe.text.encode(text, { negative: key !== 'prompt' });
      const want = ref(`text_encoder.${key}.last_hidden_state`);
      expect([1, emb.tokens, emb.width]).toEqual(want.shape);
      expect(maxAbsDiff(emb.hidden, want.data)).toBeLessThan(1e-4);
    }
  });

  it('UNet: one call on torch\'s inputs (float scalar timestep) gives torch\'s noise prediction', async () => {
    const sample = ref('io.unet.inputs.sample');
    const t = ref('io.unet.inputs.timestep').data[0];
    const hidden = ref('io.unet.inputs.encoder_hidden_states');
    const [, tokens, width] = hidden.shape;
    const per = tokens * width;
    const emb = (b: number) => ({ hidden: hidden.data.slice(b * per, (b + 1) * per), tokens, width, truncated: false });
    // diffusers' batch is [uncond, cond]; the engine builds the same order for guidance > 1 and
    // returns the guided combination, so ask for guidance 1 per half to get each raw prediction.
    const [, c, h, w] = sample.shape;
    const one = c * h * w;
    const want = ref('io.unet.outputs.out_sample').data;
    for (const b of [0, 1]) {
      const eps = await pipe.unet.predict({ latents: sample.data.slice(b * one, (b + 1) * one), count: 1, latentSize: [h, w], timestep: t, cond: [emb(b)], uncond: [emb(b)], guidance: [1] });
      expect(relDiff(eps, want.subarray(b * one, (b + 1) * one))).toBeLessThan(1e-4);
    }
  });

  it('VAE decoder: torch\'s latent gives torch\'s image at twice the latent size', async () => {
    const z = ref('io.vae_decoder.inputs.latent_sample');
    const want = ref('io.vae_decoder.outputs.sample');
    const [, , h, w] = z.shape;
    // The engine takes latents in the UNet's space and divides by scaling_factor itself.
    const scaled = z.data.map((v) => v * pipe.vae.scalingFactor);
    const img = await pipe.vae.decode(scaled, h, w);
    expect([img.height, img.width]).toEqual([2 * h, 2 * w]);
    const [, , H, W] = want.shape;
    let worst = 0;
    for (let p = 0; p < H * W; p++)
      for (let ch = 0; ch < 3; ch++) {
        const expected = Math.round(Math.min(255, Math.max(0, (want.data[ch * H * W + p] + 1) * 127.5)));
        worst = Math.max(worst, Math.abs(img.data[p * 3 + ch] - expected));
      }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('VAE encoder: latent_parameters\' mean (first 4 of 8 channels) matches torch', async () => {
    const x = ref('io.vae_encoder.inputs.sample');
    const want = ref('io.vae_encoder.outputs.latent_parameters');
    const enc = pipe.vaeEncoder!;
    const [, , H, W] = x.shape;
    const out = await enc.loaded.session.run({ sample: new ort.Tensor('float32', Float32Array.from(x.data), x.shape) });
    expect(relDiff(out.latent_parameters.data as Float32Array, want.data)).toBeLessThan(1e-4);
    expect(out.latent_parameters.dims).toEqual([1, 8, H / 2, W / 2]);
  });

  it(`reproduces diffusers' DDIM image (${ddim.width}x${ddim.height}, ${ddim.num_inference_steps} steps, guidance ${ddim.guidance_scale}) from its starting latents`, async () => {
    const r = await pipe.generate({
      prompt: ddim.prompt,
      negativePrompt: ddim.negative_prompt,
      guidance: ddim.guidance_scale,
      steps: ddim.num_inference_steps,
      width: ddim.width,
      height: ddim.height,
      scheduler: 'ddim',
      latents: ref('ddim_64.input_latents').data,
      seed: 0,
    });
    expect(pipe.scheduler(ddim.num_inference_steps, 'ddim').timesteps).toEqual(ddim.timesteps);
    const img = r.images[0];
    expect([img.width, img.height]).toEqual([ddim.width, ddim.height]);
    // Final latents agree with diffusers' to float tolerance ...
    expect(relDiff(r.latents, ref('ddim_64.final_latents').data)).toBeLessThan(1e-3);
    // ... and the image within 1-2 uint8 levels, mean under 0.5 (diffusers' PNG and its float image).
    const png = await sharpOfForTests(join(DIR, 'reference_ddim_64.png'));
    expect(png.length).toBe(img.data.length);
    const floatsRef = ref('ddim_64.image').data;
    let worst = 0;
    let sum = 0;
    for (let i = 0; i < img.data.length; i++) {
      const d = Math.abs(img.data[i] - png[i]);
      worst = Math.max(worst, d, Math.abs(img.data[i] - Math.round(floatsRef[i] * 255)));
      sum += d;
    }
    expect(worst).toBeLessThanOrEqual(2);
    expect(sum / img.data.length).toBeLessThan(0.5);
  });

  it('starting latents of the wrong size are a clear request error', async () => {
    await expect(pipe.generate({ prompt: 'x', width: 64, height: 64, steps: 1, latents: new Float32Array(100) })).rejects.toThrow(
      /latents must hold batch x 4 x 32 x 32 values \(4096 per image for 64x64\), got 100/,
    );
  });
});

describe('a folder of the wrong kind is refused at load, naming what it is', () => {
  let tmp = '';
  useTempDir('wrong-kind-', (d) => (tmp = d));
  /** tiny-sd-optimum with its unet/model.onnx replaced by `onnx`. */
  const withUnet = (name: string, onnx: string): string => {
    const dir = join(tmp, name);
    cpSync(DIR, dir, { recursive: true });
    cpSync(onnx, join(dir, 'unet', 'model.onnx'));
    return dir;
  };
  const loadError = async (dir: string): Promise<Error> => {
    const err = await StableDiffusionPipeline.load(dir).then(
      async (p) => {
        await p.release();
        return new Error('loaded');
      },
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    return err;
  };

  it('the x4 upscaler folder: not a text-to-image model (it loaded, and every render failed inside ONNX Runtime)', async () => {
    expect(() => readModelFolder(testModelDir('x4-upscaler'))).toThrow(ModelFileError);
    expect((await loadError(testModelDir('x4-upscaler'))).message).toMatch(/this is the x4 upscaler \(StableDiffusionUpscalePipeline\): it enlarges finished videos .*x4-diffusion/);
  });

  it('a VAE decoder whose config.json is missing (factor 2 here, 8 assumed) fails at the first decode instead of making pictures of another size', async () => {
    const dir = join(tmp, 'no-vae-config');
    cpSync(DIR, dir, { recursive: true });
    rmSync(join(dir, 'vae_decoder', 'config.json'));
    const p = await StableDiffusionPipeline.load(dir);
    try {
      expect(p.vaeScaleFactor).toBe(8);
      const err = await p.generate({ prompt: 'x', width: 64, height: 64, steps: 1, seed: 1 }).then(
        (r) => new Error(`rendered ${r.images[0].width}x${r.images[0].height}`),
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(ModelFileError);
      expect(err.message).toMatch(/vae_decoder\/model\.onnx: the VAE decoder made a 16x16 picture from 8x8 latents \(2x\), but the folder says 8x .*put the export's own config\.json next to vae_decoder\/model\.onnx/);
      // The encoder (a picture end, inpainting) is checked the same way: it made 32x32 latents of a 64x64 picture.
      const picture = { data: new Uint8Array(64 * 64 * 3).fill(90), width: 64, height: 64, channels: 3 as const };
      await expect(p.vaeEncoder!.encode(picture)).rejects.toThrow(/vae_encoder\/model\.onnx: the VAE encoder made 32x32 latents from a 64x64 picture \(2x\), but the folder says 8x/);
    } finally {
      await p.release();
    }
  });

  it('the SDXL refiner (text_encoder_2 only): not a text-to-image model, instead of "text_encoder/model.onnx: file not found"', () => {
    const dir = join(tmp, 'refiner');
    cpSync(testModelDir('xl'), dir, { recursive: true, filter: (src) => !src.replace(/\\/g, '/').includes('/text_encoder/') && !src.endsWith('/text_encoder') });
    // optimum's refiner export names its pipeline so.
    const index = join(dir, 'model_index.json');
    writeFileSync(index, JSON.stringify({ ...JSON.parse(readFileSync(index, 'utf8')), _class_name: 'ORTStableDiffusionXLImg2ImgPipeline' }));
    expect(() => readModelFolder(dir)).toThrow(ModelFileError);
    expect(() => readModelFolder(dir)).toThrow(/it is the SDXL refiner \(ORTStableDiffusionXLImg2ImgPipeline\), which refines a finished picture and cannot render from text; point the model setting at the SDXL base export/);
  });

  it("a UNet with an input the engine does not feed (the upscaler's class_labels), with 8 input channels, or without a timestep", async () => {
    const upscalerUnet = await loadError(withUnet('x4-unet', join(testModelDir('x4-upscaler'), 'unet', 'model.onnx')));
    expect(upscalerUnet.message).toMatch(/the UNet takes class_labels, which a Stable Diffusion text-to-image, inpainting or image-variation UNet does not \(class_labels is the noise level of the x4 upscaler's UNet/);
    // An instruct-pix2pix-style UNet: 8 input channels (latents + a picture's), nothing else unusual.
    const g = new GraphBuilder('unet8');
    const sample = g.input('sample', 'float32', ['batch', 8, 'h', 'w']);
    g.input('timestep', 'float32', []);
    g.input('encoder_hidden_states', 'float32', ['batch', 'seq', 32]);
    g.output(g.op('Identity', [sample]), 'out_sample', 'float32', ['batch', 8, 'h', 'w']);
    await saveModel(tmp, 'unet8.onnx', g.toModel());
    const eight = await loadError(withUnet('unet8', join(tmp, 'unet8.onnx')));
    expect(eight.message).toMatch(/the UNet takes 8 input channels; a text-to-image or image-variation UNet takes 4 and an inpainting UNet 9/);
    const vaeAsUnet = await loadError(withUnet('vae-unet', join(DIR, 'vae_decoder', 'model.onnx')));
    expect(vaeAsUnet.message).toMatch(/unet\/model.onnx: the UNet has no timestep input \(looked for timestep, timesteps, t; it has latent_sample\); is this a Stable Diffusion UNet/);
  });
});
