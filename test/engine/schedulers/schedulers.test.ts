import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createScheduler,
  DDIMScheduler,
  DPMSolverMultistepScheduler,
  EulerDiscreteScheduler,
  LCMScheduler,
  PNDMScheduler,
  SchedulerConfigError,
  schedulerKindFromClassName,
  schedulerKinds,
  type Sample,
  type Scheduler,
  type SchedulerKind,
} from '../../../engine/schedulers/index.ts';
import { karrasSigmas, roundHalfEven } from '../../../engine/schedulers/scheduler.ts';

interface LcmStep { x: number[]; t: number; denoised: number[] }
interface FixtureCase {
  config: 'sd15' | 'turbo';
  scheduler: SchedulerKind;
  steps: number;
  scheduler_config: Record<string, unknown>;
  timesteps: number[];
  sigmas?: number[] | null;
  init_noise_sigma: number;
  scaled_input_first: number[] | null;
  trajectory: number[][] | null;
  lcm_steps?: LcmStep[] | null;
}
interface Fixture { note: string; x0: number[]; cases: FixtureCase[] }

const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/schedulers-reference.json', import.meta.url), 'utf8'),
) as Fixture;

/** The fixture's stand-in UNet (see its `note`), applied to the already scaled model input. */
function standInModel(scaledInput: Sample, t: number): Float64Array {
  return Float64Array.from(scaledInput, (x, i) => 0.6 * x * (1 - (0.5 * t) / 1000) + 0.25 * Math.cos(1.3 * i + (5 * t) / 1000));
}

/** Largest |a - b| / max(1, |b|): relative for big values, absolute near zero. */
function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(1, Math.abs(expected[i])));
  }
  return worst;
}

const TOL = 1e-5;
const SD15 = fixture.cases.find((c) => c.config === 'sd15' && c.scheduler === 'euler')!.scheduler_config;
const TURBO = fixture.cases.find((c) => c.config === 'turbo' && c.scheduler === 'euler')!.scheduler_config;
const seededNormals = (seed: number): (() => number) => {
  // Tiny LCG + Box-Muller: any reproducible standard-normal sampler will do for these tests.
  let s = seed >>> 0;
  const uniform = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
};

describe('schedulers match diffusers (fixture)', () => {
  it('the fixture describes the stand-in model used here', () => {
    expect(fixture.note).toContain('0.6*x*(1-0.5*t/1000)+0.25*cos(1.3i+5t/1000)');
    expect(fixture.cases.length).toBe(34);
  });

  for (const c of fixture.cases) {
    it(`${c.config} ${c.scheduler} ${c.steps} steps`, () => {
      const scheduler = createScheduler(c.scheduler, c.scheduler_config, { rng: seededNormals(c.steps) });
      scheduler.setTimesteps(c.steps);
      expect(scheduler.timesteps).toEqual(c.timesteps);
      expect(maxRelError([scheduler.initNoiseSigma], [c.init_noise_sigma])).toBeLessThanOrEqual(1e-6);
      if (c.sigmas) {
        expect(maxRelError(scheduler.sigmas!, c.sigmas)).toBeLessThanOrEqual(1e-6);
      }

      let x: Sample = Float64Array.from(fixture.x0, (v) => v * scheduler.initNoiseSigma);
      const firstScaled = scheduler.scaleModelInput(x, scheduler.timesteps[0]);
      const sigma0 = scheduler.sigmas?.[0];
      if (sigma0 !== undefined && scheduler.initNoiseSigma === sigma0) {
        // Euler with trailing spacing: the fixture's scaled_input_first is plain x0 there, which does
        // not follow from its own trajectory (that starts at x0 * init_noise_sigma and divides by
        // sqrt(sigma^2 + 1), as the trajectory check below confirms). Check diffusers' formula instead.
        const expected = fixture.x0.map((v) => (v * sigma0) / Math.sqrt(sigma0 * sigma0 + 1));
        expect(maxRelError(firstScaled, expected)).toBeLessThanOrEqual(1e-6);
      } else if (c.scaled_input_first) {
        expect(maxRelError(firstScaled, c.scaled_input_first)).toBeLessThanOrEqual(TOL);
      }

      if (c.trajectory) {
        expect(c.trajectory.length).toBe(c.steps);
        scheduler.reset();
        c.trajectory.forEach((expected, k) => {
          const t = scheduler.timesteps[k];
          const out = standInModel(scheduler.scaleModelInput(x, t), t);
          x = scheduler.step(out, t, x).prevSample;
          expect(x).toBeInstanceOf(Float64Array);
          expect(maxRelError(x, expected), `step ${k}`).toBeLessThanOrEqual(TOL);
        });
      }

      if (c.lcm_steps) {
        expect(c.lcm_steps.map((s) => s.t)).toEqual(c.timesteps);
        scheduler.reset();
        for (const s of c.lcm_steps) {
          const input = Float64Array.from(s.x);
          const out = standInModel(scheduler.scaleModelInput(input, s.t), s.t);
          const { denoised } = scheduler.step(out, s.t, input);
          expect(maxRelError(denoised, s.denoised), `t=${s.t}`).toBeLessThanOrEqual(TOL);
        }
      }
    });
  }
});

describe('timestep spacing (numbers worked out from diffusers formulas)', () => {
  const linear1000 = { num_train_timesteps: 1000, timestep_spacing: 'linspace' };

  it('linspace: np.linspace(0, 999, n) reversed; DDIM rounds half to even, Euler keeps fractions', () => {
    const ddim = createScheduler('ddim', linear1000);
    ddim.setTimesteps(4);
    expect(ddim.timesteps).toEqual([999, 666, 333, 0]);
    // 999/6 steps give 166.5, 499.5, 832.5: numpy rounds them to the even neighbour.
    ddim.setTimesteps(7);
    expect(ddim.timesteps).toEqual([999, 832, 666, 500, 333, 166, 0]);
    const euler = createScheduler('euler', linear1000);
    euler.setTimesteps(7);
    expect(euler.timesteps).toEqual([999, 832.5, 666, 499.5, 333, 166.5, 0]);
  });

  it('DPM-Solver spaces n + 1 points and drops the last', () => {
    const dpm = createScheduler('dpmpp_2m', linear1000);
    // np.linspace(0, 999, 5) = 0, 249.75, 499.5, 749.25, 999 -> rounded, reversed, last dropped
    dpm.setTimesteps(4);
    expect(dpm.timesteps).toEqual([999, 749, 500, 250]);
    const leading = createScheduler('dpmpp_2m', { timestep_spacing: 'leading', steps_offset: 1 });
    leading.setTimesteps(3); // step ratio 1000 // 4 = 250
    expect(leading.timesteps).toEqual([751, 501, 251]);
  });

  it('leading: multiples of num_train // n plus steps_offset', () => {
    const ddim = createScheduler('ddim', { timestep_spacing: 'leading', steps_offset: 1 });
    ddim.setTimesteps(3); // ratio 333
    expect(ddim.timesteps).toEqual([667, 334, 1]);
  });

  it('trailing: round(arange(1000, 0, -1000/n)) - 1, ties to even', () => {
    const ddim = createScheduler('ddim', { timestep_spacing: 'trailing' });
    ddim.setTimesteps(16); // 1000 - 62.5 k: 937.5 -> 938, 812.5 -> 812, ...
    expect(ddim.timesteps).toEqual([999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61]);
    // numpy's arange yields a 62nd, near-zero entry for 61 steps (timestep -1); we keep 61.
    ddim.setTimesteps(61);
    expect(ddim.timesteps.length).toBe(61);
    expect(Math.min(...ddim.timesteps)).toBeGreaterThanOrEqual(0);
  });

  it('LCM picks from the original 50-step schedule regardless of spacing', () => {
    const lcm = createScheduler('lcm', { timestep_spacing: 'trailing' }, { rng: seededNormals(1) });
    lcm.setTimesteps(2); // origin 999, 979, ..., 19; indices floor(linspace(0, 50, 2, endpoint=False)) = 0, 25
    expect(lcm.timesteps).toEqual([999, 499]);
    const lcm30 = createScheduler('lcm', { original_inference_steps: 30 }, { rng: seededNormals(1) });
    lcm30.setTimesteps(22);
    // k = 1000 // 30 = 33. Index 11 is 11 * (30/22) = 14.999999999999998 in float64, floored to 14
    // by numpy, so the 12th timestep is (30 - 14) * 33 - 1 = 527 rather than 494.
    expect(lcm30.timesteps[0]).toBe(989);
    expect(lcm30.timesteps[11]).toBe(527);
    expect(lcm30.timesteps[21]).toBe(65);
  });

  it('roundHalfEven matches np.round', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, 3]);
  });
});

describe('Karras sigmas', () => {
  it('karrasSigmas runs from sigma_max to sigma_min, evenly spaced in sigma^(1/rho)', () => {
    const s = karrasSigmas(0.03, 14.6, 12);
    expect(s[0]).toBeCloseTo(14.6, 10);
    expect(s[11]).toBeCloseTo(0.03, 12);
    const roots = s.map((v) => v ** (1 / 7));
    for (let i = 1; i < roots.length - 1; i++) {
      expect(roots[i - 1] - 2 * roots[i] + roots[i + 1]).toBeCloseTo(0, 12);
    }
  });

  it('Euler: decreasing from the first spaced timestep sigma to the last, then 0', () => {
    const euler = createScheduler('euler', { ...SD15, use_karras_sigmas: true });
    euler.setTimesteps(10);
    const sigmas = euler.sigmas!;
    expect(sigmas.length).toBe(11);
    // leading spacing gives timesteps 901 ... 1, whose sigmas diffusers reports as 8.3907 and 0.041314
    expect(sigmas[0]).toBeCloseTo(8.390686988830566, 5);
    expect(sigmas[9]).toBeCloseTo(0.04131447896361351, 7);
    expect(sigmas[10]).toBe(0);
    for (let i = 1; i < sigmas.length; i++) expect(sigmas[i]).toBeLessThan(sigmas[i - 1]);
    expect(euler.timesteps[0]).toBeCloseTo(901, 2);
    expect(euler.timesteps[9]).toBeCloseTo(1, 2);
    for (let i = 1; i < 10; i++) expect(euler.timesteps[i]).toBeLessThan(euler.timesteps[i - 1]);
    expect(euler.initNoiseSigma).toBeCloseTo(Math.sqrt(sigmas[0] ** 2 + 1), 5);
  });

  it('DPM++ 2M: full training range, whole-number timesteps', () => {
    const dpm = createScheduler('dpmpp_2m', { ...SD15, use_karras_sigmas: true });
    dpm.setTimesteps(20);
    const sigmas = dpm.sigmas!;
    expect(sigmas.length).toBe(21);
    expect(sigmas[0]).toBeCloseTo(14.614646911621094, 5); // sigma at t = 999
    expect(sigmas[19]).toBeCloseTo(0.0291675, 6); // sigma at t = 0
    expect(sigmas[20]).toBe(0);
    for (let i = 1; i < sigmas.length; i++) expect(sigmas[i]).toBeLessThan(sigmas[i - 1]);
    expect(dpm.timesteps[0]).toBe(999);
    expect(dpm.timesteps[19]).toBe(0);
    for (const t of dpm.timesteps) expect(Number.isInteger(t)).toBe(true);
    for (let i = 1; i < 20; i++) expect(dpm.timesteps[i]).toBeLessThanOrEqual(dpm.timesteps[i - 1]);
  });
});

/**
 * The toy problem: a fixed clean sample x0 and a model that answers exactly (the true epsilon,
 * v or x0 for whatever noisy sample it is shown). Every scheduler must then land on x0.
 */
function exactModel(
  scheduler: Scheduler,
  x0: Float64Array,
  prediction: 'epsilon' | 'v_prediction' | 'sample',
  stepIndex: number,
  t: number,
  scaledInput: Sample,
): Float64Array {
  // The UNet always sees a variance-preserving sample sqrt(abar) x0 + sqrt(1 - abar) eps.
  const abar = scheduler.sigmas
    ? 1 / (1 + scheduler.sigmas[stepIndex] ** 2)
    : (scheduler as DDIMScheduler | LCMScheduler).alphasCumprod[t];
  const a = Math.sqrt(abar);
  const b = Math.sqrt(1 - abar);
  return Float64Array.from(scaledInput, (z, i) => {
    const eps = (z - a * x0[i]) / b;
    return prediction === 'epsilon' ? eps : prediction === 'v_prediction' ? a * eps - b * x0[i] : x0[i];
  });
}

function solveToy(scheduler: Scheduler, prediction: 'epsilon' | 'v_prediction' | 'sample', steps: number): { x0: Float64Array; result: Sample } {
  const x0 = Float64Array.from({ length: 8 }, (_, i) => Math.sin(1.1 * i + 0.2) * 0.9);
  const noise = Float64Array.from({ length: 8 }, (_, i) => Math.cos(2.3 * i + 1));
  scheduler.setTimesteps(steps);
  let x = scheduler.addNoise(x0, noise, scheduler.timesteps[0]);
  scheduler.timesteps.forEach((t, k) => {
    const out = exactModel(scheduler, x0, prediction, k, t, scheduler.scaleModelInput(x, t));
    x = scheduler.step(out, t, x).prevSample;
  });
  return { x0, result: x };
}

describe('exact-model toy problem', () => {
  for (const prediction of ['epsilon', 'v_prediction', 'sample'] as const) {
    it(`DDIM, 1 step, ${prediction}: returns x0`, () => {
      for (const spacing of ['leading', 'trailing']) {
        const ddim = createScheduler('ddim', { ...TURBO, timestep_spacing: spacing, set_alpha_to_one: true, prediction_type: prediction });
        const { x0, result } = solveToy(ddim, prediction, 1);
        expect(maxRelError(result, x0)).toBeLessThan(1e-12);
      }
    });

    it(`Euler and DPM++ 2M (plain and Karras) and LCM, ${prediction}: end at x0`, () => {
      for (const karras of [false, true]) {
        for (const kind of ['euler', 'dpmpp_2m'] as const) {
          for (const steps of [1, 4, 25]) {
            const s = createScheduler(kind, { ...SD15, use_karras_sigmas: karras, prediction_type: prediction });
            const { x0, result } = solveToy(s, prediction, steps);
            expect(maxRelError(result, x0), `${kind} karras=${karras} ${steps}`).toBeLessThan(1e-9);
          }
        }
      }
      // LCM's boundary condition keeps a c_skip of ~2.5e-9 of the noisy sample at t = 999.
      const lcm = createScheduler('lcm', { ...SD15, prediction_type: prediction });
      const { x0, result } = solveToy(lcm, prediction, 1);
      expect(maxRelError(result, x0)).toBeLessThan(1e-7);
    });
  }

  it('DDIM without set_alpha_to_one stops at alphas_cumprod[0], not at x0', () => {
    const ddim = createScheduler('ddim', { ...TURBO, set_alpha_to_one: false }) as DDIMScheduler;
    const { x0, result } = solveToy(ddim, 'epsilon', 1);
    expect(maxRelError(result, x0)).toBeGreaterThan(1e-3);
    expect(ddim.finalAlphaCumprod).toBe(ddim.alphasCumprod[0]);
  });
});

describe('scheduler state', () => {
  const runDpm = (s: Scheduler, from = 0, x0?: Sample): Sample => {
    let x: Sample = x0 ?? Float64Array.from(fixture.x0);
    for (let k = from; k < s.timesteps.length; k++) {
      const t = s.timesteps[k];
      x = s.step(standInModel(s.scaleModelInput(x, t), t), t, x).prevSample;
    }
    return x;
  };

  it('clone() gives independent state with the same timesteps', () => {
    const base = createScheduler('dpmpp_2m', SD15);
    base.setTimesteps(10);
    const reference = runDpm(base.clone());

    // Interleave two trajectories: each must equal a run on its own.
    const a = base.clone();
    const b = base.clone();
    expect(b.timesteps).toEqual(a.timesteps);
    let xa: Sample = Float64Array.from(fixture.x0);
    let xb: Sample = Float64Array.from(fixture.x0);
    for (const t of a.timesteps) {
      xa = a.step(standInModel(xa, t), t, xa).prevSample;
      xb = b.step(standInModel(xb, t), t, xb).prevSample;
    }
    expect(maxRelError(xa, reference)).toBe(0);
    expect(maxRelError(xb, reference)).toBe(0);
  });

  it('a clone can join a trajectory mid-way (branching), starting with a first-order step', () => {
    const main = createScheduler('dpmpp_2m', SD15);
    main.setTimesteps(10);
    let x: Sample = Float64Array.from(fixture.x0);
    for (let k = 0; k < 4; k++) {
      const t = main.timesteps[k];
      x = main.step(standInModel(x, t), t, x).prevSample;
    }
    const branch = main.clone();
    const fromBranch = runDpm(branch, 4, x);
    const fromMain = runDpm(main, 4, x);
    // The branch has no previous model output, so its first step is first order: a small difference.
    const diff = maxRelError(fromBranch, fromMain);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(0.05);
  });

  it('steps out of order or past the end are refused; reset() starts over', () => {
    const euler = createScheduler('euler', SD15);
    euler.setTimesteps(4);
    const x = Float64Array.from(fixture.x0);
    const [t0, t1] = euler.timesteps;
    euler.step(standInModel(x, t0), t0, x);
    expect(() => euler.step(x, t0, x)).toThrow(/expected timestep 501 .*but got 751/);
    for (const t of euler.timesteps.slice(1)) euler.step(x, t, x);
    expect(() => euler.step(x, t1, x)).toThrow(/all 4 steps are done/);
    euler.reset();
    expect(() => euler.step(x, t0, x)).not.toThrow();
    expect(() => createScheduler('euler', SD15).step(x, 751, x)).toThrow(/setTimesteps/);
    expect(() => euler.clone().step(x, 752, x)).toThrow(/timestep 752 is not in this schedule/);
  });

  it('keeps Float32Array samples as Float32Array', () => {
    for (const kind of schedulerKinds) {
      // skip_prk_steps: PNDM runs only as PLMS; the other schedulers ignore the key.
      const s = createScheduler(kind, { ...SD15, skip_prk_steps: true }, { rng: seededNormals(1) });
      s.setTimesteps(4);
      let x: Sample = Float32Array.from(fixture.x0);
      for (const t of s.timesteps) {
        const scaled = s.scaleModelInput(x, t);
        expect(scaled).toBeInstanceOf(Float32Array);
        expect(scaled).not.toBe(x);
        const { prevSample, denoised } = s.step(standInModel(scaled, t), t, x);
        expect(prevSample, kind).toBeInstanceOf(Float32Array);
        expect(denoised, kind).toBeInstanceOf(Float32Array);
        x = prevSample;
      }
      expect(s.addNoise(x, x, s.timesteps[0])).toBeInstanceOf(Float32Array);
    }
  });

  it('LCM multi-step draws its noise from rng and needs one', () => {
    expect(() => createScheduler('lcm', SD15).setTimesteps(4)).toThrow(/pass \{ stepNoise \} or \{ rng \}/);
    const single = createScheduler('lcm', SD15);
    expect(() => single.setTimesteps(1)).not.toThrow();

    const run = (rng: () => number): Sample => {
      const lcm = createScheduler('lcm', SD15, { rng });
      lcm.setTimesteps(4);
      let x: Sample = Float64Array.from(fixture.x0);
      for (const t of lcm.timesteps) x = lcm.step(standInModel(x, t), t, x).prevSample;
      return x;
    };
    expect(maxRelError(run(seededNormals(7)), run(seededNormals(7)))).toBe(0);
    expect(maxRelError(run(seededNormals(7)), run(seededNormals(8)))).toBeGreaterThan(1e-3);
  });
});

describe('addNoise', () => {
  const x0 = Float64Array.from({ length: 6 }, (_, i) => i - 2.5);
  const noise = Float64Array.from({ length: 6 }, (_, i) => Math.sin(i + 1));

  it('DDIM/LCM noise with sqrt(abar), Euler in sigma space, DPM in VP space: all agree after scaling', () => {
    const ddim = createScheduler('ddim', SD15) as DDIMScheduler;
    ddim.setTimesteps(4);
    const euler = createScheduler('euler', SD15);
    euler.setTimesteps(4);
    const t = euler.timesteps[1]; // 501
    const abar = ddim.alphasCumprod[t];
    const viaDdim = ddim.addNoise(x0, noise, t);
    expect(viaDdim[5]).toBeCloseTo(Math.sqrt(abar) * x0[5] + Math.sqrt(1 - abar) * noise[5], 12);
    const viaEuler = euler.scaleModelInput(euler.addNoise(x0, noise, t), t);
    expect(maxRelError(viaEuler, viaDdim)).toBeLessThan(1e-6);

    const dpm = createScheduler('dpmpp_2m', SD15);
    dpm.setTimesteps(4);
    const tDpm = dpm.timesteps[2]; // 401
    expect(maxRelError(dpm.addNoise(x0, noise, tDpm), ddim.addNoise(x0, noise, tDpm))).toBeLessThan(1e-6);
    expect(() => ddim.addNoise(x0, noise, 1000)).toThrow(/from 0 to 999/);
  });
});

describe('config', () => {
  it("fills missing keys with each scheduler's diffusers defaults and ignores unknown keys", () => {
    expect(createScheduler('euler', {}).config.timestep_spacing).toBe('linspace');
    expect(createScheduler('ddim', {}).config).toMatchObject({ clip_sample: true, set_alpha_to_one: true, beta_schedule: 'linear' });
    expect(createScheduler('lcm', {}).config).toMatchObject({ beta_schedule: 'scaled_linear', original_inference_steps: 50, timestep_scaling: 10 });
    expect(createScheduler('dpmpp_2m', {}).config).toMatchObject({ solver_order: 2, algorithm_type: 'dpmsolver++', final_sigmas_type: 'zero' });

    // Stable Diffusion 1.5's scheduler/scheduler_config.json (a PNDM config) drives any of them.
    const sd15Folder = {
      _class_name: 'PNDMScheduler', _diffusers_version: '0.6.0', beta_end: 0.012, beta_schedule: 'scaled_linear',
      beta_start: 0.00085, clip_sample: false, num_train_timesteps: 1000, set_alpha_to_one: false,
      skip_prk_steps: true, steps_offset: 1, trained_betas: null,
    };
    expect(schedulerKindFromClassName(sd15Folder._class_name)).toBe('pndm');
    const dpm = createScheduler('dpmpp_2m', sd15Folder);
    // No timestep_spacing there, so DPM's own default applies (linspace, as in diffusers'
    // from_config): round(linspace(0, 999, 26)) reversed without its 0, i.e. 999 ... round(39.96).
    dpm.setTimesteps(25);
    expect(dpm.config.timestep_spacing).toBe('linspace');
    expect(dpm.timesteps[0]).toBe(999);
    expect(dpm.timesteps[24]).toBe(40);
    expect(dpm.config.steps_offset).toBe(1);
    expect(dpm.config._class_name).toBe('PNDMScheduler');
  });

  it('DDIM clip_sample clamps the x0 estimate', () => {
    const ddim = createScheduler('ddim', { prediction_type: 'sample', clip_sample: true, clip_sample_range: 1.5 });
    ddim.setTimesteps(10);
    const x = new Float64Array([0, 0, 0]);
    const { denoised } = ddim.step(new Float64Array([5, -5, 0.5]), ddim.timesteps[0], x);
    expect(Array.from(denoised)).toEqual([1.5, -1.5, 0.5]);
  });

  it('final_sigmas_type sigma_min ends at the smallest training sigma', () => {
    const euler = createScheduler('euler', { ...SD15, final_sigmas_type: 'sigma_min' });
    euler.setTimesteps(5);
    expect(euler.sigmas![5]).toBeCloseTo(0.0291675, 6);
  });

  it('rescale_betas_zero_snr makes the last timestep pure noise and keeps the first', () => {
    const plain = createScheduler('ddim', SD15) as DDIMScheduler;
    const zsnr = createScheduler('ddim', { ...SD15, rescale_betas_zero_snr: true }) as DDIMScheduler;
    expect(zsnr.alphasCumprod[999]).toBe(0);
    expect(zsnr.alphasCumprod[0]).toBeCloseTo(plain.alphasCumprod[0], 7);
    // Euler and DPM replace the zero by 2^-24 so the top sigma stays finite: sqrt(2^24 - 1).
    const euler = createScheduler('euler', { ...TURBO, rescale_betas_zero_snr: true });
    euler.setTimesteps(2);
    expect(euler.sigmas![0]).toBeCloseTo(Math.sqrt(2 ** 24 - 1), 1);
  });

  it('squaredcos_cap_v2 betas telescope to alpha_bar(t + 1) / alpha_bar(0)', () => {
    const ddim = createScheduler('ddim', { beta_schedule: 'squaredcos_cap_v2' }) as DDIMScheduler;
    const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    for (const t of [0, 10, 250, 500, 900]) {
      expect(ddim.alphasCumprod[t]).toBeCloseTo(alphaBar((t + 1) / 1000) / alphaBar(0), 5);
    }
  });

  it('trained_betas are used as given', () => {
    const betas = Array.from({ length: 10 }, (_, i) => 0.01 * (i + 1));
    const ddim = createScheduler('ddim', { num_train_timesteps: 10, trained_betas: betas }) as DDIMScheduler;
    expect(ddim.alphasCumprod[1]).toBeCloseTo(0.99 * 0.98, 6);
  });

  it('bad values give clear errors naming the key and what is allowed', () => {
    const bad = (kind: SchedulerKind, cfg: unknown): (() => Scheduler) =>
      () => createScheduler(kind, cfg as Record<string, unknown>);
    expect(bad('euler', { beta_schedule: 'cosine' })).toThrow(
      "Invalid Euler scheduler config: beta_schedule must be one of 'linear', 'scaled_linear', 'squaredcos_cap_v2' (got \"cosine\")",
    );
    expect(bad('ddim', { prediction_type: 'x0' })).toThrow(/prediction_type must be one of 'epsilon', 'v_prediction', 'sample'/);
    expect(bad('ddim', { timestep_spacing: 'even' })).toThrow(/timestep_spacing must be one of 'leading', 'trailing', 'linspace'/);
    expect(bad('ddim', { num_train_timesteps: -5 })).toThrow(/num_train_timesteps must be a whole number >= 1 \(got -5\)/);
    expect(bad('ddim', { steps_offset: 'one' })).toThrow(/steps_offset must be a whole number/);
    expect(bad('ddim', { beta_end: 2 })).toThrow(/beta_end must be a number between 0 and 1/);
    expect(bad('ddim', { clip_sample: 'no' })).toThrow(/clip_sample must be true or false/);
    expect(bad('ddim', { trained_betas: [0.1, 0.2] })).toThrow(/trained_betas must be an array of 1000 numbers/);
    expect(bad('ddim', { thresholding: true })).toThrow(/thresholding .*not implemented/);
    expect(bad('euler', { interpolation_type: 'log_linear' })).toThrow(/interpolation_type 'log_linear' is not implemented/);
    expect(bad('dpmpp_2m', { algorithm_type: 'sde-dpmsolver++' })).toThrow(/algorithm_type must be 'dpmsolver\+\+'/);
    expect(bad('dpmpp_2m', { solver_order: 3 })).toThrow(/solver_order must be 1 or 2/);
    expect(bad('dpmpp_2m', 'scaled_linear')).toThrow(/config must be an object/);
    expect(bad('heun' as SchedulerKind, {})).toThrow(/unknown scheduler "heun"; choose one of ddim, euler, dpmpp_2m, lcm/);
    expect(() => bad('euler', { beta_schedule: 'cosine' })()).toThrow(SchedulerConfigError);

    const euler = createScheduler('euler', SD15);
    expect(() => euler.setTimesteps(0)).toThrow(/whole number from 1 to 1000, got 0/);
    const lcm = createScheduler('lcm', SD15, { rng: seededNormals(1) });
    expect(() => lcm.setTimesteps(51)).toThrow(/from 1 to 50/);
    const ddim = createScheduler('ddim', SD15);
    ddim.setTimesteps(2);
    expect(() => ddim.step(new Float64Array(3), ddim.timesteps[0], new Float64Array(4))).toThrow(/model output has 3 values but the sample has 4/);
  });
});

describe('schedulerKindFromClassName', () => {
  it('maps the diffusers classes the engine implements to their kind, and nothing else', () => {
    expect(schedulerKindFromClassName('DDIMScheduler')).toBe('ddim');
    expect(schedulerKindFromClassName('EulerDiscreteScheduler')).toBe('euler');
    expect(schedulerKindFromClassName('DPMSolverMultistepScheduler')).toBe('dpmpp_2m');
    expect(schedulerKindFromClassName('LCMScheduler')).toBe('lcm');
    expect(schedulerKindFromClassName('PNDMScheduler')).toBe('pndm');
    // Classes the engine does not have are not silently mapped to a different sampler.
    expect(schedulerKindFromClassName('EulerAncestralDiscreteScheduler')).toBeNull();
    expect(schedulerKindFromClassName('DPMSolverSinglestepScheduler')).toBeNull();
    expect(schedulerKindFromClassName('FlowMatchEulerDiscreteScheduler')).toBeNull();
    expect(schedulerKindFromClassName('toString')).toBeNull();
    expect(schedulerKindFromClassName(undefined)).toBeNull();
  });

  it('the classes report their kind', () => {
    expect(new DDIMScheduler({}).kind).toBe('ddim');
    expect(new EulerDiscreteScheduler({}).kind).toBe('euler');
    expect(new DPMSolverMultistepScheduler({}).kind).toBe('dpmpp_2m');
    expect(new LCMScheduler({}).kind).toBe('lcm');
    expect(new PNDMScheduler({ skip_prk_steps: true }).kind).toBe('pndm');
  });
});
