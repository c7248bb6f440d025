// A loaded renderer with its model's readiness (watchRenderer): farm workers on it — `npm run
// worker`'s, and the local workers `npm start` and `farm submit --wait` run in their own process
// on the embedded database (startLocalWorkers) — claim no job on a model that does not load while
// it does not (Renderer.unavailableModels), and keep rendering the worker's other models.
import { describe, expect, it } from 'vitest';
import { FAKE_RENDERER_MODULE, watchRenderer } from '../../../apps/worker/load-renderer.ts';
import { ModelReadiness } from '../../../apps/worker/model-readiness.ts';
import type { FarmContext } from '../../../farm/config.ts';
import { FakeRenderer } from '../../../farm/fake-renderer.ts';
import { getJob, submitJob } from '../../../farm/jobs.ts';
import { startLocalWorkers } from '../../../farm/local.ts';
import { waitForJob } from '../../../farm/wait.ts';
import { CHEAP_BLEND, GENEROUS_BUDGET } from '../../helpers/db.ts';
import { useTestFarm } from '../../helpers/farm.ts';
import { until } from '../../helpers/until.ts';

describe('local workers on a watched renderer (pglite, as npm start runs them)', () => {
  let farm: FarmContext;
  useTestFarm('pglite', { budget: GENEROUS_BUDGET }, (t) => ({ farm } = t));

  it('claim no job on the model that does not load, and render the other models', async () => {
    const lines: string[] = [];
    // The next try is far off: the model stays down for the whole test.
    const readiness = new ModelReadiness({ log: (_level, line) => lines.push(line), retry: { firstMs: 600_000, maxMs: 600_000 } });
    const loaded = new FakeRenderer({ models: ['broken', 'other'], warmUpFailures: 1_000, stepMs: 1 });
    const watched = watchRenderer({ module: FAKE_RENDERER_MODULE, options: {}, threads: 1 }, loaded, readiness);
    expect(watched.renderer.unavailableModels!()).toEqual([]);
    watched.start();
    await until(() => watched.renderer.unavailableModels!().includes('broken'), 10_000, 'the failed warm-up');
    expect(lines[0]).toMatch(/^the model did not load \(try 1\): fake model load failure/);
    expect(readiness.check()).toMatch(/^the model did not load/);

    // Queued first, so a worker that could claim it would take it before the other one.
    const stuck = await submitJob(farm, { kind: 'blend', userId: 'u', params: { ...CHEAP_BLEND, model: 'broken' } });
    const local = await startLocalWorkers(farm, { renderer: watched.renderer, idPrefix: 'local-watched', log: () => {} });
    try {
      const other = await submitJob(farm, { kind: 'blend', userId: 'u', params: { ...CHEAP_BLEND, model: 'other' } });
      expect((await waitForJob(farm, other.id, { timeoutMs: 20_000 })).status).toBe('done');
      expect((await getJob(farm, stuck.id))?.status).toBe('queued');
    } finally {
      readiness.stop();
      await local.stop('release');
    }
  });
});
