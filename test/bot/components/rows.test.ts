// bot/components/rows.ts: a finished job's message offers only the follow-ups the farm would take
// for it (followUpsFor): a /vary result gets Re-roll only, an upscale no second Upscale (its
// Re-roll and Extend act on the video it upscaled), a movie with the most prompts a movie may have
// no Extend.
import { ComponentType } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { cancelRow, finishedRow } from '../../../bot/components/rows.ts';
import { parseButtonId } from '../../../bot/components/custom-id.ts';
import { LIMITS, type Job } from '../../../farm/index.ts';

const PARAMS = { prompts: ['a cat', 'a dog'], negativePrompt: '', seeds: [42, 43], durationSeconds: 1, fps: 12, width: 512, height: 512, steps: 4, maxBranches: 8, depthStrength: 0.5, model: 'demo', format: 'mp4' } as Job['params'];

function buttons(job: Pick<Job, 'id' | 'kind' | 'params' | 'parentJobId'>): Array<{ label?: string; action?: string; jobId?: number }> | undefined {
  const row = finishedRow(job)?.toJSON();
  if (!row) return undefined;
  return row.components.map((c) => {
    expect(c.type).toBe(ComponentType.Button);
    const id = 'custom_id' in c ? parseButtonId(c.custom_id) : null;
    return { label: 'label' in c ? c.label : undefined, action: id?.action, jobId: id?.jobId };
  });
}

describe('finishedRow', () => {
  it('offers Upscale, Re-roll and Extend on a blend', () => {
    expect(buttons({ id: 7, kind: 'blend', params: PARAMS, parentJobId: null })).toEqual([
      { label: 'Upscale', action: 'upscale', jobId: 7 },
      { label: 'Re-roll', action: 'reroll', jobId: 7 },
      { label: 'Extend', action: 'extend', jobId: 7 },
    ]);
  });

  it('offers only Re-roll on a variation animation (/vary), which the farm will not upscale or extend', () => {
    const vary = { id: 8, kind: 'vary' as const, params: { ...PARAMS, variation: { variations: 4, intermediate: 2, noiseShift: 0.1 } }, parentJobId: null };
    expect(buttons(vary)).toEqual([{ label: 'Re-roll', action: 'reroll', jobId: 8 }]);
  });

  it('offers no second Upscale on an upscale', () => {
    expect(buttons({ id: 9, kind: 'upscale', params: { ...PARAMS, upscaleFactor: 4 }, parentJobId: 7 })?.map((b) => b.action)).toEqual(['reroll', 'extend']);
  });

  it('offers Extend on a movie that starts at a picture too (the extension is handed the picture)', () => {
    const fromPicture = { id: 10, kind: 'movie' as const, params: { ...PARAMS, images: [{ index: 0, strength: 0.8 }] } as Job['params'], parentJobId: null };
    expect(buttons(fromPicture)?.map((b) => b.action)).toEqual(['upscale', 'reroll', 'extend']);
  });

  it(`offers no Extend on a movie with ${LIMITS.prompts.max} prompts (the most), also when an extension brought it there`, () => {
    const prompts = (n: number) => Array.from({ length: n }, (_, i) => `prompt ${i + 1}`);
    const seeds = (n: number) => Array.from({ length: n }, (_, i) => i);
    const full = { id: 12, kind: 'movie' as const, params: { ...PARAMS, prompts: prompts(LIMITS.prompts.max), seeds: seeds(LIMITS.prompts.max) }, parentJobId: null };
    expect(buttons(full)?.map((b) => b.action)).toEqual(['upscale', 'reroll']);
    // One short of the most: Extend is offered.
    const almost = { ...full, id: 13, params: { ...full.params, prompts: prompts(LIMITS.prompts.max - 1), seeds: seeds(LIMITS.prompts.max - 1) } };
    expect(buttons(almost)?.map((b) => b.action)).toEqual(['upscale', 'reroll', 'extend']);
    // An extension is posted with its whole movie's prompts (withWholeMovie), not its own one.
    const extension = { id: 14, kind: 'extend' as const, params: { ...full.params }, parentJobId: 13 };
    expect(buttons(extension)?.map((b) => b.action)).toEqual(['upscale', 'reroll']);
    // Its upscale lists the whole movie too.
    expect(buttons({ id: 15, kind: 'upscale', params: { ...full.params, upscaleFactor: 2 }, parentJobId: 14 })?.map((b) => b.action)).toEqual(['reroll']);
  });

  it('keeps Cancel on queued jobs', () => {
    const [cancel] = cancelRow(11).toJSON().components;
    expect('custom_id' in cancel && parseButtonId(cancel.custom_id)).toEqual({ action: 'cancel', jobId: 11 });
  });
});
