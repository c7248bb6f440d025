// A quality preset renders the steps of the model's family: a model whose workers advertise a turbo
// family (WorkerCapabilities.modelFamilies: sd-turbo, sdxl-turbo) gets FAMILY_PRESET_STEPS (4 for
// standard, where QUALITY_PRESETS says 20), priced at those steps and stored in the job's params,
// so the worker renders them and a re-roll keeps them. Explicit steps are kept; a model whose
// workers advertise no family, or do not agree, keeps QUALITY_PRESETS.
import { describe, expect, it } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { submitFollowUp } from '../../farm/follow-up.ts';
import { BudgetExceededError } from '../../farm/errors.ts';
import { checkSubmission, submitJob } from '../../farm/jobs.ts';
import { DEFAULT_QUALITY, FAMILY_PRESET_STEPS, type JobParams, LCM_PRESET_FAMILY, parseJobParams, QUALITY_PRESETS, stepsPresetOf, withFamilyPresetSteps } from '../../farm/job-params.ts';
import { policyOf } from '../../farm/policy/index.ts';
import { markWorkerStopped, registerWorker } from '../../farm/worker-registry.ts';
import type { WorkerCapabilities } from '../../farm/types.ts';
import { MIN_BLEND_STEPS } from '../../engine/index.ts';
import { BACKENDS, farmContext, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

/** What the bot's /blend sends: prompts, the options given, a quality preset (no steps). */
const blend = (model: string, extra: Record<string, unknown> = {}) => ({ prompts: ['a red fox', 'a blue whale'], width: 64, height: 64, durationSeconds: 1, fps: 4, model, quality: 'standard', ...extra });

const caps = (models: Record<string, string | undefined>): WorkerCapabilities => ({
  models: Object.keys(models),
  modelAbilities: Object.fromEntries(Object.keys(models).map((m) => [m, ['text', 'picture']])),
  maxPixels: 1 << 22,
  executionProvider: 'cuda',
  ...(Object.values(models).some((f) => f !== undefined) ? { modelFamilies: Object.fromEntries(Object.entries(models).filter((e): e is [string, string] => e[1] !== undefined)) } : {}),
});

describe('withFamilyPresetSteps', () => {
  const params = (input: Record<string, unknown>): JobParams => parseJobParams('blend', input);

  it("turbo families: 4 steps for standard, high and max, MIN_BLEND_STEPS for draft; branches stay the preset's", () => {
    expect(FAMILY_PRESET_STEPS['sdxl-turbo']).toEqual({ draft: MIN_BLEND_STEPS, standard: 4, high: 4, max: 4 });
    expect(FAMILY_PRESET_STEPS['sd-turbo']).toEqual(FAMILY_PRESET_STEPS['sdxl-turbo']);
    for (const quality of Object.keys(QUALITY_PRESETS) as Array<keyof typeof QUALITY_PRESETS>) {
      const input = blend('t', { quality });
      const resolved = withFamilyPresetSteps('blend', input, params(input), ['sdxl-turbo']);
      expect({ quality, steps: resolved.steps, maxBranches: resolved.maxBranches }).toEqual({ quality, steps: FAMILY_PRESET_STEPS['sdxl-turbo']![quality], maxBranches: QUALITY_PRESETS[quality].maxBranches });
      expect(resolved.guidance).toBeUndefined();
    }
  });

  it('LCM-distilled models (advertised as lcm, whatever their base family): 4 steps for standard, more for high and max', () => {
    const steps = (quality: string, families: string[]) => {
      const input = blend('t', { quality });
      return withFamilyPresetSteps('blend', input, params(input), families).steps;
    };
    expect([steps('draft', [LCM_PRESET_FAMILY]), steps('standard', [LCM_PRESET_FAMILY]), steps('high', [LCM_PRESET_FAMILY]), steps('max', [LCM_PRESET_FAMILY])]).toEqual([MIN_BLEND_STEPS, 4, 6, 8]);
    // Workers that disagree (an LCM and a turbo folder under one id) keep the farm's presets.
    expect(steps('high', [LCM_PRESET_FAMILY, 'sd-turbo'])).toBe(QUALITY_PRESETS.high.steps);
  });

  it('only steps left to a preset change, and only when every worker gives the same turbo steps', () => {
    const input = blend('t');
    const p = params(input);
    expect(withFamilyPresetSteps('blend', input, p, ['sd-turbo', 'sdxl-turbo']).steps).toBe(4);
    // No quality named: the default preset's steps are the family's too.
    const { quality: _q, ...noQuality } = input;
    expect(stepsPresetOf(noQuality)).toBe(DEFAULT_QUALITY);
    expect(withFamilyPresetSteps('blend', noQuality, params(noQuality), ['sdxl-turbo']).steps).toBe(4);
    // Explicit steps are the member's.
    expect(withFamilyPresetSteps('blend', { ...input, steps: 12 }, params({ ...input, steps: 12 }), ['sdxl-turbo']).steps).toBe(12);
    // A worker with no family, another family, or none known: the farm's presets.
    expect(withFamilyPresetSteps('blend', input, p, ['sdxl-turbo', undefined]).steps).toBe(QUALITY_PRESETS.standard.steps);
    expect(withFamilyPresetSteps('blend', input, p, ['sdxl-turbo', 'sdxl']).steps).toBe(QUALITY_PRESETS.standard.steps);
    expect(withFamilyPresetSteps('blend', input, p, ['sd1']).steps).toBe(QUALITY_PRESETS.standard.steps);
    expect(withFamilyPresetSteps('blend', input, p, ['__proto__', 'constructor']).steps).toBe(QUALITY_PRESETS.standard.steps);
    expect(withFamilyPresetSteps('blend', input, p, []).steps).toBe(QUALITY_PRESETS.standard.steps);
  });
});

describe.each(BACKENDS)('quality presets by model family on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ farm } = t));

  const price = (input: Record<string, unknown>) => policyOf(farm).price(parseJobParams('blend', input));

  it('a /blend on a model whose workers advertise sdxl-turbo renders the turbo steps, reserved at their price; a re-roll keeps them', async () => {
    await registerWorker(farm, { id: 'turbo-1', host: 'h', pid: 1, concurrency: 1, capabilities: caps({ 'sdxl-turbo': 'sdxl-turbo', plain: undefined }) });
    await registerWorker(farm, { id: 'turbo-2', host: 'h', pid: 2, concurrency: 1, capabilities: caps({ 'sdxl-turbo': 'sdxl-turbo' }) });
    const input = { kind: 'blend' as const, userId: 'member', params: blend('sdxl-turbo'), requireCapableWorker: true };
    await checkSubmission(farm, input);
    const job = await submitJob(farm, input);
    expect(job.params.steps).toBe(4);
    expect(job.params.maxBranches).toBe(QUALITY_PRESETS.standard.maxBranches);
    expect(job.params.guidance).toBeUndefined();
    expect(job.reservedGpuSeconds).toBe(price({ ...blend('sdxl-turbo'), steps: 4 }));
    expect(job.reservedGpuSeconds).toBeLessThan(price(blend('sdxl-turbo')));

    // The re-roll copies the steps, even once the workers no longer say the family.
    await registerWorker(farm, { id: 'turbo-1', host: 'h', pid: 1, concurrency: 1, capabilities: caps({ 'sdxl-turbo': undefined }) });
    const reroll = await submitFollowUp(farm, { kind: 'reroll', userId: 'member', parentJobId: job.id, requireCapableWorker: true });
    expect(reroll.params.steps).toBe(4);
    expect(reroll.reservedGpuSeconds).toBe(job.reservedGpuSeconds);
    await markWorkerStopped(farm, 'turbo-1');
    await markWorkerStopped(farm, 'turbo-2');
  });

  it('checkSubmission forecasts the turbo price as submitJob charges it: a budget between the turbo and the plain price admits the preset, not 20 steps', async () => {
    await registerWorker(farm, { id: 'turbo-3', host: 'h', pid: 4, concurrency: 1, capabilities: caps({ 'sdxl-turbo': 'sdxl-turbo' }) });
    const turbo = price({ ...blend('sdxl-turbo'), steps: 4 });
    const plain = price(blend('sdxl-turbo'));
    expect(plain).toBeGreaterThan(turbo);
    const tight = farmContext(farm.db, { budget: { refillGpuSeconds: (turbo + plain) / 2, maxActiveJobs: 10 } });
    const input = (params: Record<string, unknown>) => ({ kind: 'blend' as const, userId: 'tight-member', params, requireCapableWorker: true });
    await expect(checkSubmission(tight, input(blend('sdxl-turbo')))).resolves.toBeUndefined();
    await expect(checkSubmission(tight, input(blend('sdxl-turbo', { steps: 20 })))).rejects.toBeInstanceOf(BudgetExceededError);
    expect((await submitJob(tight, input(blend('sdxl-turbo')))).reservedGpuSeconds).toBe(turbo);
    await markWorkerStopped(farm, 'turbo-3');
  });

  it('explicit steps are kept; a model with no family keeps the presets', async () => {
    await registerWorker(farm, { id: 'mixed', host: 'h', pid: 3, concurrency: 1, capabilities: caps({ 'sd-turbo': 'sd-turbo', plain: undefined, base: 'sd1' }) });
    const submit = (params: Record<string, unknown>) => submitJob(farm, { kind: 'blend', userId: 'member-2', params, requireCapableWorker: true });
    expect((await submit(blend('sd-turbo', { quality: 'draft' }))).params.steps).toBe(MIN_BLEND_STEPS);
    expect((await submit(blend('sd-turbo', { steps: 12 }))).params.steps).toBe(12);
    const { quality: _q, ...noQuality } = blend('sd-turbo', { steps: 20 });
    expect((await submit(noQuality)).params.steps).toBe(20);
    const plain = await submit(blend('plain'));
    expect(plain.params.steps).toBe(QUALITY_PRESETS.standard.steps);
    expect(plain.reservedGpuSeconds).toBe(price(blend('plain')));
    expect((await submit(blend('base', { quality: 'high' }))).params.steps).toBe(QUALITY_PRESETS.high.steps);
    // Without requireCapableWorker the workers the farm knows decide the same way.
    expect((await submitJob(farm, { kind: 'blend', userId: 'member-2', params: blend('sd-turbo') })).params.steps).toBe(4);
  });
});
