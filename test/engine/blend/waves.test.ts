/**
 * Batched stages place every branch by a measured gap (a fidelity review against the reference):
 * a stage's branches go in waves, each splitting the largest measured gaps and measuring the new
 * neighbours before the next wave. Before, all of a stage's stems were chosen up front by halving
 * estimates, so the first stage always went 0.5, 0.25, 0.75, 0.125 whatever the images showed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StableDiffusionPipeline } from '../../../engine/index.ts';
import { chooseWave, LatentBlender } from '../../../engine/blend/transition.ts';
import type { PerceptualMetric } from '../../../engine/blend/perceptual.ts';
import type { RawImage } from '../../../engine/image.ts';
import { testModelDir } from '../../../models/paths.ts';

const PROMPTS = { promptA: 'a red sunset over the sea', promptB: 'a green forest in spring' };

/**
 * A deterministic stand-in metric whose change concentrates near end B: a frame's position is its
 * projection onto the line from the first measured pair (the two keyframes, A then B), and the gap
 * between two frames is the difference of position^4. On the demo model a frame's position grows
 * with its fraction, so gaps near B are far larger than gaps near A, and all gaps are distinct.
 */
class NearEndMetric implements PerceptualMetric {
  readonly name = 'near-end stand-in';
  private ends?: [RawImage, RawImage];
  async distance(a: RawImage, b: RawImage): Promise<number> {
    this.ends ??= [a, b];
    return Math.abs(this.position(a) ** 4 - this.position(b) ** 4);
  }
  position(x: RawImage): number {
    const [a, b] = this.ends!;
    let num = 0;
    let den = 0;
    for (let i = 0; i < x.data.length; i++) {
      const d = b.data[i] - a.data[i];
      num += (x.data[i] - a.data[i]) * d;
      den += d * d;
    }
    return Math.max(0, num / den);
  }
}

let pipe: StableDiffusionPipeline;
beforeAll(async () => {
  pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
});
afterAll(async () => {
  await pipe?.release();
});

describe('chooseWave', () => {
  it('splits the largest measured gaps at their midpoints, one branch per gap, largest first', () => {
    const fr = [0, 0.25, 0.5, 1];
    expect(chooseWave(fr, [0.3, 0.5, 0.4], 2)).toEqual([
      { fract: 0.375, splitGap: 0.5, largestGap: 0.5 },
      { fract: 0.75, splitGap: 0.4, largestGap: 0.5 },
    ]);
    // w = 1 is the reference's choice; a wave never splits one gap twice.
    expect(chooseWave(fr, [0.3, 0.5, 0.4], 1).map((c) => c.fract)).toEqual([0.375]);
    expect(chooseWave(fr, [0.3, 0.5, 0.4], 10).map((c) => c.fract)).toEqual([0.375, 0.75, 0.125]);
    // Ties: leftmost first, as the one-at-a-time loop's argmax.
    expect(chooseWave(fr, [0.4, 0.4, 0.4], 2).map((c) => c.fract)).toEqual([0.125, 0.375]);
  });

  it('leaves a gap under half the largest to the next wave: the reference would split a half of the largest first', () => {
    expect(chooseWave([0, 0.5, 1], [0.04, 0.96], 2).map((c) => c.fract)).toEqual([0.75]);
    expect(chooseWave([0, 0.5, 1], [0.5, 0.96], 2).map((c) => c.fract)).toEqual([0.75, 0.25]);
  });
});

describe('batched stages place branches by measured gaps', () => {
  it('where change concentrates near one end, batched builds the sequential tree (same fractions, parents, images) in fewer UNet calls', async () => {
    const opts = { ...PROMPTS, seedA: 1, seedB: 2, width: 128, height: 128, maxBranches: 13 };
    const seqMetric = new NearEndMetric();
    const batMetric = new NearEndMetric();
    const seq = await new LatentBlender(pipe, seqMetric).transition({ ...opts, order: 'sequential' });
    const bat = await new LatentBlender(pipe, batMetric).transition({ ...opts, order: 'batched' });
    expect(seq.stages).toEqual([{ idx: 6, stems: 4 }, { idx: 8, stems: 4 }, { idx: 10, stems: 3 }]);
    // Positions grow with the fraction, so the largest gaps are near B.
    const pos = seq.frames.map((f) => seqMetric.position(f.image));
    for (let i = 1; i < pos.length; i++) expect(pos[i]).toBeGreaterThan(pos[i - 1]);
    // All measured gaps distinct: the case where the two orders must coincide.
    expect(new Set(seq.gaps).size).toBe(seq.gaps.length);

    // The first stage follows the measured gaps towards B (old batched: 0.5, 0.25, 0.75, 0.125).
    const firstStage = bat.history.filter((h) => h.injIdx === 6).map((h) => h.fract);
    expect(firstStage).toEqual([0.5, 0.75, 0.875, 0.9375]);
    expect(bat.history.map((h) => [h.fract, h.injIdx, h.parents])).toEqual(seq.history.map((h) => [h.fract, h.injIdx, h.parents]));
    bat.frames.forEach((f, i) => expect(Buffer.from(f.image.data).equals(Buffer.from(seq.frames[i].image.data))).toBe(true));
    expect(bat.maxGap).toBe(seq.maxGap);
    for (const h of bat.history) {
      expect(h.splitGap).toBeGreaterThanOrEqual(h.largestGap / 2);
      expect(h.splitGap).toBeLessThanOrEqual(h.largestGap);
    }
    // Sequential: every branch is its own wave; batched: the first stage needs one wave per branch
    // here (each half of the largest gap beats the small gaps), later ones batch several.
    expect(seq.history.map((h) => h.wave)).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3]);
    expect(bat.history.filter((h) => h.injIdx === 6).map((h) => h.wave)).toEqual([1, 2, 3, 4]);
    // Later stages still batch several branches per UNet call.
    expect(bat.unetCalls).toBeLessThan(seq.unetCalls);
  });

  it('where gaps are about even, a wave takes several gaps at once: the first stage goes 1, then 2, and UNet calls carry several branches', async () => {
    const calls: number[] = [];
    const { unet } = pipe;
    const predict = unet.predict.bind(unet);
    const r = await (async () => {
      unet.predict = (req) => (calls.push(req.count), predict(req));
      try {
        return await new LatentBlender(pipe).transition({ ...PROMPTS, seedA: 3, seedB: 4, width: 128, height: 128, maxBranches: 13, order: 'batched' });
      } finally {
        unet.predict = predict;
      }
    })();
    expect(r.history.slice(0, 3).map((h) => h.fract).sort()).toEqual([0.25, 0.5, 0.75]);
    expect(Math.max(...calls)).toBeGreaterThan(2);
    for (const h of r.history) expect(h.splitGap).toBeGreaterThanOrEqual(h.largestGap / 2);
  });
});
