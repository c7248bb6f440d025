/**
 * A job that renders before its command's "queued" reply is shown: the real discord.js client
 * against the fake Discord, the farm on a real Postgres, quick fake renders. The reply's database
 * steps wait behind other members' submissions (SubmissionQueue, two at a time), which this test
 * holds on their budget rows, so the render finishes first. The video must end up in the message,
 * not be overwritten by the late "queued" text.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeUser, type InteractionHandle } from '../fake-discord/index.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { getJob, listJobs, type FarmContext } from '../../farm/index.ts';

let running: BotFarm | undefined;
let fake: FakeDiscord;
let farm: FarmContext;
let users: Record<string, FakeUser>;

const until = async (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const blend = (user: FakeUser, from: string): InteractionHandle => fake.sendSlashCommand({ commandName: 'blend', user, options: { from, to: 'a calm sea', quality: 'draft', duration: 1 } });

beforeAll(async () => {
  running = await startBotFarm({ backend: 'postgres', members: ['alice', 'bob', 'carol'], renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } } });
  ({ fake, farm, users } = running);
  // Bob and Carol have budget rows (their first job), so the test can hold them.
  for (const name of ['bob', 'carol']) await blend(users[name], `first of ${name}`).waitForOriginal(hasVideo, 20_000);
}, 60_000);

afterAll(() => stopBotFarm(running ?? {}));

describe('a render quicker than its queued reply', () => {
  it('the video stays in the message: the late "queued" text does not replace it', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const held = new Promise<void>((r) => (locked = r));
    // Bob's and Carol's budget rows held: their submissions wait in both of the queue's places.
    const holder = running!.db.db.transaction(async (tx) => {
      await tx.execute(sql`select id from users where id in (${users.bob.id}, ${users.carol.id}) for update`);
      locked();
      await released;
    });
    await held;
    try {
      // Alice's submission first; Bob's and Carol's take the queue's places before her reply's steps.
      const run = blend(users.alice, 'a quick heron');
      await run.waitForResponse();
      const waiting = [blend(users.bob, 'held one'), blend(users.carol, 'held two')];
      await until(async () => (await listJobs(farm, { userId: users.alice.id })).length > 0, 10_000, "alice's job submitted");
      const [job] = await listJobs(farm, { userId: users.alice.id });
      await until(async () => (await getJob(farm, job.id))!.status === 'done', 10_000, "alice's render done");
      // Time for a delivery to happen while the reply waits.
      await new Promise((r) => setTimeout(r, 700));
      release();
      await holder;
      await Promise.all(waiting.map((w) => w.waitForOriginal((m) => Boolean(m.content), 10_000)));
      const done = await run.waitForOriginal(hasVideo, 20_000);
      expect(done.content).toContain(`#${job.id}:`);
      await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 10_000, 'delivered');
      // Whatever was still on its way has landed by now.
      await new Promise((r) => setTimeout(r, 700));
      const final = run.original()!;
      expect(hasVideo(final)).toBe(true);
      expect(buttonsOf(final).map((b) => b.customId?.split(':')[1])).toEqual(['upscale', 'reroll', 'extend']);
    } finally {
      release();
      await holder.catch(() => undefined);
    }
  });
});
