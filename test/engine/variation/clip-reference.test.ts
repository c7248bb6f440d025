/**
 * The image-variation model's CLIP side checked against transformers (test/fixtures/tiny-sd-variation:
 * its tiny random-weight CLIPVisionModelWithProjection / CLIPTextModelWithProjection, with
 * transformers 5.17's own numbers in reference.json's "clip" and the clip.* arrays, made by
 * scripts/variation-reference.py): CLIPImageProcessor's preprocessing of two real photos, image_embeds
 * from its pixel_values and from the photo, the tokenizer's ids and text_embeds / last_hidden_state of
 * a few prompts. The folder keeps no tokenizer: the test puts the project's (models/test/variation)
 * into a copy, as diffusers-reference.test.ts does, and loads it as a user's folder.
 *
 * transformers' processed pictures (224 x 224, 150528 values each) are not stored: the fixture has
 * their SHA-256 and the sum of each channel row, and the tests that need them use the engine's own
 * picture after checking it hashes to transformers' (transformersPicture).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { ImageVariationPipeline, cosine, readModelFolder, type RawImage } from '../../../engine/index.ts';
import { clipProcessedImage, clipResizeSize, readClipImageProcessor, resizeLikePillow } from '../../../engine/variation/clip-image.ts';
import { testModelDir } from '../../../models/paths.ts';
import { maxAbsDiff, readReference, relDiff } from '../../helpers/reference-arrays.ts';

const FIXTURE = fileURLToPath(new URL('../../fixtures/tiny-sd-variation/', import.meta.url));
const PHOTOS = fileURLToPath(new URL('../../fixtures/photos/', import.meta.url));
const { meta: allMeta, ref: fixtureRef } = readReference(FIXTURE);
/** The fixture's CLIP-side references: reference.json's "clip", and its arrays (named clip.*). */
const meta = allMeta.clip;
const ref = (name: string) => fixtureRef(`clip.${name}`);
/** The towers' widths, from the fixture's text_encoder/config.json: projection (text_embeds, image_embeds) and hidden size. */
const { projection_dim: EMBED, hidden_size: TEXT_HIDDEN } = JSON.parse(readFileSync(join(FIXTURE, 'text_encoder', 'config.json'), 'utf8')) as { projection_dim: number; hidden_size: number };

async function decodePng(file: string): Promise<RawImage> {
  const { default: sharp } = await import('sharp');
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: 3 };
}

const photoNames = Object.keys(meta.photos) as string[];
const processorConfig = JSON.parse(readFileSync(join(FIXTURE, 'feature_extractor', 'preprocessor_config.json'), 'utf8'));
const { image_mean: MEAN, image_std: STD } = processorConfig as { image_mean: number[]; image_std: number[] };

/** transformers' pixel_values: its uint8 picture (HWC) rescaled and normalised ([3, H, W]). */
function pixelValuesOf(levels: Uint8Array, w: number, h: number): Float32Array {
  const plane = w * h;
  const px = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) px[c * plane + i] = (levels[i * 3 + c] / 255 - MEAN[c]) / STD[c];
  return px;
}

/** Sum of each channel row of an HWC picture, [3, height] as transformers' [3, H, W] levels summed over W. */
function rowSums(img: RawImage): Float64Array {
  const sums = new Float64Array(3 * img.height);
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) for (let c = 0; c < 3; c++) sums[c * img.height + y] += img.data[(y * img.width + x) * 3 + c];
  return sums;
}

/**
 * transformers' PIL-backend picture of a photo (HWC uint8, 224 x 224), which the fixture keeps as its
 * SHA-256 and row sums: the engine's picture, once it is checked to be that picture at every value
 * (the same row sums, then the same SHA-256 of all 150528 values).
 */
function transformersPicture(name: string): RawImage {
  const pic = clipProcessedImage(photos[name], pipe.processor);
  expect([pic.width, pic.height]).toEqual([224, 224]);
  const want = ref(`pil_row_sums.${name}`);
  expect(want.shape).toEqual([3, 224]);
  const got = rowSums(pic);
  const rows = [...got.keys()].filter((i) => got[i] !== want.data[i]);
  // Where a difference is, to read when this fails: channel and row of the first few, and their sums.
  const where = rows.slice(0, 5).map((i) => `channel ${Math.floor(i / 224)} row ${i % 224}: ${got[i]} vs ${want.data[i]}`);
  expect(rows.length, `${name}: rows whose levels sum differently from transformers' (${where.join('; ')})`).toBe(0);
  expect(createHash('sha256').update(pic.data).digest('hex'), `${name}: SHA-256 of the picture's 150528 values`).toBe(meta.photos[name].pil_sha256);
  return pic;
}

/** transformers' torchvision-backend picture: the PIL one with the stored differences added. */
function torchvisionPicture(name: string, pil: RawImage): RawImage {
  const diff = ref(`torchvision_minus_pil.${name}`).data;
  const tv = Uint8Array.from(pil.data);
  const plane = pil.width * pil.height;
  for (let k = 0; k < diff.length; k += 2) {
    const [c, p] = [Math.floor(diff[k] / plane), diff[k] % plane];
    tv[p * 3 + c] += diff[k + 1];
  }
  return { ...pil, data: tv };
}

let dir: string;
let pipe: ImageVariationPipeline;
const photos: Record<string, RawImage> = {};

beforeAll(async () => {
  // A user's folder: the fixture with the project's CLIP tokenizer files.
  dir = mkdtempSync(join(tmpdir(), 'tiny-sd-variation-clip-'));
  cpSync(FIXTURE, dir, { recursive: true });
  cpSync(join(testModelDir('variation'), 'tokenizer'), join(dir, 'tokenizer'), { recursive: true });
  pipe = await ImageVariationPipeline.load(dir);
  for (const name of photoNames) photos[name] = await decodePng(join(PHOTOS, `${name}.png`));
});

afterAll(async () => {
  await pipe?.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('tiny-sd-variation, CLIP side: CLIPImageProcessor (transformers 5.17)', () => {
  it('reads the processor config transformers wrote, and the older integer form the same way', () => {
    expect(readModelFolder(dir).kind).toBe('image-variation');
    const p = pipe.processor;
    expect(p).toMatchObject({ resize: { shortestEdge: 224 }, filter: 'bicubic', crop: { width: 224, height: 224 }, width: 224, height: 224 });
    expect(p.rescale).toBeCloseTo(1 / 255, 15);
    expect(p.normalize).toEqual({ mean: MEAN, std: STD });
    const old = { crop_size: 224, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: 'CLIPFeatureExtractor', image_mean: MEAN, image_std: STD, resample: 3, size: 224 };
    expect(readClipImageProcessor(old)).toEqual(p);
    expect(() => readClipImageProcessor({ ...old, resample: 0 })).toThrow(/"resample" should be one of PIL's filters/);
    expect(() => readClipImageProcessor({ ...old, do_center_crop: false })).toThrow(/without a centre crop the size must be exact/);
  });

  it('resizes as Pillow\'s Image.resize to the same uint8 values, every filter, up and down', () => {
    const { photo, box, sizes, filters } = meta.pil_resize as { photo: string; box: number[]; sizes: number[][]; filters: number[] };
    const [x0, y0, pw, ph] = box;
    const src = photos[photo];
    const patch = new Uint8Array(pw * ph * 3);
    for (let y = 0; y < ph; y++) patch.set(src.data.subarray(((y0 + y) * src.width + x0) * 3, ((y0 + y) * src.width + x0 + pw) * 3), y * pw * 3);
    const names = { 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming' } as const;
    expect(filters.length).toBe(5);
    for (const f of filters) {
      for (const [w, h] of sizes) {
        const want = ref(`pil_resize.${f}.${w}x${h}`);
        expect(want.shape).toEqual([h, w, 3]);
        const got = resizeLikePillow({ data: patch, width: pw, height: ph, channels: 3 }, w, h, names[f as keyof typeof names]);
        expect(maxAbsDiff(got.data, want.data), `${names[f as keyof typeof names]} ${w}x${h}`).toBe(0);
      }
    }
  });

  it('resizes the shortest side to 224 and the other to floor(224 * long / short), as transformers', () => {
    // 451 x 300: 224 * 451 / 300 = 336.75 -> 336 (a cover-resize rounds to 337 and crops one column further)
    expect(clipResizeSize(451, 300, pipe.processor)).toEqual([336, 224]);
    expect(clipResizeSize(400, 600, pipe.processor)).toEqual([224, 336]);
    expect(clipResizeSize(224, 224, pipe.processor)).toEqual([224, 224]);
  });

  for (const name of ['chelsea', 'coffee']) {
    it(`${name}: the resized, centre-cropped picture is transformers' PIL backend's at every value, its torchvision backend's within one level`, () => {
      const info = meta.photos[name];
      expect([photos[name].width, photos[name].height]).toEqual(info.size);
      // Every value: the same row sums, then the same SHA-256 as transformers' PIL backend's picture.
      const pic = transformersPicture(name);
      // The two backends of transformers 5 differ at a few hundred values by one level.
      const tv = info.torchvision_vs_pil;
      expect(tv.max_levels).toBe(1);
      const torchvision = torchvisionPicture(name, pic);
      let tvDiffering = 0;
      let tvMax = 0;
      for (let i = 0; i < pic.data.length; i++) {
        const d = Math.abs(pic.data[i] - torchvision.data[i]);
        tvMax = Math.max(tvMax, d);
        if (d) tvDiffering++;
      }
      expect(tvMax).toBe(1);
      expect(tvDiffering).toBe(tv.values_differing);
      expect(tvDiffering / pic.data.length).toBeLessThan(0.005);
    });

    it(`${name}: pixel_values are transformers' to float32 rounding`, () => {
      // make.py checked that the processor's pixel_values are its uint8 picture rescaled and normalised.
      expect(meta.photos[name].pixel_values_vs_levels_max_abs).toBeLessThan(1e-6);
      const px = pipe.pixelValues(photos[name]);
      expect(px.length).toBe(3 * 224 * 224);
      expect(maxAbsDiff(px, pixelValuesOf(transformersPicture(name).data, 224, 224))).toBeLessThan(1e-6);
    });
  }

  it('the fixture tells preprocessing apart: a cover-resize (the engine before) is off by levels, not rounding', async () => {
    const { default: sharp } = await import('sharp');
    const p = photos.chelsea;
    const pil = transformersPicture('chelsea');
    const cover = await sharp(p.data, { raw: { width: p.width, height: p.height, channels: 3 } })
      .resize(224, 224, { fit: 'cover', position: 'centre', kernel: 'cubic' })
      .raw()
      .toBuffer();
    let sum = 0;
    for (let i = 0; i < cover.length; i++) sum += Math.abs(cover[i] - pil.data[i]);
    expect(sum / cover.length).toBeGreaterThan(2);
    // Pillow's resize at the cover size (337 x 224) cropped at its centre is off too: the size matters.
    const wide = resizeLikePillow(p, 337, 224);
    const crop = clipProcessedImage(wide, { ...pipe.processor, resize: null });
    let off = 0;
    for (let i = 0; i < crop.data.length; i++) off += Math.abs(crop.data[i] - pil.data[i]);
    expect(off / crop.data.length).toBeGreaterThan(2);
  });
});

describe('tiny-sd-variation, CLIP side: image encoder (CLIPVisionModelWithProjection -> image_embeds)', () => {
  it('gives torch\'s image_embeds on transformers\' pixel_values, one picture and a batch of two', async () => {
    const batch: Float32Array[] = [];
    for (const name of photoNames) {
      const px = pixelValuesOf(transformersPicture(name).data, 224, 224);
      batch.push(px);
      const want = ref(`image_embeds.${name}`);
      expect(want.shape).toEqual([1, EMBED]);
      const e = await pipe.encodePixelValues(px);
      expect(e.length).toBe(EMBED);
      expect(relDiff(e, want.data)).toBeLessThan(1e-4);
    }
    const both = new Float32Array(batch[0].length * 2);
    both.set(batch[0]);
    both.set(batch[1], batch[0].length);
    const e2 = await pipe.encodePixelValues(both);
    expect(e2.length).toBe(2 * EMBED);
    expect(relDiff(e2.subarray(0, EMBED), ref(`image_embeds.${photoNames[0]}`).data)).toBeLessThan(1e-4);
    expect(relDiff(e2.subarray(EMBED), ref(`image_embeds.${photoNames[1]}`).data)).toBeLessThan(1e-4);
  });

  it('from the photo itself (encodeImage) gives transformers\' image_embeds, end to end', async () => {
    const a = ref('image_embeds.chelsea').data;
    const b = ref('image_embeds.coffee').data;
    // What the tolerance has to tell apart: the two photos' embeddings, and the two backends'.
    const between = relDiff(a, b);
    expect(between).toBeGreaterThan(0.05);
    for (const name of photoNames) {
      const e = await pipe.encodeImage(photos[name]);
      const want = ref(`image_embeds.${name}`).data;
      // The picture is PIL's to the bit, so only the ONNX graph's float error remains.
      expect(relDiff(e, want)).toBeLessThan(1e-4);
      // transformers' two backends differ by about 1e-4 on these embeddings.
      const tv = ref(`image_embeds_torchvision.${name}`).data;
      expect(meta.photos[name].torchvision_vs_pil.image_embeds_rel).toBeLessThan(5e-4);
      expect(relDiff(e, tv)).toBeLessThan(5e-4);
      expect(cosine(e, want)).toBeGreaterThan(1 - 1e-7);
    }
  });
});

describe('tiny-sd-variation, CLIP side: text encoder (CLIPTextModelWithProjection) and tokenizer', () => {
  const keys = Object.keys(meta.prompts) as string[];

  it('the tokenizer gives transformers\' CLIPTokenizer ids (padded to 77, truncated)', () => {
    expect(keys.length).toBeGreaterThanOrEqual(5);
    for (const key of keys) {
      const { text, input_ids } = meta.prompts[key];
      expect(pipe.tokenizer.encodeWithInfo(text, { pad: true }).ids, key).toEqual(input_ids);
    }
    expect(meta.prompts.long.input_ids.filter((id: number) => id !== 49407).length).toBe(76);
  });

  it('encodeText gives torch\'s text_embeds for each prompt', async () => {
    const got: Float32Array[] = [];
    for (const key of keys) {
      const want = ref(`text_embeds.${key}`);
      expect(want.shape).toEqual([1, EMBED]);
      const e = await pipe.encodeText(meta.prompts[key].text);
      expect(relDiff(e, want.data), key).toBeLessThan(1e-4);
      got.push(e);
    }
    // Different prompts are far apart on that scale, every pair of them (measured: 0.14 at the closest). A
    // text encoder of hidden size 2 gives every prompt the same text_embeds (its final LayerNorm leaves two
    // values per token), which this tells apart.
    for (let i = 0; i < keys.length; i++)
      for (let j = i + 1; j < keys.length; j++) expect(relDiff(got[i], ref(`text_embeds.${keys[j]}`).data), `${keys[i]} vs ${keys[j]}`).toBeGreaterThan(0.01);
  });

  it('the exported graph\'s last_hidden_state (int64 input_ids, batch of two) matches torch too', async () => {
    const [k0, k1] = keys;
    const ids = [...meta.prompts[k0].input_ids, ...meta.prompts[k1].input_ids].map(BigInt);
    const out = await pipe.textEncoder.session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids), [2, 77]) });
    const hidden = out.last_hidden_state.data as Float32Array;
    const want0 = ref(`last_hidden_state.${k0}`);
    expect(want0.shape).toEqual([1, 77, TEXT_HIDDEN]);
    expect(out.last_hidden_state.dims).toEqual([2, 77, TEXT_HIDDEN]);
    expect(relDiff(hidden.subarray(0, 77 * TEXT_HIDDEN), want0.data)).toBeLessThan(1e-4);
    expect(relDiff(hidden.subarray(77 * TEXT_HIDDEN), ref(`last_hidden_state.${k1}`).data)).toBeLessThan(1e-4);
    expect(relDiff((out.text_embeds.data as Float32Array).subarray(EMBED), ref(`text_embeds.${k1}`).data)).toBeLessThan(1e-4);
  });
});
