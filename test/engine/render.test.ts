/**
 * renderVideo's result carries the pipeline's load-time warnings (pipe.warnings) as well as the
 * prompts', as generate's does: a worker forwards out.warnings to the user.
 */
import { describe, expect, it } from 'vitest';
import { StableDiffusionPipeline, renderVideo, type RenderRequest } from '../../engine/index.ts';
import { testModelDir } from '../../models/paths.ts';

describe('renderVideo warnings', () => {
  it('an SDXL export without hidden_states.N says so on the movie too (it was: only generate said it)', async () => {
    const pipe = await StableDiffusionPipeline.load(testModelDir('xl-nohidden'));
    try {
      expect(pipe.warnings.length).toBeGreaterThan(0);
      const req: RenderRequest = { prompts: ['a red house', 'a blue boat'], seeds: [1, 2], steps: 2, width: 64, height: 64, maxBranches: 2, duration: 0.5, fps: 4 };
      const out = await renderVideo(pipe, req);
      expect(out.warnings).toEqual(pipe.warnings);
      expect(out.warnings.join('\n')).toMatch(/has no hidden_states\.N outputs/);
    } finally {
      await pipe.release();
    }
  }, 60_000);
});
