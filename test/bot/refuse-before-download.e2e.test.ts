/**
 * A command with pictures that the farm would refuse whatever the pictures are (no budget left, too
 * many active jobs, no worker online) is refused before the bot downloads them: the member gets
 * the refusal they always got (the public "thinking…" replaced, the reason sent privately), and
 * the fake Discord's CDN sees no request for the attachment. The real discord.js client against
 * the fake Discord, a real farm on PGlite, fake renders.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeDiscord, FakeUser, InteractionHandle } from '../fake-discord/index.ts';
import { type BotFarm, downloadsOf, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { countRows } from '../helpers/db.ts';
import { cancelJob, grantBudget, listJobs, startLocalWorkers, type FarmContext, type FarmDb } from '../../farm/index.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';

const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));
let running: BotFarm | undefined;
let fake: FakeDiscord;
let alice: FakeUser;
let db: FarmDb;
let farm: FarmContext;

const vary = () => fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: { filename: 'picture.png', bytes: PHOTO, contentType: 'image/png' }, frames: 2, quality: 'draft' } });

/** Refused as every refusal after the deferral is, with `reason`; nothing downloaded, nothing queued. */
async function refusedBeforeDownload(handle: InteractionHandle, reason: RegExp): Promise<void> {
  const jobsBefore = await countRows(db, 'jobs');
  expect(await handle.waitForResponse()).toMatchObject({ type: 5, ephemeral: false });
  const placeholder = await handle.waitForOriginal((m) => m.deleted, 10_000);
  expect(fake.edits(placeholder).map((r) => r.content)).toEqual(['This render could not start; the reason was sent to you privately.']);
  const [private_] = handle.followUps();
  expect(private_.ephemeral).toBe(true);
  expect(private_.content).toMatch(reason);
  // The command did carry its picture: none of it was fetched.
  expect(Object.keys((handle.payload.data as { resolved?: { attachments?: object } }).resolved?.attachments ?? {})).toHaveLength(1);
  expect(downloadsOf(fake, handle)).toEqual([]);
  expect(await countRows(db, 'jobs')).toBe(jobsBefore);
}

beforeAll(async () => {
  // No allowance: a member has only what an operator grants. One active job at a time.
  running = await startBotFarm({ members: ['alice'], config: { budget: { refillGpuSeconds: 0, refillPeriodSeconds: 86_400, maxActiveJobs: 1 } } });
  ({ fake, db, farm } = running);
  alice = running.users.alice;
});

afterAll(() => stopBotFarm(running ?? {}));

describe('refusals that need no picture come before its download', () => {
  it('no budget left: the budget refusal with its numbers, privately; the CDN saw no request for the picture', async () => {
    await refusedBeforeDownload(vary(), /^This job needs about [\d.]+ GPU-seconds but you have 0 GPU-seconds left; your budget tops up to 0 GPU-seconds <t:\d+:R> \(<t:\d+:f>\); or ask for a smaller, shorter or lower-quality render\.$/);
  }, 30_000);

  it('with budget granted the same command downloads the picture once and renders it', async () => {
    await grantBudget(farm, alice.id, 10_000, 'test');
    const handle = vary();
    await handle.waitForOriginal(hasVideo, 30_000);
    expect(downloadsOf(fake, handle).map((d) => d.status)).toEqual([200]);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.status]).toEqual(['vary', 'done']);
  }, 30_000);

  it('too many active jobs: that refusal, and no download', async () => {
    const slow = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: '[fake ms=5000] a slow one', to: 'b' } });
    await slow.waitForOriginal((m) => /queued|running|rendering/i.test(m.content ?? ''), 10_000);
    const [active] = await listJobs(farm, { order: 'newest', limit: 1 });
    try {
      await refusedBeforeDownload(vary(), /already have 1 job queued or running \(the limit is 1\)/);
    } finally {
      await cancelJob(farm, active.id);
    }
  }, 30_000);

  it('no worker online: that refusal, and no download', async () => {
    await running!.workers.stop('release');
    try {
      await refusedBeforeDownload(vary(), /No render worker is online/);
    } finally {
      running!.workers = await startLocalWorkers(farm, { renderer: () => new FakeRenderer({}), log: () => {} });
    }
  }, 30_000);
});
