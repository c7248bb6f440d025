/**
 * PNDMScheduler (PLMS, skip_prk_steps) against diffusers' scheduling_pndm.py.
 *
 * Where the reference numbers come from: the fixture (test/fixtures/schedulers-reference.json) has
 * no PNDM case and diffusers cannot run here, so every expected value below is computed in this file
 * from diffusers' own rules, restated independently of engine/schedulers/pndm.ts:
 *  - timesteps: set_timesteps builds `_timesteps` (leading: arange(0, N) * (T // N) + steps_offset;
 *    linspace: round(linspace(0, T - 1, N)); trailing: round(arange(T, 0, -T / N))[::-1] - 1), then
 *    plms_timesteps = concatenate([_timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:]])[::-1];
 *    written out by hand for small N, and the well-known SD 1.5 50-step list [981, 961, 961, 941, ...].
 *  - steps: step_plms combines outputs as e0; (e0 + e1) / 2 from the first sample; then
 *    (3 e_k - e_k-1) / 2, (23, -16, 5) / 12, (55, -59, 37, -9) / 24, and moves with
 *    _get_prev_sample (formula 9 of the PNDM paper), which is algebraically DDIM's eta = 0 update
 *    from t to t - T // N. The reference below therefore steps with DDIMScheduler (itself checked
 *    against diffusers by the fixture) fed the combined outputs.
 *  - exactness: with the exact noise predictor every combination above is the true noise, so the
 *    sampler must land on the clean sample (set_alpha_to_one) like DDIM.
 */
import { describe, expect, it } from 'vitest';
import { createScheduler, DDIMScheduler, PNDMScheduler, SchedulerConfigError, type Sample } from '../../../engine/schedulers/index.ts';

/** Stable Diffusion 1.5's scheduler/scheduler_config.json (a PNDM config). */
const SD15 = {
  _class_name: 'PNDMScheduler', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, clip_sample: false,
  num_train_timesteps: 1000, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null,
};

/** diffusers' plms_timesteps rule, from an ascending `_timesteps`. */
function plmsTimesteps(base: number[]): number[] {
  return [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
}

function model(x: Sample, t: number): Float64Array {
  return Float64Array.from(x, (v, i) => 0.6 * v * (1 - (0.5 * t) / 1000) + 0.25 * Math.cos(1.3 * i + (5 * t) / 1000));
}

const x0 = Float64Array.from({ length: 16 }, (_, i) => Math.sin(0.7 * i + 0.3));

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('PNDM timesteps', () => {
  it('SD 1.5 at 50 steps: [981, 961, 961, 941, ..., 21, 1], 51 UNet calls', () => {
    const s = createScheduler('pndm', SD15);
    s.setTimesteps(50);
    const base = Array.from({ length: 50 }, (_, i) => i * 20 + 1); // arange(0, 50) * (1000 // 50) + 1
    expect(s.timesteps).toEqual(plmsTimesteps(base));
    expect(s.timesteps.slice(0, 5)).toEqual([981, 961, 961, 941, 921]);
    expect(s.timesteps.at(-1)).toBe(1);
    expect(s.timesteps).toHaveLength(51);
    expect(s.numInferenceSteps).toBe(50);
  });

  it('written out for small schedules and each spacing', () => {
    const at = (steps: number, cfg: Record<string, unknown>) => {
      const s = createScheduler('pndm', { ...SD15, ...cfg });
      s.setTimesteps(steps);
      return s.timesteps;
    };
    expect(at(4, {})).toEqual([751, 501, 501, 251, 1]); // ratio 250, +1
    expect(at(3, {})).toEqual([667, 334, 334, 1]); // ratio 333
    expect(at(1, {})).toEqual([1]); // one step: nothing to repeat
    expect(at(2, {})).toEqual([501, 1, 1]);
    expect(at(4, { timestep_spacing: 'linspace' })).toEqual([999, 666, 666, 333, 0]);
    expect(at(4, { timestep_spacing: 'trailing' })).toEqual([999, 749, 749, 499, 249]);
  });
});

/** The reference PLMS (see the header), stepping with DDIM's update. */
function referencePlms(cfg: Record<string, unknown>, steps: number, x: Float64Array): Float64Array[] {
  const ddim = new DDIMScheduler({ ...cfg, clip_sample: false });
  ddim.setTimesteps(steps);
  const ratio = Math.floor(1000 / steps);
  const base = Array.from({ length: steps }, (_, i) => i * ratio + 1);
  const ts = plmsTimesteps(base);
  const out: Float64Array[] = [];
  const ets: Float64Array[] = [];
  let cur = x;
  let first: Float64Array | null = null;
  ts.forEach((t, k) => {
    const e = model(cur, t);
    let combined: Float64Array;
    let from = cur;
    let fromT = t;
    if (k === 1) {
      combined = e.map((v, i) => (v + ets[0][i]) / 2);
      from = first!;
      fromT = t + ratio;
    } else {
      ets.push(e);
      const n = Math.min(ets.length, 4);
      const [a, b, c, d] = [ets.at(-1)!, ets.at(-2)!, ets.at(-3)!, ets.at(-4)!];
      combined = e.map((_, i) =>
        n === 1 ? a[i]
          : n === 2 ? (3 * a[i] - b[i]) / 2
          : n === 3 ? (23 * a[i] - 16 * b[i] + 5 * c[i]) / 12
          : (55 * a[i] - 59 * b[i] + 37 * c[i] - 9 * d[i]) / 24);
      if (k === 0) first = cur;
    }
    cur = Float64Array.from(ddim.step(combined, fromT, from).prevSample);
    out.push(cur);
  });
  return out;
}

describe('PNDM steps', () => {
  for (const steps of [1, 2, 4, 10, 50]) {
    it(`${steps} steps follow PLMS (predictor, corrector, Adams-Bashforth 2-4) with formula (9)`, () => {
      const s = createScheduler('pndm', SD15);
      s.setTimesteps(steps);
      const expected = referencePlms(SD15, steps, x0);
      expect(expected).toHaveLength(s.timesteps.length);
      let x: Sample = Float64Array.from(x0);
      s.timesteps.forEach((t, k) => {
        x = s.step(model(s.scaleModelInput(x, t), t), t, x).prevSample;
        expect(maxAbs(x, expected[k]), `step ${k}`).toBeLessThan(1e-9);
      });
    });
  }

  it('the second call is a corrector: it restarts from the first sample, not from the predictor output', () => {
    const s = createScheduler('pndm', SD15);
    s.setTimesteps(10);
    const [t0, t1] = s.timesteps;
    const a = s.step(model(x0, t0), t0, x0).prevSample;
    // Feeding the corrector a different "current" sample changes only its model output, not where it starts.
    const viaA = s.clone();
    viaA.setTimesteps(10);
    const b1 = s.step(model(a, t1), t1, a).prevSample;
    expect(t1).toBe(t0 - 100);
    expect(b1).not.toEqual(a);
    const ddim = new DDIMScheduler({ ...SD15 });
    ddim.setTimesteps(10);
    const e = model(x0, t0).map((v, i) => (v + model(a, t1)[i]) / 2);
    expect(maxAbs(b1, ddim.step(e, t0, x0).prevSample)).toBeLessThan(1e-12);
  });

  it('v_prediction converts the combined output to noise with the sample it moves', () => {
    const cfg = { ...SD15, prediction_type: 'v_prediction' };
    const s = createScheduler('pndm', cfg) as PNDMScheduler;
    s.setTimesteps(5);
    const t = s.timesteps[0];
    const v = model(x0, t);
    const abar = s.alphasCumprod[t];
    const eps = v.map((m, i) => Math.sqrt(abar) * m + Math.sqrt(1 - abar) * x0[i]);
    const ddim = new DDIMScheduler({ ...SD15 });
    ddim.setTimesteps(5);
    expect(maxAbs(s.step(v, t, x0).prevSample, ddim.step(eps, t, x0).prevSample)).toBeLessThan(1e-12);
  });

  // v_prediction is exact in one step only: diffusers combines v outputs of different timesteps
  // before converting them to noise, which is not the true noise for an exact model.
  for (const [prediction, counts] of [['epsilon', [1, 2, 3, 4, 5, 25, 50]], ['v_prediction', [1]]] as const) {
    it(`exact model, ${prediction}: lands on x0 (set_alpha_to_one) for ${counts.join(', ')} steps`, () => {
      const clean = Float64Array.from({ length: 8 }, (_, i) => Math.sin(1.1 * i + 0.2) * 0.9);
      const noise = Float64Array.from({ length: 8 }, (_, i) => Math.cos(2.3 * i + 1));
      for (const steps of counts) {
        const s = createScheduler('pndm', { ...SD15, set_alpha_to_one: true, prediction_type: prediction }) as PNDMScheduler;
        s.setTimesteps(steps);
        let x: Sample = s.addNoise(clean, noise, s.timesteps[0]);
        for (const t of s.timesteps) {
          const a = Math.sqrt(s.alphasCumprod[t]);
          const b = Math.sqrt(1 - s.alphasCumprod[t]);
          const out = Float64Array.from(x, (z, i) => {
            const eps = (z - a * clean[i]) / b;
            return prediction === 'epsilon' ? eps : a * eps - b * clean[i];
          });
          x = s.step(out, t, x).prevSample;
        }
        expect(maxAbs(x, clean), `${steps} steps`).toBeLessThan(1e-9);
      }
    });
  }

  it('refuses what it does not implement, naming the key and the fix', () => {
    expect(() => createScheduler('pndm', { ...SD15, skip_prk_steps: false })).toThrow(SchedulerConfigError);
    expect(() => createScheduler('pndm', { ...SD15, skip_prk_steps: undefined })).toThrow(/skip_prk_steps is false.*set skip_prk_steps to true/);
    expect(() => createScheduler('pndm', { ...SD15, prediction_type: 'sample' })).toThrow(/prediction_type must be 'epsilon' or 'v_prediction'/);
  });
});

describe('PNDM branches (begin index)', () => {
  it('a branch may begin at any step, including either copy of the repeated timestep, and lands on x0 (exact model)', () => {
    const clean = Float64Array.from({ length: 8 }, (_, i) => Math.sin(1.1 * i + 0.2) * 0.9);
    const noise = Float64Array.from({ length: 8 }, (_, i) => Math.cos(2.3 * i + 1));
    const main = createScheduler('pndm', { ...SD15, set_alpha_to_one: true }) as PNDMScheduler;
    main.setTimesteps(10);
    const exact = (x: Sample, t: number) => {
      const a = Math.sqrt(main.alphasCumprod[t]);
      const b = Math.sqrt(1 - main.alphasCumprod[t]);
      return Float64Array.from(x, (z, i) => (z - a * clean[i]) / b);
    };
    const path: Sample[] = [];
    let x: Sample = main.addNoise(clean, noise, main.timesteps[0]);
    for (const t of main.timesteps) path.push((x = main.step(exact(x, t), t, x).prevSample));
    expect(maxAbs(path.at(-1)!, clean)).toBeLessThan(1e-9);
    for (let begin = 1; begin < main.timesteps.length; begin++) {
      const branch = main.clone();
      branch.setBeginIndex(begin);
      let y = path[begin - 1];
      for (let k = begin; k < branch.timesteps.length; k++) {
        const t = branch.timesteps[k];
        y = branch.step(exact(y, t), t, y).prevSample;
      }
      expect(maxAbs(y, clean), `begin ${begin}`).toBeLessThan(1e-9);
    }
    // Beginning at the corrector keeps the sample (it already sits at that timestep).
    const atCorrector = main.clone();
    atCorrector.setBeginIndex(1);
    const t1 = atCorrector.timesteps[1];
    expect(Array.from(atCorrector.step(model(path[0], t1), t1, path[0]).prevSample)).toEqual(Array.from(path[0]));
    // Looked up instead, the repeated timestep would resolve to its second copy: the reason for setBeginIndex.
    const lookedUp = main.clone();
    expect(() => {
      lookedUp.step(model(path[0], t1), t1, path[0]);
      lookedUp.step(model(path[0], t1), t1, path[0]);
    }).toThrow(/expected timestep 701 .*but got 801/);
  });
});
