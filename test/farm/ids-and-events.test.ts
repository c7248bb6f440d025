// One job must not stop the queue (issue 9, item 3): ids are checked at the API (farm/ids.ts),
// and NOTIFY payloads carry ids only, so no field of a job can push one over Postgres' 8000-byte
// limit (which would fail the claim, the cancel, every transaction that publishes).
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { JOB_EVENTS_CHANNEL, MAX_EVENT_PAYLOAD_BYTES, parseJobEvent } from '../../farm/events.ts';
import { checkId, InvalidIdError, MAX_ID_LENGTH } from '../../farm/ids.ts';
import { cancelJob, getJob, submitJob } from '../../farm/jobs.ts';
import { grantBudget } from '../../farm/index.ts';
import { claimJob, failAttempt, reportProgress } from '../../farm/queue.ts';
import type { ClaimedJob } from '../../farm/types.ts';
import { BACKENDS, CHEAP_BLEND, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe('ids', () => {
  it('accepts Discord snowflakes and CLI names, refuses long or odd ids with a clear message', () => {
    for (const ok of ['123456789012345678', '12345678901234567890', 'me', 'web:alice', 'bench-user-3', 'a.b_c']) expect(checkId('user id', ok)).toBe(ok);
    const long = '1'.repeat(7852);
    expect(() => checkId('user id', long)).toThrow(InvalidIdError);
    expect(() => checkId('user id', long)).toThrow(`The user id is 7852 characters long; ids have at most ${MAX_ID_LENGTH}`);
    expect(() => checkId('guild id', 'a b')).toThrow(/guild id "a b" has characters ids may not have; use letters, digits and _ \. : - only/);
    expect(() => checkId('user id', '')).toThrow(/user id is missing/);
  });
});

describe.each(BACKENDS)('job events on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  const payloads: string[] = [];

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, async (t) => {
    ({ db, farm } = t);
    await db.listen(JOB_EVENTS_CHANNEL, (payload) => payloads.push(payload));
  });

  it('refuses a 7,852-character user id before it reaches the database', async () => {
    const long = 'u'.repeat(7852);
    const refused = await submitJob(farm, { kind: 'blend', userId: long, params: CHEAP_BLEND }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidIdError);
    expect(refused).toMatchObject({ code: 'invalid_params', message: expect.stringContaining('7852 characters long') });
    await expect(submitJob(farm, { kind: 'blend', userId: 'ok', guildId: 'g'.repeat(65), params: CHEAP_BLEND })).rejects.toThrow(/guild id is 65 characters long/);
    await expect(submitJob(farm, { kind: 'blend', userId: 'ok', roleIds: ['r\n1'], params: CHEAP_BLEND })).rejects.toThrow(/role id/);
    await expect(grantBudget(farm, long, 10)).rejects.toThrow(InvalidIdError);
  });

  it('publishes tiny payloads however big the job is, and the queue keeps working', async () => {
    // The largest job a user can ask for: 16 prompts of 500 characters, the longest allowed ids.
    const prompts = Array.from({ length: 16 }, (_, i) => `${i} ${'x'.repeat(497)}`);
    const userId = 'u'.repeat(MAX_ID_LENGTH);
    const job = await submitJob(farm, { kind: 'movie', userId, guildId: 'g'.repeat(MAX_ID_LENGTH), channelId: 'c'.repeat(MAX_ID_LENGTH), params: { ...CHEAP_BLEND, prompts } });
    const claimed = (await claimJob(farm, 'w'.repeat(MAX_ID_LENGTH), { models: ['*'], maxPixels: 1e7, executionProvider: 'test' })) as ClaimedJob;
    expect(claimed.id).toBe(job.id);
    const huge = { stage: 's'.repeat(20_000), fraction: 0.5, message: 'm'.repeat(20_000) };
    expect(await reportProgress(farm, claimed, huge)).toBe(true);
    // Readers fetch the row for everything but the ids.
    expect((await getJob(farm, job.id))?.progress).toMatchObject({ fraction: 0.5 });
    await failAttempt(farm, claimed, 'e'.repeat(50_000));
    const second = await submitJob(farm, { kind: 'blend', userId, params: CHEAP_BLEND });
    expect((await cancelJob(farm, second.id, 'r'.repeat(50_000))).cancelled).toBe(true);

    for (let i = 0; i < 100 && payloads.filter((p) => parseJobEvent(p)?.jobId === second.id).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const mine = payloads.map((p) => ({ p, e: parseJobEvent(p) })).filter(({ e }) => e && (e.jobId === job.id || e.jobId === second.id));
    expect(mine.map(({ e }) => e!.type)).toEqual(expect.arrayContaining(['queued', 'claimed', 'progress', 'retrying', 'cancelled']));
    for (const { p, e } of mine) {
      expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MAX_EVENT_PAYLOAD_BYTES);
      expect(Object.keys(e!).sort()).toEqual(['at', 'attempt', 'jobId', 'status', 'type']);
    }
  });
});
