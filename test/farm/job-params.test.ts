// Job parameters, cost estimates, follow-up derivation and configuration: pure functions.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.ts';
import { settings } from '../../config/settings.ts';
import { DEFAULT_FARM_CONFIG, farmConfigFrom } from '../../farm/config.ts';
import { estimateGpuSeconds } from '../../farm/policy/cost.ts';
import { followUpParams } from '../../farm/follow-up.ts';
import { segmentFrameCounts } from '../../engine/index.ts';
import { DEFAULT_PARAMS, movieFrames, outputPixels, parseJobParams, QUALITY_PRESETS, upscaleSizeIssue } from '../../farm/job-params.ts';
import { LIMITS } from '../../farm/limits.ts';
import { issuesOf } from '../helpers/job-params.ts';

describe('job parameters', () => {
  it('fills in defaults and draws one seed per prompt', () => {
    const params = parseJobParams('movie', { prompts: ['  a forest  ', 'a city', 'the sea'] });
    expect(params).toMatchObject({ ...DEFAULT_PARAMS, prompts: ['a forest', 'a city', 'the sea'] });
    expect(params.seeds).toHaveLength(3);
    expect(params.seeds.every((s) => Number.isInteger(s) && s >= 0 && s <= 0xffffffff)).toBe(true);
    // Explicit seeds are kept, nulls are drawn.
    const seeded = parseJobParams('blend', { prompts: ['a', 'b'], seeds: [42, null] });
    expect(seeded.seeds[0]).toBe(42);
    expect(Number.isInteger(seeded.seeds[1])).toBe(true);
  });

  it('maps quality presets to steps and branches, with explicit values winning', () => {
    expect(parseJobParams('blend', { prompts: ['a', 'b'], quality: 'draft' })).toMatchObject(QUALITY_PRESETS.draft);
    expect(parseJobParams('blend', { prompts: ['a', 'b'], quality: 'high', steps: 7 })).toMatchObject({ steps: 7, maxBranches: QUALITY_PRESETS.high.maxBranches });
  });

  it('lists every problem in one clear message', () => {
    const issues = issuesOf(() =>
      parseJobParams('blend', { prompts: ['a', '  '], width: 500, fps: 0, seeds: [1], quality: 'ultra', colour: 'red', format: 'avi' }),
    );
    expect(issues).toEqual([
      'unknown parameter "colour"',
      'quality must be one of draft, standard, high, max (got "ultra")',
      'prompt 2 must not be empty',
      'fps must be an integer between 1 and 60 (got 0)',
      'width must be an integer that is a multiple of 8 between 64 and 2048 (got 500)',
      'format must be one of mp4, webm, webp, gif (got "avi")',
      'seeds must be a list with one seed per prompt (2)',
    ]);
    expect(() => parseJobParams('blend', { prompts: ['a'] })).toThrow('Invalid job parameters: a blend needs exactly 2 prompts (got 1).');
  });

  it('enforces prompt counts per kind and upscale factors', () => {
    expect(issuesOf(() => parseJobParams('movie', { prompts: Array(17).fill('x') }))).toEqual(['a movie needs 2 to 16 prompts (got 17)']);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], upscaleFactor: 4 }))).toEqual(['upscaleFactor only applies to upscale jobs']);
    expect(issuesOf(() => parseJobParams('upscale', { prompts: ['a', 'b'], upscaleFactor: 8 }))).toEqual(['upscaleFactor must be one of 2, 3, 4 (got 8)']);
    const upscale = parseJobParams('upscale', { prompts: ['a', 'b'], width: 256, height: 128 });
    expect(upscale.upscaleFactor).toBe(4);
    expect(outputPixels(upscale)).toBe(1024 * 512);
    expect(parseJobParams('upscale', { prompts: ['a', 'b'], upscaleFactor: 3, upscaler: 'esrgan-medium' })).toMatchObject({ upscaleFactor: 3, upscaler: 'esrgan-medium' });
    expect(issuesOf(() => parseJobParams('upscale', { prompts: ['a', 'b'], upscaleFactor: 2, upscaler: 'x4-diffusion' }))).toEqual([
      'upscaler x4-diffusion cannot make 2x (it upscales 4x only); ask for upscaleFactor 4 or another upscaler',
    ]);
    expect(issuesOf(() => parseJobParams('upscale', { prompts: ['a', 'b'], upscaler: '../x' }))[0]).toMatch(/^upscaler must be an upscaler id/);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], upscaler: 'esrgan-slim' }))).toEqual(['upscaler only applies to upscale jobs']);
    expect(outputPixels(parseJobParams('upscale', { prompts: ['a', 'b'], width: 256, height: 128, upscaleFactor: 4 }))).toBe(1024 * 512);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], model: 'a b/../c' }))[0]).toMatch(/^model must be a model id/);
    // An id too long is told the length (LIMITS.modelId, LIMITS.upscalerId), not that its characters are wrong.
    expect(parseJobParams('blend', { prompts: ['a', 'b'], model: 'm'.repeat(LIMITS.modelId.max) }).model).toHaveLength(LIMITS.modelId.max);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], model: 'm'.repeat(LIMITS.modelId.max + 1) }))).toEqual([
      `model must be a model id of ${LIMITS.modelId.min} to ${LIMITS.modelId.max} letters, digits, ".", "_" or "-" (got ${LIMITS.modelId.max + 1} characters)`,
    ]);
    expect(issuesOf(() => parseJobParams('upscale', { prompts: ['a', 'b'], upscaler: 'u'.repeat(LIMITS.upscalerId.max + 1) }))).toEqual([
      `upscaler must be an upscaler id of ${LIMITS.upscalerId.min} to ${LIMITS.upscalerId.max} letters, digits, ".", "_" or "-" such as esrgan-slim (got ${LIMITS.upscalerId.max + 1} characters)`,
    ]);
    expect(parseJobParams('blend', { prompts: ['a', 'b'], maxBytes: 8_000_000 }).maxBytes).toBe(8_000_000);
    expect(issuesOf(() => parseJobParams('blend', { prompts: ['a', 'b'], maxBytes: 5 }))).toEqual(['maxBytes must be an integer between 10000 and 2000000000 (got 5)']);
  });

  it('derives re-roll, upscale and extend parameters from the parent', () => {
    const parent = parseJobParams('movie', { prompts: ['a', 'b', 'c'], seeds: [1, 2, 3], width: 256, height: 256 });
    const reroll = parseJobParams('reroll', followUpParams('reroll', parent));
    expect(reroll.prompts).toEqual(parent.prompts);
    expect(reroll.seeds).not.toEqual(parent.seeds);
    const upscale = parseJobParams('upscale', followUpParams('upscale', parent));
    expect(upscale).toMatchObject({ prompts: parent.prompts, seeds: parent.seeds, upscaleFactor: 4, width: 256 });
    expect(parseJobParams('upscale', followUpParams('upscale', parent, { upscaleFactor: 2, upscaler: 'esrgan-thick' }))).toMatchObject({ upscaleFactor: 2, upscaler: 'esrgan-thick' });
    // An extension lists only its new prompts (with new seeds); the parent's movie comes from parentJobId.
    const extend = parseJobParams('extend', followUpParams('extend', parent, { prompts: ['d'] }));
    expect(extend.prompts).toEqual(['d']);
    expect(extend.seeds).toHaveLength(1);
    expect(extend).toMatchObject({ width: 256, height: 256 });
    expect(() => followUpParams('extend', parent)).toThrow('Extending a video needs the prompt to continue to.');
    expect(() => followUpParams('extend', parent, { prompts: Array(14).fill('x') })).toThrow('This movie has 3 prompts; an extension may bring it to at most 16.');
  });

  it('estimates more GPU time for bigger, longer and higher-quality jobs', () => {
    const cost = (input: object) => estimateGpuSeconds(parseJobParams('movie', { prompts: ['a', 'b'], ...input }), DEFAULT_FARM_CONFIG.cost);
    const base = cost({});
    expect(base).toBeGreaterThan(DEFAULT_FARM_CONFIG.cost.overheadSeconds);
    expect(cost({ width: 1024, height: 1024 })).toBeGreaterThan(base);
    expect(cost({ prompts: ['a', 'b', 'c'] })).toBeGreaterThan(base);
    expect(cost({ quality: 'max' })).toBeGreaterThan(cost({ quality: 'draft' }));
    expect(cost({ durationSeconds: 20 })).toBeGreaterThan(base);
  });

  it("holds an upscale's whole output (movieFrames x upscaled frame pixels, as priced) to the engine's MAX_UPSCALED_VIDEO_PIXELS", () => {
    // 2048x2048 a frame at 4x: 476 frames are 1.997 gigapixels, 477 are 2.001.
    const upscale = (durationSeconds: number, fps: number) => () => parseJobParams('upscale', { prompts: ['a', 'b'], width: 512, height: 512, durationSeconds, fps });
    expect(movieFrames(upscale(28, 17)())).toBe(476);
    expect(upscale(28, 17)().upscaleFactor).toBe(4);
    expect(issuesOf(upscale(9, 53))).toEqual([
      "this video upscaled 4x would be 477 frames of 2048x2048 (1 transition of 9 s at 53 fps), 2.001 gigapixels in all, more than the farm's 2-gigapixel limit for an upscaled video; 3x fits (1.1 gigapixels): upscale it 3x instead",
    ]);
    expect(upscaleSizeIssue({ prompts: ['a', 'b'], width: 512, height: 512, durationSeconds: 28, fps: 17, upscaleFactor: 4 })).toBeUndefined();
    expect(upscaleSizeIssue({ prompts: ['a', 'b'], width: 512, height: 512, durationSeconds: 9, fps: 53, upscaleFactor: 3 })).toBeUndefined();
    // Frames as counted before the render: never fewer than the engine writes (segmentFrameCounts),
    // however the movie was split into jobs, and at least both ends of a transition (1 s at 1 fps: 2).
    expect(movieFrames({ prompts: ['a', 'b', 'c'], durationSeconds: 2.5, fps: 3 })).toBe(16);
    expect(movieFrames({ prompts: ['a', 'b'], durationSeconds: 1, fps: 1 })).toBe(2);
    for (const [fps, d] of [[7, 1.5], [5, 0.3], [3, 2.5], [24, 4], [1, 1], [13, 1.1]] as const) {
      const inOneJob = segmentFrameCounts(fps, [d, d, d]).reduce((a, b) => a + b);
      // A blend, then two extensions of one transition each (each counted from its own start).
      const extended = segmentFrameCounts(fps, [d])[0] + 2 * segmentFrameCounts(fps, [d], true)[0];
      const counted = movieFrames({ prompts: ['a', 'b', 'c', 'd'], durationSeconds: d, fps });
      expect({ fps, d, fits: counted >= Math.max(inOneJob, extended) }).toEqual({ fps, d, fits: true });
    }
    // Other kinds are not upscaled; other issues come first (the numbers may be wrong).
    expect(parseJobParams('movie', { prompts: Array(16).fill('a'), width: 2048, height: 2048, durationSeconds: 30, fps: 60 }).prompts).toHaveLength(16);
    expect(issuesOf(() => parseJobParams('upscale', { prompts: Array(16).fill('a'), width: 2048, height: 2048, durationSeconds: 30, fps: 61 }))).toEqual(['fps must be an integer between 1 and 60 (got 61)']);
  });

  it('prices an upscale per output megapixel-frame of the video it upscales, not as a render', () => {
    const model = { ...DEFAULT_FARM_CONFIG.cost, secondsPerUpscaledMegapixelFrame: 0.5 };
    const params = parseJobParams('upscale', { prompts: ['a', 'b', 'c'], width: 256, height: 128, durationSeconds: 2, fps: 10, upscaleFactor: 4 });
    // Two transitions of 20 frames, each 1024x512 after upscaling.
    expect(estimateGpuSeconds(params, model)).toBeCloseTo(model.overheadSeconds + 40 * ((1024 * 512) / 1e6) * 0.5, 3);
    expect(estimateGpuSeconds({ ...params, quality: 'max', steps: 150 } as never, model)).toBe(estimateGpuSeconds(params, model));
    expect(DEFAULT_FARM_CONFIG.cost.secondsPerUpscaledMegapixelFrame).toBe(0.05);
  });
});

describe('farm configuration', () => {
  it("is built from loadConfig()'s result, whose errors name the variable", () => {
    const config = farmConfigFrom(loadConfig({ BLENDFARM_LEASE_SECONDS: '60', BLENDFARM_REFILL_GPU_SECONDS: '900', BLENDFARM_ARTIFACT_DIR: '/srv/videos' }));
    expect(config).toMatchObject({ leaseSeconds: 60, artifactDir: '/srv/videos', budget: { refillGpuSeconds: 900, maxActiveJobs: 3 } });
    expect(farmConfigFrom(loadConfig({ BLENDFARM_FAIRNESS_HALF_LIFE_SECONDS: '60', BLENDFARM_GPU_SECONDS_PER_MEGAPIXEL_STEP: '1' }))).toMatchObject({ fairnessHalfLifeSeconds: 60, cost: { secondsPerMegapixelStep: 1 } });
    // The settings' defaults are the farm's, but for the spool: the apps spool to the setting's
    // folder, while a FarmConfig built in code (tests, embedders) keeps finished videos in memory.
    expect(farmConfigFrom(loadConfig({}))).toEqual({ ...DEFAULT_FARM_CONFIG, spoolDir: settings.spoolDir.example });
    expect(DEFAULT_FARM_CONFIG.spoolDir).toBeUndefined();
    expect(farmConfigFrom(loadConfig({ BLENDFARM_SPOOL_DIR: 'off' })).spoolDir).toBeUndefined();
    expect(() => loadConfig({ BLENDFARM_LEASE_SECONDS: 'soon' })).toThrow(ConfigError);
    expect(() => loadConfig({ BLENDFARM_LEASE_SECONDS: 'soon' })).toThrow(/BLENDFARM_LEASE_SECONDS="soon" must be a number of at least 1/);
    expect(() => farmConfigFrom(loadConfig({ BLENDFARM_LEASE_SECONDS: '5', BLENDFARM_HEARTBEAT_SECONDS: '10' }))).toThrow(/heartbeat .* must be shorter than the lease/);
    expect(farmConfigFrom({}, { leaseSeconds: 2, heartbeatSeconds: 0.5, budget: { maxActiveJobs: 9 } })).toMatchObject({ leaseSeconds: 2, budget: { maxActiveJobs: 9, refillGpuSeconds: 600 } });
  });
});
