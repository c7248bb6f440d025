/**
 * Who may act on whose job, through the real discord.js client against the fake Discord with two
 * servers the bot is in, on both database back ends: moderator rights count only in the job's own
 * server (issue 9, item 1), refusals are private from the first response (item 13), and /settings
 * clamps to the operator's ceilings and says so (item 2). Renders are the FakeRenderer's (no
 * engine), so the jobs' states are what the test makes them.
 */
import { ChannelType } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, Permissions, type FakeDiscord, type FakeGuild, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { BACKENDS, GENEROUS_BUDGET } from '../helpers/db.ts';
import { getBudget, getGuildSettings, getJob, listJobs, type FarmContext } from '../../farm/index.ts';

const CEILINGS = { maxRefillGpuSeconds: 3600, minRefillPeriodSeconds: 7200, maxActiveJobs: 10 };
const CALLBACK = 'POST /interactions/:interactionId/:token/callback';
/** A job number that does not exist. */
const NO_SUCH_JOB = 9_999_999;

/**
 * The one answer to a member who names or presses a job they may not act on, the same whether it
 * exists or not: that of a job number that does not exist, with `id` in its place.
 */
let notOneOfYours: (id: number, what: string) => string;

describe.each(BACKENDS)('job rights across servers (%s)', (backend) => {
  let fake: FakeDiscord;
  let home: FakeGuild;
  let elsewhere: FakeGuild;
  let alice: FakeUser;
  let bob: FakeUser;
  let moderator: FakeUser;
  let mallory: FakeUser;
  let homeOwner: FakeUser;
  let running: BotFarm | undefined;
  let farm: FarmContext;
  /** Alice's finished video, and a job of hers that stays queued behind a slow render. */
  let finished: StoredMessage;
  let finishedId: number;
  let queuedId: number;
  let queuedMessage: StoredMessage;

  const isQueued = (m: StoredMessage) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:cancel:'));
  const jobIdOn = (m: StoredMessage, action: string) => Number(buttonsOf(m).find((b) => b.customId?.startsWith(`bf:${action}:`))!.customId!.split(':')[2]);

  function blend(user: FakeUser, from: string, guild = home): InteractionHandle {
    return fake.sendSlashCommand({ commandName: 'blend', user, guildId: guild.id, options: { from, to: 'a city of glass at noon', quality: 'draft', duration: 1 } });
  }

  /** What the bot sent for one interaction: REST calls carrying its token, and the messages it made. */
  function traceOf(handle: InteractionHandle) {
    return {
      calls: fake.requests.filter((r) => r.path.includes(handle.token)).map((r) => `${r.method} ${r.route}`),
      messages: fake.messages(undefined, { includeDeleted: true }).filter((m) => m.interactionId === handle.id),
    };
  }

  /** Waits until the bot has answered an interaction it handles after `handle` (so anything `handle` caused has happened). */
  async function afterBotCaughtUp(user: FakeUser): Promise<void> {
    await fake.sendSlashCommand({ commandName: 'budget', user, guildId: home.id }).waitForOriginal((m) => /GPU-seconds/.test(m.content ?? ''), 10_000);
  }

  beforeAll(async () => {
    running = await startBotFarm({
      guilds: [
        {
          name: 'Blendfarm',
          roles: [{ name: 'Moderators', permissions: Permissions.ManageMessages }, { name: 'Insiders' }],
          channels: [
            'renders',
            // Only Insiders (alice) and the bot (its role is named after it) see #private; the moderators do not.
            { name: 'private', overwrites: [{ role: '@everyone', deny: Permissions.ViewChannel }, { role: 'Insiders', allow: Permissions.ViewChannel }, { role: 'blendfarm-test-bot', allow: Permissions.ViewChannel }] },
          ],
        },
        { name: 'Elsewhere', owner: 'mallory', channels: ['lobby'] },
      ],
      members: [{ username: 'alice', roles: ['Insiders'] }, 'bob', { username: 'moderator', roles: ['Moderators'] }],
      backend,
      config: { budget: GENEROUS_BUDGET, guildCeilings: CEILINGS },
      // Quick renders unless a prompt asks for a slow one ("[fake ms=N]").
      renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } },
      messenger: { editIntervalMs: 100, retryDelayMs: 100 },
    });
    ({ fake, farm } = running);
    ({ alice, bob, moderator } = running.users);
    home = fake.guild('Blendfarm');
    elsewhere = fake.guild('Elsewhere');
    homeOwner = fake.user(home.ownerId);
    mallory = fake.user(elsewhere.ownerId);

    finished = await blend(alice, 'a lighthouse at dusk').waitForOriginal((m) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:')), 30_000);
    finishedId = jobIdOn(finished, 'reroll');
    // One slow render holds the worker, so the next job stays queued.
    await blend(alice, '[fake ms=120000] a very slow render').waitForOriginal(isQueued, 10_000);
    queuedMessage = await blend(alice, 'a secret prompt of alice').waitForOriginal(isQueued, 10_000);
    queuedId = jobIdOn(queuedMessage, 'cancel');
  }, 60_000);

  afterAll(() => stopBotFarm(running ?? {}));

  describe('one answer for a job that does not exist and for one they may not act on', () => {
    beforeAll(async () => {
      // What /cancel and a button say of a job number that has never existed, as the model answer.
      const cancelled = fake.sendSlashCommand({ commandName: 'cancel', user: mallory, guildId: elsewhere.id, options: { job: NO_SUCH_JOB } });
      const cancelText = (await cancelled.waitForOriginal((m) => Boolean(m.content), 10_000)).content;
      const press = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${NO_SUCH_JOB}`, user: bob, replayed: true });
      const rerollText = String((await press.waitForResponse()).data?.content);
      expect(cancelText).toMatch(new RegExp(`^Job #${NO_SUCH_JOB} isn't one you can cancel: it isn't yours, or it no longer exists\\.`));
      expect(rerollText).toMatch(new RegExp(`^Job #${NO_SUCH_JOB} isn't one you can re-roll`));
      const models: Record<string, string> = { cancel: cancelText, 're-roll': rerollText };
      notOneOfYours = (id, what) => {
        const model = models[what] ?? rerollText.replaceAll('re-roll', what);
        return model.replace(`#${NO_SUCH_JOB}`, `#${id}`);
      };
    });

    it('a stranger in the job’s own server gets it for /cancel and the extend form; a button on the job’s own message says whose it is; nothing changes', async () => {
      const run = fake.sendSlashCommand({ commandName: 'cancel', user: bob, guildId: home.id, options: { job: queuedId } });
      expect((await run.waitForOriginal((m) => Boolean(m.content), 10_000)).content).toBe(notOneOfYours(queuedId, 'cancel'));
      // The job is in front of them (its own message): told whose it is, and nothing more about it.
      const press = fake.pressButton({ messageId: queuedMessage.id, customId: `bf:cancel:${queuedId}`, user: bob });
      expect(String((await press.waitForResponse()).data?.content)).toBe('Only the person who asked for this render (or a moderator) can cancel it.');
      // Alice's own Extend form, sent back by Bob.
      const before = (await listJobs(farm, {})).length;
      const extend = fake.pressButton({ messageId: finished.id, customId: `bf:extend:${finishedId}`, user: alice });
      expect((await extend.waitForResponse()).type).toBe(9);
      const form = fake.submitModal({ to: extend, user: bob, values: { prompts: 'a storm over the sea' } });
      const r = await form.waitForResponse();
      expect([r.type, r.ephemeral]).toEqual([4, true]);
      expect(String(r.data?.content)).toBe(notOneOfYours(finishedId, 'extend'));
      await afterBotCaughtUp(bob);
      expect((await getJob(farm, queuedId))?.status).toBe('queued');
      expect((await listJobs(farm, {})).length).toBe(before);
    });
  });

  describe('item 1: moderator rights count only in the job’s own server', () => {
    it('the admin of another server cannot /cancel a stranger’s job, and learns nothing about it', async () => {
      const run = fake.sendSlashCommand({ commandName: 'cancel', user: mallory, guildId: elsewhere.id, options: { job: queuedId } });
      const reply = await run.waitForOriginal((m) => Boolean(m.content), 10_000);
      expect(reply.ephemeral).toBe(true);
      expect(reply.content).toBe(notOneOfYours(queuedId, 'cancel'));
      expect(reply.content).not.toContain(alice.id);
      expect(reply.content).not.toMatch(/secret prompt/);
      expect((await getJob(farm, queuedId))?.status).toBe('queued');
    });

    it('a Re-roll button replayed from another server is refused privately and renders nothing', async () => {
      // Mallory's own message in her server carries her buttons; she replays Alice's custom id on it.
      const own = await blend(mallory, 'a message to press on', elsewhere).waitForOriginal(isQueued, 10_000);
      const before = (await listJobs(farm, {})).length;
      const press = fake.pressButton({ messageId: own.id, customId: `bf:reroll:${finishedId}`, user: mallory, replayed: true });
      const r = await press.waitForResponse();
      expect([r.type, r.ephemeral]).toEqual([4, true]);
      expect(String(r.data?.content)).toBe(notOneOfYours(finishedId, 're-roll'));
      expect(String(r.data?.content)).not.toMatch(/lighthouse/);
      await afterBotCaughtUp(alice);
      expect((await listJobs(farm, {})).length).toBe(before);
      expect(fake.messages(fake.channel('lobby', elsewhere.id).id).some((m) => /lighthouse/.test(m.content))).toBe(false);
    });

    it('a Cancel button replayed from another server is refused too', async () => {
      const own = fake.messages(fake.channel('lobby', elsewhere.id).id).find((m) => m.authorId === fake.bot.id)!;
      const press = fake.pressButton({ messageId: own.id, customId: `bf:cancel:${queuedId}`, user: mallory, replayed: true });
      const r = await press.waitForResponse();
      expect([r.type, r.ephemeral]).toEqual([4, true]);
      expect((await getJob(farm, queuedId))?.status).toBe('queued');
    });

    it('a moderator of the job’s own server still may cancel it, and the job’s message says a moderator did', async () => {
      const handle = blend(alice, 'another queued render');
      const other = await handle.waitForOriginal(isQueued, 10_000);
      const id = jobIdOn(other, 'cancel');
      const run = fake.sendSlashCommand({ commandName: 'cancel', user: moderator, guildId: home.id, options: { job: id } });
      // Not the moderator's budget: its owner's.
      expect((await run.waitForOriginal((m) => Boolean(m.content), 10_000)).content).toMatch(new RegExp(`^Cancelled job #${id}; [\\d.]+ GPU-seconds went back to its owner's budget\\.$`));
      expect((await getJob(farm, id))?.status).toBe('cancelled');
      const final = await handle.waitForOriginal((m) => /Cancelled/.test(m.content ?? ''), 30_000);
      expect(final.content).toMatch(/\nCancelled by a moderator\. Unused GPU-seconds went back to your budget\.$/);
    });
  });

  describe('a moderator has no rights on a job in a channel they cannot see', () => {
    let privateId: number;
    beforeAll(async () => {
      const inPrivate = fake.sendSlashCommand({ commandName: 'blend', user: alice, guildId: home.id, channelId: fake.channel('private', home.id).id, options: { from: 'the private plans of alice', to: 'a city of glass at noon', quality: 'draft', duration: 1 } });
      privateId = jobIdOn(await inPrivate.waitForOriginal(isQueued, 10_000), 'cancel');
    });

    it('a Re-roll replayed in a channel they see renders nothing and says nothing about the job', async () => {
      const before = (await listJobs(farm, {})).length;
      const press = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${privateId}`, user: moderator, replayed: true });
      const r = await press.waitForResponse();
      expect([r.type, r.ephemeral]).toEqual([4, true]);
      expect(String(r.data?.content)).toBe(notOneOfYours(privateId, 're-roll'));
      expect(String(r.data?.content)).not.toContain(alice.id);
      await afterBotCaughtUp(alice);
      expect((await listJobs(farm, {})).length).toBe(before);
      // (Alice's own /budget, privately, lists it.)
      expect(fake.messages(fake.channel('renders', home.id).id).some((m) => !m.ephemeral && /private plans/.test(m.content))).toBe(false);
    });

    it('nor /cancel from another channel', async () => {
      const run = fake.sendSlashCommand({ commandName: 'cancel', user: moderator, guildId: home.id, options: { job: privateId } });
      const reply = await run.waitForOriginal((m) => Boolean(m.content), 10_000);
      expect(reply.content).toBe(notOneOfYours(privateId, 'cancel'));
      expect((await getJob(farm, privateId))?.status).toBe('queued');
    });
  });

  describe('a private thread: a moderator who has not joined it has no rights on a job made there', () => {
    const UNCHECKED = "I couldn't check with Discord just now whether you may act on that job, so nothing was done; try again in a moment.";
    /** A queued job of Alice's in a new private thread of #renders that she and `members` have joined. */
    async function jobInPrivateThread(name: string, members: FakeUser[]): Promise<number> {
      const thread = fake.addThread({ name, parent: 'renders', type: ChannelType.PrivateThread, owner: alice, members }, home.id);
      const made = fake.sendSlashCommand({ commandName: 'blend', user: alice, guildId: home.id, channelId: thread.id, options: { from: `the plans in ${name}`, to: 'a city of glass at noon', quality: 'draft', duration: 1 } });
      return jobIdOn(await made.waitForOriginal(isQueued, 10_000), 'cancel');
    }
    const cancelFromRenders = async (job: number) =>
      (await fake.sendSlashCommand({ commandName: 'cancel', user: moderator, guildId: home.id, options: { job } }).waitForOriginal((m) => Boolean(m.content), 10_000)).content;

    it('not joined: /cancel and a Cancel button from #renders get the one answer, and the job stays', async () => {
      const id = await jobInPrivateThread('secret-plans', []);
      expect(await cancelFromRenders(id)).toBe(notOneOfYours(id, 'cancel'));
      const press = fake.pressButton({ messageId: finished.id, customId: `bf:cancel:${id}`, user: moderator, replayed: true });
      expect(String((await press.waitForResponse()).data?.content)).toBe(notOneOfYours(id, 'cancel'));
      expect((await getJob(farm, id))?.status).toBe('queued');
    });

    it('joined: the moderator may cancel it from #renders', async () => {
      const id = await jobInPrivateThread('shared-plans', [moderator]);
      expect(await cancelFromRenders(id)).toMatch(new RegExp(`^Cancelled job #${id}`));
      expect((await getJob(farm, id))?.status).toBe('cancelled');
    });

    it('when Discord will not say (refused, or too slow), nothing is done and they are told so', async () => {
      const id = await jobInPrivateThread('unchecked-plans', [moderator]);
      fake.failNext({ route: '/channels/:channelId/thread-members/:userId', method: 'GET', status: 403 });
      expect(await cancelFromRenders(id)).toBe(UNCHECKED);
      // Rate limited for 5 s: given up after THREAD_ACCESS_CHECK_MS, in time for a button's 3 s.
      fake.failNext({ route: '/channels/:channelId/thread-members/:userId', method: 'GET', status: 429, retryAfter: 5 });
      const press = fake.pressButton({ messageId: finished.id, customId: `bf:cancel:${id}`, user: moderator, replayed: true });
      const r = await press.waitForResponse(6000);
      expect(r.latencyMs).toBeLessThan(3000);
      expect([r.type, r.ephemeral, String(r.data?.content)]).toEqual([4, true, UNCHECKED]);
      expect((await getJob(farm, id))?.status).toBe('queued');
    });
  });

  describe('item 13: a stranger’s press is refused privately from the first response', () => {
    for (const action of ['reroll', 'upscale', 'extend'] as const) {
      it(`${action}: one ephemeral reply, no public message created, edited or deleted`, async () => {
        const before = (await listJobs(farm, {})).length;
        const revisions = fake.message(finished.id)!.revisions.length;
        const press = fake.pressButton({ messageId: finished.id, customId: `bf:${action}:${finishedId}`, user: bob });
        const r = await press.waitForResponse();
        expect([r.type, r.ephemeral]).toEqual([4, true]);
        expect(String(r.data?.content)).toBe(`Only the person who made this video (or a moderator) can ${action === 'reroll' ? 're-roll' : action} it; make your own with /blend, /movie or /vary.`);
        await afterBotCaughtUp(bob);
        const trace = traceOf(press);
        expect(trace.calls).toEqual([CALLBACK]);
        expect(trace.messages.map((m) => [m.ephemeral, m.deleted])).toEqual([[true, false]]);
        expect(fake.message(finished.id)!.revisions.length).toBe(revisions);
        expect((await listJobs(farm, {})).length).toBe(before);
      });
    }

    it('cancel: the same for the Cancel button on a queued job', async () => {
      const revisions = fake.message(queuedMessage.id)!.revisions.length;
      const press = fake.pressButton({ messageId: queuedMessage.id, customId: `bf:cancel:${queuedId}`, user: bob });
      const r = await press.waitForResponse();
      expect([r.type, r.ephemeral]).toEqual([4, true]);
      await afterBotCaughtUp(bob);
      expect(traceOf(press).calls).toEqual([CALLBACK]);
      expect(fake.message(queuedMessage.id)!.revisions.length).toBe(revisions);
      expect((await getJob(farm, queuedId))?.status).toBe('queued');
    });
  });

  describe('item 2: /settings clamps to the operator’s ceilings and says so', () => {
    it('a refill of 10,000,000 GPU-seconds and a period of one hour are clamped, and a member gets the ceiling', async () => {
      const set = fake.sendSlashCommand({ commandName: 'settings', user: homeOwner, guildId: home.id, subcommand: 'set', options: { refill: 10_000_000, 'period-hours': 1, 'max-jobs': 1000 } });
      const reply = await set.waitForOriginal((m) => /Refill/.test(m.content ?? ''), 10_000);
      expect(reply.ephemeral).toBe(true);
      expect(reply.content).toMatch(/you asked for 10000000 GPU-seconds; clamped to the farm's ceiling of \*\*3600 GPU-seconds\*\*/);
      expect(reply.content).toMatch(/you asked for 60m; clamped to the farm's shortest period of \*\*2h\*\*/);
      expect(reply.content).toMatch(/Job limit: you asked for 1000; clamped to the farm's ceiling of \*\*10\*\*/);
      expect(await getGuildSettings(farm, home.id)).toMatchObject({ refillGpuSeconds: 3600, refillPeriodSeconds: 7200, maxActiveJobs: 10 });
      const newcomer = fake.createUser({ username: 'newcomer' });
      fake.addMember(newcomer, { guildId: home.id });
      // A read applies no refill: the newcomer's first request here tops up to the ceiling.
      expect(await getBudget(farm, newcomer.id, { guildId: home.id, roleIds: [] }, 0)).toMatchObject({ balanceGpuSeconds: 0, refillDue: true, refillGpuSeconds: 3600, maxActiveJobs: 10 });
    });

    it('role overrides are clamped the same way', async () => {
      const role = fake.addRole('Patrons', 0n, home.id);
      const set = fake.sendSlashCommand({ commandName: 'settings', user: homeOwner, guildId: home.id, subcommand: 'role', options: { role: role.id, refill: 9_999_999, 'max-jobs': 500 } });
      const reply = await set.waitForOriginal((m) => /Refill/.test(m.content ?? ''), 10_000);
      expect(reply.content).toMatch(new RegExp(`Refill for <@&${role.id}>: you asked for 9999999 GPU-seconds; clamped to the farm's ceiling of \\*\\*3600 GPU-seconds\\*\\*`));
      expect(reply.content).toMatch(new RegExp(`Job limit for <@&${role.id}>: you asked for 500; clamped`));
      expect((await getGuildSettings(farm, home.id)).roleOverrides[role.id]).toEqual({ refillGpuSeconds: 3600, maxActiveJobs: 10 });
    });

    it('values within the ceilings are stored as asked, with no warning', async () => {
      const set = fake.sendSlashCommand({ commandName: 'settings', user: homeOwner, guildId: home.id, subcommand: 'set', options: { refill: 1200, 'period-hours': 24, 'max-jobs': 4 } });
      const reply = await set.waitForOriginal((m) => /Refill/.test(m.content ?? ''), 10_000);
      expect(reply.content).not.toMatch(/clamped/);
      expect(await getGuildSettings(farm, home.id)).toMatchObject({ refillGpuSeconds: 1200, refillPeriodSeconds: 86_400, maxActiveJobs: 4 });
    });
  });
});
