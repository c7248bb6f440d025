/**
 * The scheduler registry and how a pipeline picks its scheduler: the caller's choice, else the
 * folder's explicit one (blendfarm.json), else the class scheduler_config.json names when the engine
 * has it, else the family default with a warning. Pipeline cases run the real demo model (a copy
 * whose JSON files are edited per case).
 */
import { describe, expect, it } from 'vitest';
import {
  chooseScheduler,
  createScheduler,
  isSchedulerKind,
  schedulerKindFromClassName,
  schedulerKinds,
  schedulerRegistry,
  supportedSchedulerClassNames,
} from '../../../engine/schedulers/index.ts';
import { StableDiffusionPipeline } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { demoMean, demoVariant, standardized } from '../../helpers/demo.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

const PNDM_CONFIG = {
  _class_name: 'PNDMScheduler', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, clip_sample: false,
  num_train_timesteps: 1000, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1,
};

describe('registry', () => {
  it('every lookup derives from one list: kinds, classes, constructors agree', () => {
    expect(schedulerKinds).toEqual(schedulerRegistry.map((r) => r.kind));
    expect(new Set(schedulerKinds).size).toBe(schedulerKinds.length);
    expect(schedulerKinds).toContain('pndm');
    for (const entry of schedulerRegistry) {
      const s = createScheduler(entry.kind, PNDM_CONFIG);
      expect(s.kind).toBe(entry.kind);
      expect(isSchedulerKind(entry.kind)).toBe(true);
      for (const name of entry.classNames) {
        expect(schedulerKindFromClassName(name)).toBe(entry.kind);
        expect(s.constructor.name).toBe(name);
      }
    }
    expect(supportedSchedulerClassNames).toEqual(schedulerRegistry.flatMap((r) => r.classNames));
    expect(isSchedulerKind('heun')).toBe(false);
  });
});

describe('chooseScheduler', () => {
  it('caller, then folder, then the config class, then the family default', () => {
    expect(chooseScheduler({ requested: 'euler', folderChoice: 'ddim', config: PNDM_CONFIG, fallback: 'dpmpp_2m' })).toEqual({ kind: 'euler', source: 'request' });
    expect(chooseScheduler({ folderChoice: 'ddim', config: PNDM_CONFIG, fallback: 'dpmpp_2m' })).toEqual({ kind: 'ddim', source: 'folder' });
    expect(chooseScheduler({ config: PNDM_CONFIG, fallback: 'dpmpp_2m' })).toEqual({ kind: 'pndm', source: 'config' });
    expect(chooseScheduler({ config: { ...PNDM_CONFIG, _class_name: 'EulerDiscreteScheduler' }, fallback: 'dpmpp_2m' }).kind).toBe('euler');
    expect(chooseScheduler({ config: { num_train_timesteps: 1000 }, fallback: 'dpmpp_2m' })).toEqual({ kind: 'dpmpp_2m', source: 'default' });
  });

  it('an unknown or unusable class falls back to the family default with a warning that says why', () => {
    const unknown = chooseScheduler({ config: { _class_name: 'EulerAncestralDiscreteScheduler' }, fallback: 'euler', fallbackLabel: 'the sdxl-turbo default' });
    expect(unknown.kind).toBe('euler');
    expect(unknown.source).toBe('default');
    expect(unknown.warning).toMatch(/scheduler_config\.json names EulerAncestralDiscreteScheduler, which the engine does not implement \(it has DDIMScheduler, .*PNDMScheduler\)\. Using the euler \(the sdxl-turbo default\) scheduler instead\./);
    const prk = chooseScheduler({ config: { ...PNDM_CONFIG, skip_prk_steps: false }, fallback: 'dpmpp_2m' });
    expect(prk.kind).toBe('dpmpp_2m');
    expect(prk.warning).toMatch(/PNDMScheduler, but .*skip_prk_steps is false/);
    const badFolder = chooseScheduler({ folderChoice: 'heun', config: PNDM_CONFIG, fallback: 'dpmpp_2m' });
    expect(badFolder.kind).toBe('pndm');
    expect(badFolder.warning).toMatch(/blendfarm\.json asks for scheduler "heun", which is not one of ddim, euler, dpmpp_2m, lcm, pndm/);
    expect(() => chooseScheduler({ requested: 'heun' as never, config: PNDM_CONFIG, fallback: 'ddim' })).toThrow(/unknown scheduler "heun"; choose one of/);
  });
});

describe('the pipeline picks its scheduler from the model folder', () => {
  let dir: string;
  useTempDir('blendfarm-sched-', (d) => (dir = d));

  it('blendfarm.json names a scheduler: it wins over the config class (the demo model)', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
    expect(pipe.folder.schedulerConfig._class_name).toBe('PNDMScheduler');
    expect(pipe.schedulerKind).toBe('dpmpp_2m');
    await pipe.release();
  });

  it("otherwise the config's PNDMScheduler is used, lands on the model's distribution, and an explicit choice overrides it", async () => {
    const folder = await demoVariant(dir, 'pndm', { meta: (m) => delete m.defaults.scheduler });
    const pipe = await StableDiffusionPipeline.load(folder);
    expect(pipe.schedulerKind).toBe('pndm');
    expect(pipe.warnings).toEqual([]);
    const size = { width: 128, height: 128 };
    const prompt = 'a watercolour of mountains';
    const calls = pipe.unet.calls;
    const r = await pipe.generate({ prompt, seed: 42, steps: 30, guidance: 1, ...size });
    expect(r.scheduler).toBe('pndm');
    expect(pipe.unet.calls - calls).toBe(31); // PLMS repeats one timestep
    const { mean, std } = standardized(r.latents, await demoMean(pipe, prompt, { guidance: 1, ...size }));
    expect(Math.abs(mean)).toBeLessThan(0.08);
    expect(std).toBeGreaterThan(0.9);
    expect(std).toBeLessThan(1.1);
    expect((await pipe.generate({ prompt, seed: 42, steps: 4, scheduler: 'ddim', ...size })).scheduler).toBe('ddim');
    await pipe.release();

    const explicit = await StableDiffusionPipeline.load(folder, { scheduler: 'euler' });
    expect(explicit.schedulerKind).toBe('euler');
    await explicit.release();
  });

  it('a class the engine lacks falls back to the family default, with the reason in pipe.warnings', async () => {
    const folder = await demoVariant(dir, 'ancestral', {
      meta: (m) => delete m.defaults.scheduler,
      config: (c) => (c._class_name = 'EulerAncestralDiscreteScheduler'),
    });
    const pipe = await StableDiffusionPipeline.load(folder);
    expect(pipe.schedulerKind).toBe('dpmpp_2m');
    expect(pipe.warnings.join('\n')).toMatch(/EulerAncestralDiscreteScheduler, which the engine does not implement.*Using the dpmpp_2m \(the sd1 default\) scheduler instead/);
    await pipe.release();
  });
});
