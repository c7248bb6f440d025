/**
 * Pictures in, the farm's rules: the one validator's picture, inpainting and variation parameters
 * (limits from farm/limits.ts), the picture checks (checkJobInputs, inputMetadataIssue), routing by
 * model ability (canRun and the claim's capableSql share it) and prices.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IMAGE_INPUT_LIMITS, MAX_VARIATION_FRAMES } from '../../engine/index.ts';
import { canRun, checkJobInputs, DEFAULT_POLICY_OPTIONS, estimateGpuSeconds, IMAGE_LIMITS, inputMetadataIssue, jobNeeds, JobParamsError, LIMITS, parseJobParams, type WorkerCapabilities } from '../../farm/index.ts';

const PHOTO = new Uint8Array(readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url)));
const issuesOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (err) {
    if (err instanceof JobParamsError) return err.issues;
    throw err;
  }
  return [];
};

describe('picture parameters in the one validator', () => {
  it('images: one per prompt, strength in range (default the engine’s), blends and movies only', () => {
    const p = parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 1, strength: 0.3 }, { index: 0 }] });
    expect(p.images).toEqual([{ index: 0, strength: 0.5 }, { index: 1, strength: 0.3 }]);
    expect(p.model).toBe('demo');
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 2 }] }))[0]).toMatch(/images\[0\]\.index must be an integer between 0 and 1/);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 0 }, { index: 0 }] }))).toContain('prompt 1 has two pictures; give at most one per prompt');
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 0, strength: 0 }] }))[0]).toMatch(/^strength must be a number between 0.05 and 1/);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 0, path: '/etc' }] }))[0]).toMatch(/unknown parameter "path" in images\[0\]/);
    expect(issuesOf(() => parseJobParams('upscale', { prompts: ['a', 'b'], images: [{ index: 0 }] }))[0]).toMatch(/apply to blends and movies, not to upscale jobs/);
  });

  it('inpaint: a preset or a mask picture, on the inpainting model by default', () => {
    expect(parseJobParams('blend', { prompts: ['a', 'b'], inpaint: { mask: 'border' } })).toMatchObject({ inpaint: { mask: 'border' }, model: 'inpaint' });
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], inpaint: { mask: 'top' } }))[0]).toMatch(/mask must be one of centre, left, right, border, picture/);
  });

  it('vary: frames within the limits (never the engine’s maximum exceeded), one seed, guidance prompts optional', () => {
    const p = parseJobParams('vary', { prompts: [], variation: { variations: 2, intermediate: 3 } });
    expect([p.variation, p.seeds.length, p.model]).toEqual([{ variations: 2, intermediate: 3, noiseShift: 0.4 }, 1, 'variation']);
    expect(issuesOf(() => parseJobParams('vary', { prompts: [], variation: { variations: 60, intermediate: 30 } }))[0]).toMatch(/1801 frames.*more than 600/);
    expect(issuesOf(() => parseJobParams('vary', { prompts: ['a', 'b', 'c', 'd', 'e'] }))[0]).toMatch(/at most 4 guidance prompts/);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], variation: {} }))[0]).toMatch(/variation applies to vary jobs only/);
  });

  it('limits narrow the engine’s, never widen them', () => {
    expect(IMAGE_LIMITS.maxBytes).toBeLessThanOrEqual(IMAGE_INPUT_LIMITS.maxBytes);
    expect(IMAGE_LIMITS.maxPixels).toBeLessThanOrEqual(IMAGE_INPUT_LIMITS.maxPixels);
    expect(LIMITS.variationFrames.max).toBeLessThanOrEqual(MAX_VARIATION_FRAMES);
    expect(LIMITS.intermediate.max).toBeLessThanOrEqual(60);
    expect(LIMITS.imageStrength.min).toBeGreaterThan(0);
    expect(LIMITS.imageStrength.max).toBeLessThanOrEqual(1);
  });
});

describe('picture files', () => {
  it('checkJobInputs: exactly the inputs the parameters name, each a real picture within the limits', async () => {
    const params = parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 1 }], inpaint: { mask: 'picture' } });
    const ok = await checkJobInputs('blend', params, { 'image-2': PHOTO, 'inpaint-image': PHOTO, 'inpaint-mask': PHOTO });
    expect(Object.fromEntries(Object.entries(ok).map(([k, v]) => [k, v.mime]))).toEqual({ 'image-2': 'image/png', 'inpaint-image': 'image/png', 'inpaint-mask': 'image/png' });
    const bad = await checkJobInputs('blend', params, { 'image-1': PHOTO, 'image-2': new TextEncoder().encode('hello'), 'inpaint-image': new Uint8Array(IMAGE_LIMITS.maxBytes + 1) }).catch((e: JobParamsError) => e.issues);
    expect(bad).toEqual([
      'image-1 is not used by this blend job; leave it out',
      'image-2 is not a picture that can be read; use a PNG, JPEG or WebP file',
      `inpaint-image is ${IMAGE_LIMITS.maxBytes + 1} bytes, more than the ${IMAGE_LIMITS.maxBytes} bytes limit; use a smaller PNG, JPEG or WebP picture`,
      'inpaint-mask is missing; attach a PNG, JPEG or WebP picture',
    ]);
  });

  it('inputMetadataIssue: the cheap check from an upload’s type and size', () => {
    expect(inputMetadataIssue('from_image', { size: 1000, contentType: 'image/jpeg' })).toBeUndefined();
    expect(inputMetadataIssue('from_image', { size: 1000, contentType: 'text/plain; charset=utf-8' })).toMatch(/from_image is text\/plain, not a picture/);
    expect(inputMetadataIssue('from_image', { size: 30 * 1024 * 1024, contentType: 'image/png' })).toMatch(/from_image is 30 MiB, more than the 10 MiB limit/);
  });

  it('inputMetadataIssue: the reported width and height against IMAGE_LIMITS.maxPixels, when there are any', () => {
    expect(inputMetadataIssue('mask', { size: 1000, contentType: 'image/png', width: 6000, height: 5000 })).toBe('mask is 6000x5000 (30.0 megapixels), more than the 25-megapixel limit; use a smaller picture');
    expect(inputMetadataIssue('mask', { size: 1000, contentType: 'image/png', width: IMAGE_LIMITS.maxPixels / 5000, height: 5000 })).toBeUndefined();
    expect(inputMetadataIssue('mask', { size: 1000, contentType: 'image/png', width: IMAGE_LIMITS.maxPixels / 5000 + 1, height: 5000 })).toMatch(/more than the 25-megapixel limit/);
    // Not reported (Discord could not read the picture): left to checkJobInputs.
    expect(inputMetadataIssue('mask', { size: 1000, contentType: 'image/png', width: null, height: null })).toBeUndefined();
    expect(inputMetadataIssue('mask', { size: 1000, contentType: 'image/png', width: 6000 })).toBeUndefined();
  });
});

describe('routing by model ability, and prices', () => {
  const worker = (modelAbilities?: WorkerCapabilities['modelAbilities']): WorkerCapabilities => ({ models: Object.keys(modelAbilities ?? { demo: [] }), maxPixels: 1e7, executionProvider: 'cpu', ...(modelAbilities ? { modelAbilities } : {}) });
  const blend = parseJobParams('blend', { prompts: ['a', 'b'] });
  const picture = parseJobParams('blend', { prompts: ['a', 'b'], images: [{ index: 0 }] });
  const inpaint = parseJobParams('blend', { prompts: ['a', 'b'], inpaint: { mask: 'left' } });
  const vary = parseJobParams('vary', { prompts: [] });

  it('a job needing an inpainting or variation model only goes to a worker whose model can', () => {
    const textOnly = worker();
    const full = worker({ demo: ['text', 'picture'], inpaint: ['inpaint', 'picture'], variation: ['variation'] });
    const noEncoder = worker({ demo: ['text'] });
    expect([blend, picture].map((p) => canRun(textOnly, jobNeeds('blend', p)))).toEqual([true, false]);
    expect(canRun(noEncoder, jobNeeds('blend', picture))).toBe(false);
    expect(canRun(textOnly, jobNeeds('blend', inpaint))).toBe(false);
    expect([blend, picture, inpaint].map((p) => canRun(full, jobNeeds('blend', p)))).toEqual([true, true, true]);
    expect(canRun(full, jobNeeds('vary', vary))).toBe(true);
    // A model id alone is not enough: "inpaint" named on a worker whose "inpaint" model is a text one.
    expect(canRun(worker({ inpaint: ['text'] }), jobNeeds('blend', inpaint))).toBe(false);
    expect(canRun(worker({ variation: ['inpaint'] }), jobNeeds('vary', vary))).toBe(false);
  });

  it('a picture endpoint costs like a text one; a variation animation per frame', () => {
    const cost = DEFAULT_POLICY_OPTIONS.cost;
    expect(estimateGpuSeconds(picture, cost)).toBe(estimateGpuSeconds(blend, cost));
    const small = parseJobParams('vary', { prompts: [], variation: { variations: 2, intermediate: 2 } });
    const large = parseJobParams('vary', { prompts: [], variation: { variations: 8, intermediate: 4 } });
    const perFrame = (estimateGpuSeconds(large, cost) - estimateGpuSeconds(small, cost)) / (33 - 5);
    expect(perFrame).toBeGreaterThan(0);
    expect(estimateGpuSeconds(small, cost)).toBeCloseTo(cost.overheadSeconds + 5 * perFrame, 3);
  });
});
