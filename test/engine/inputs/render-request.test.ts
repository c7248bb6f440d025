/** renderVideo with pictures, as a farm worker calls it: encoded bytes in the request, a video out. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { StableDiffusionPipeline, decodeVideoFrames, renderVideo, type RenderRequest } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { meanAbsDiff } from '../../helpers/demo.ts';

const PHOTO = readFileSync('test/fixtures/photos/coffee.png');

describe('RenderRequest pictures', () => {
  it('renders a movie whose middle prompt is a picture, from the file bytes', async () => {
    // DDIM's schedule ends at t = 1, so strength 0.1 keeps the picture (DPM++ ends at t = 91, where the demo model's prior pulls).
    const pipe = await StableDiffusionPipeline.load(testModelDir('demo'), { scheduler: 'ddim' });
    const base: RenderRequest = { prompts: ['a red house', 'a cup', 'a blue boat'], seeds: [1, 2, 3], steps: 6, width: 64, height: 64, maxBranches: 3, duration: 0.5, fps: 4 };
    const out = await renderVideo(pipe, { ...base, images: [{ index: 1, image: PHOTO, strength: 0.1 }] });
    const plain = await renderVideo(pipe, base);
    expect(out.seeds).toEqual([1, 2, 3]);
    expect(out.keyframes).toBe(5);
    // The thumbnail is the middle keyframe: prompt 2's, which is the picture re-rendered at strength 0.1.
    const photo = await sharp(PHOTO).resize(64, 64, { fit: 'cover' }).removeAlpha().raw().toBuffer();
    const thumb = async (png: Buffer) => sharp(png).raw().toBuffer();
    expect(meanAbsDiff(await thumb(out.thumbnail), photo)).toBeLessThan(meanAbsDiff(await thumb(plain.thumbnail), photo) / 2);
    expect((await decodeVideoFrames(out.video, 64, 64)).length).toBe(out.frames);
    await expect(renderVideo(pipe, { ...base, images: [{ index: 3, image: PHOTO }] })).rejects.toThrow(/a picture is given for prompt 4, but there are 3 prompts/);
    await expect(renderVideo(pipe, { ...base, mode: 'embedding-walk', images: [{ index: 0, image: PHOTO }] })).rejects.toThrow(/latent-blend mode only/);
  }, 60_000);

  it('says which prompt was longer than the text encoder reads (its end had no effect); none for short prompts', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
    const long = Array.from({ length: 60 }, (_, i) => `castle ${i}`).join(' ');
    const tokens = pipe.tokenizers[0].encodeWithInfo(long).tokenCount - 2;
    const base: RenderRequest = { prompts: ['a red house', long], seeds: [1, 2], steps: 2, width: 64, height: 64, maxBranches: 2, duration: 0.5, fps: 4 };
    const out = await renderVideo(pipe, base);
    expect(out.warnings).toEqual([`Prompt B is ${tokens} CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.`]);
    const movie = await renderVideo(pipe, { ...base, prompts: [long, 'a', 'b'], seeds: [1, 2, 3], negativePrompt: long });
    expect(movie.warnings.map((w) => w.split(' is ')[0])).toEqual(['Prompt 1', 'The negative prompt']);
    expect((await renderVideo(pipe, { ...base, prompts: ['a', 'b'] })).warnings).toEqual([]);
  }, 60_000);

  it('renders an inpainting transition from a picture and a mask preset', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('inpaint'));
    const out = await renderVideo(pipe, { prompts: ['a red house', 'a blue boat'], seeds: [1, 2], steps: 6, width: 64, height: 64, maxBranches: 3, duration: 0.5, fps: 4, inpaint: { image: PHOTO, mask: 'border' } });
    expect(out.keyframes).toBe(3);
    await expect(renderVideo(pipe, { prompts: ['a', 'b'], duration: 0.5, fps: 4, steps: 4, width: 64, height: 64, maxBranches: 2, inpaint: { image: new Uint8Array([1, 2, 3]), mask: 'centre' } })).rejects.toThrow(
      /the inpainting picture is not a picture that can be read/,
    );
  }, 60_000);
});
