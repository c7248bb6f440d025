// waitForJob (farm/wait.ts): the finished job, or, past its time, an error that says the job goes on.
import { describe, expect, it } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { cancelJob, submitJob } from '../../farm/jobs.ts';
import { waitForJob } from '../../farm/wait.ts';
import { BACKENDS, CHEAP_BLEND } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('waitForJob on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, {}, (t) => ({ farm } = t));

  it('gives up after its time saying the job itself goes on and how to stop it, then returns a finished job', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'waiter', params: CHEAP_BLEND });
    const late = await waitForJob(farm, job.id, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect((late as Error).message).toBe(`Job ${job.id} is still queued after 50 ms; only the waiting stopped: the job stays queued and is rendered when a worker takes it (cancel it if it is no longer wanted).`);
    await cancelJob(farm, job.id);
    expect(await waitForJob(farm, job.id, { timeoutMs: 50 })).toMatchObject({ id: job.id, status: 'cancelled' });
  });
});
