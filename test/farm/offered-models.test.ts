// The models online workers offer (offeredModels), as the bot's `model` autocomplete lists them:
// each id once, what it can do on any of its workers, how many online workers have it (busy or
// not) and on which kind of device; stopped and silent workers, and a test double's "*", are left
// out. A server's default model is checked like a job's model id.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { getGuildSettings, updateGuildSettings } from '../../farm/guilds.ts';
import { JobParamsError, modelIdIssue } from '../../farm/job-params.ts';
import { markWorkerStopped, offeredModels, registerWorker } from '../../farm/worker-registry.ts';
import type { WorkerCapabilities } from '../../farm/types.ts';
import { BACKENDS } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const caps = (executionProvider: string, modelAbilities: WorkerCapabilities['modelAbilities'], models = Object.keys(modelAbilities ?? {})): WorkerCapabilities => ({
  models,
  modelAbilities,
  maxPixels: 1 << 22,
  executionProvider,
});

describe.each(BACKENDS)('offered models on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, {}, (t) => ({ farm } = t));

  it('lists each model online workers offer once, with its abilities, worker count and devices', async () => {
    expect(await offeredModels(farm)).toEqual([]);
    await registerWorker(farm, { id: 'gpu-1', host: 'h', pid: 1, concurrency: 1, capabilities: caps('cuda', { 'sdxl-turbo': ['text'], demo: ['text', 'picture'] }) });
    await registerWorker(farm, { id: 'gpu-2', host: 'h', pid: 2, concurrency: 1, capabilities: caps('cuda', { 'sdxl-turbo': ['text', 'picture'] }) });
    // An older worker without modelAbilities: its model does text only.
    await registerWorker(farm, { id: 'cpu-1', host: 'h', pid: 3, concurrency: 1, capabilities: caps('cpu', undefined, ['demo', 'inpaint']) });
    // A test double's "any model" names none.
    await registerWorker(farm, { id: 'any', host: 'h', pid: 4, concurrency: 1, capabilities: caps('test', undefined, ['*']) });
    // Stopped, and silent past the lease: not online, not counted.
    await registerWorker(farm, { id: 'stopped', host: 'h', pid: 5, concurrency: 1, capabilities: caps('cuda', { gone: ['text'] }) });
    await markWorkerStopped(farm, 'stopped');
    await registerWorker(farm, { id: 'silent', host: 'h', pid: 6, concurrency: 1, capabilities: caps('cuda', { quiet: ['text'], demo: ['inpaint'] }) });
    await farm.db.db.execute(sql`update workers set heartbeat_at = now() - interval '1 hour' where id = 'silent'`);
    // A busy worker counts like an idle one.
    await farm.db.db.execute(sql`insert into users (id) values ('u') on conflict do nothing`);
    await farm.db.db.execute(sql`insert into jobs (kind, user_id, params, model, pixels, status, worker_id) values ('blend', 'u', '{"prompts": ["a", "b"]}'::jsonb, 'sdxl-turbo', 4096, 'running', 'gpu-2')`);

    expect(await offeredModels(farm)).toEqual([
      { id: 'demo', abilities: ['text', 'picture'], workers: 2, devices: { GPU: 1, CPU: 1, other: 0 } },
      { id: 'inpaint', abilities: ['text'], workers: 1, devices: { GPU: 0, CPU: 1, other: 0 } },
      { id: 'sdxl-turbo', abilities: ['text', 'picture'], workers: 2, devices: { GPU: 2, CPU: 0, other: 0 } },
    ]);
  });

  it('stores a server default model checked like a job model id', async () => {
    await updateGuildSettings(farm, 'g-model', { defaults: { model: 'sdxl-turbo', quality: 'draft' } });
    expect((await getGuildSettings(farm, 'g-model')).defaults).toEqual({ model: 'sdxl-turbo', quality: 'draft' });
    expect(modelIdIssue('sdxl turbo')).toBe('model must be a model id of 1 to 100 letters, digits, ".", "_" or "-" (got "sdxl turbo")');
    await expect(updateGuildSettings(farm, 'g-model', { defaults: { model: 'sdxl turbo' } })).rejects.toThrow(JobParamsError);
    expect((await getGuildSettings(farm, 'g-model')).defaults.model).toBe('sdxl-turbo');
  });
});
