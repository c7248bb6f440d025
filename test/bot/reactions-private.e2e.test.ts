/**
 * 🔍 / 🔁 reactions follow the buttons' rules, through the real discord.js client against the fake
 * Discord (a farm on PGlite, quick fake renders): a refusal reaches its member by DM with the whole
 * reason (budget numbers, refill time as a Discord timestamp) and the channel sees nothing of it, or
 * only a short note without details when their DMs are closed; no job where the bot could not post
 * the result; a reaction and a button press together make one job; and once the job is submitted a
 * failed reply is only logged (the result is still delivered).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermissionsBitField } from 'discord.js';
import { buttonsOf, Permissions, type FakeChannel, type FakeDiscord, type FakeGuild, type FakeUser, type StoredMessage } from '../fake-discord/index.ts';
import { apiRole } from '../fake-discord/serialize.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { getBudget, getJob, grantBudget, listJobs, type FarmContext, type Job } from '../../farm/index.ts';
import type { RunningBot } from '../../bot/bot.ts';
import { reactionNotices } from '../../bot/components/reactions.ts';

let fake: FakeDiscord;
let home: FakeGuild;
let studio: FakeGuild;
let boosted: FakeGuild;
let renders: FakeChannel;
let alice: FakeUser;
let running: BotFarm | undefined;
let farm: FarmContext;
let bot: RunningBot;
const logs: string[] = [];

const finished = (m: StoredMessage) => hasVideo(m) && buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:'));
const jobIdOn = (m: StoredMessage, action: string) => Number(buttonsOf(m).find((b) => b.customId?.startsWith(`bf:${action}:`))!.customId!.split(':')[2]);
const until = async (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MIB = 1024 * 1024;

/** A finished video of alice's, in `guild`'s first channel. */
function video(from: string, guild: FakeGuild = home): Promise<StoredMessage> {
  return fake.sendSlashCommand({ commandName: 'blend', user: alice, guildId: guild.id, options: { from, to: 'a calm sea', quality: 'draft', duration: 1 } }).waitForOriginal(finished, 20_000);
}

const followUpsOf = async (parentId: number): Promise<Job[]> => (await listJobs(farm, { userId: alice.id })).filter((j) => j.parentJobId === parentId);
/** Messages in a channel created since `since` (ms). */
const postedSince = (channelId: string, since: number) => fake.messages(channelId, { includeDeleted: true }).filter((m) => m.createdAt >= since);
const dmsSince = (since: number) => (fake.dmChannel(alice) ? postedSince(fake.dmChannel(alice)!.id, since) : []);

beforeAll(async () => {
  running = await startBotFarm({
    guilds: [{ name: 'Home', channels: ['renders'] }, { name: 'Studio', channels: ['art'] }, { name: 'Boosted', channels: ['gallery'], attachmentSizeLimit: 50 * MIB }],
    members: [{ username: 'alice', guilds: ['Home', 'Studio', 'Boosted'] }],
    config: { budget: { refillGpuSeconds: 1000, refillPeriodSeconds: 86_400, maxActiveJobs: 20 } },
    renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } },
    log: (m) => logs.push(m),
    messenger: { editIntervalMs: 100, retryDelayMs: 100, maxRetryDelayMs: 300, sweepIntervalMs: 150 },
  });
  ({ fake, farm, bot } = running);
  alice = running.users.alice;
  home = fake.guild('Home');
  studio = fake.guild('Studio');
  boosted = fake.guild('Boosted');
  renders = fake.channel('renders', home.id);
}, 90_000);

afterAll(() => stopBotFarm(running ?? {}));

describe('a refused reaction is told privately', () => {
  let parent: StoredMessage;
  let parentId: number;
  let spent = 0;

  beforeAll(async () => {
    parent = await video('a lantern');
    parentId = jobIdOn(parent, 'reroll');
    // Alice has spent her budget: a re-roll is refused with her numbers and the refill time.
    spent = (await getBudget(farm, alice.id, { guildId: home.id, roleIds: [home.id] })).balanceGpuSeconds;
    await grantBudget(farm, alice.id, -spent, 'spent');
  });

  afterAll(async () => {
    fake.clearFaults();
    await grantBudget(farm, alice.id, spent, 'back');
    // The bot remembers her DMs closed (DMS_CLOSED_MEMORY_MS); the tests below have them open again.
    reactionNotices(bot.client).forget(alice.id);
  });

  it('by DM, with the whole reason and the refill as a Discord timestamp; nothing with numbers in the channel, her reaction removed, nothing queued', async () => {
    const since = Date.now();
    expect(fake.addReaction({ messageId: parent.id, emoji: '🔁', user: alice }).delivered).toBe(true);
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.content.includes(`#${parentId}`), 15_000);
    expect(dm.content).toMatch(new RegExp(`^Your 🔁 on job #${parentId} in <#${renders.id}> did not re-roll it\\. This job needs about [\\d.]+ GPU-seconds but you have 0 GPU-seconds left; your budget tops up to 1000 GPU-seconds <t:\\d+:R> \\(<t:\\d+:f>\\)`));
    expect(dm.content).not.toMatch(/\d{4}-\d\d-\d\dT\d\d:/); // no ISO time
    const at = Number(/<t:(\d+):R>/.exec(dm.content)![1]);
    expect(Math.abs(at * 1000 - (Date.now() + 86_400_000))).toBeLessThan(120_000);
    await until(() => !(fake.message(parent.id)!.reactions.get('🔁')?.has(alice.id) ?? false), 5000, 'the reaction removed');
    await sleep(300);
    expect(postedSince(renders.id, since)).toEqual([]);
    expect(await followUpsOf(parentId)).toEqual([]);
  });

  it('DMs closed: a short public note without the reason, pointing at the button, which tells it privately', async () => {
    const since = Date.now();
    fake.failNext({ route: `/channels/${fake.dmChannel(alice)!.id}/messages`, method: 'POST', status: 403, code: 50007, message: 'Cannot send messages to this user' });
    fake.addReaction({ messageId: parent.id, emoji: '🔁', user: alice });
    const note = await fake.waitForMessage((m) => m.channelId === renders.id && m.createdAt >= since, 15_000);
    expect(note.content).toBe(`<@${alice.id}> your 🔁 could not start; I could not DM you why — use the **Re-roll** button to see the reason.`);
    expect(note.mentions).toEqual([alice.id]);
    expect(note.messageReference?.message_id).toBe(parent.id);
    await sleep(300);
    const publicText = postedSince(renders.id, since).map((m) => m.content.replaceAll(`<@${alice.id}>`, '')).join('\n');
    expect(publicText).not.toMatch(/\d|GPU|budget|refill|limit/i);
    expect(dmsSince(since)).toEqual([]);
    expect(logs.some((l) => l.includes(`could not be sent by DM`))).toBe(true);
    expect(await followUpsOf(parentId)).toEqual([]);

    // The button gives the reason, privately, with the same Discord timestamps.
    const press = fake.pressButton({ messageId: parent.id, customId: `bf:reroll:${parentId}`, user: alice });
    const answer = await fake.waitForMessage((m) => m.interactionId === press.id && /GPU-seconds/.test(m.content), 10_000);
    expect(answer.ephemeral).toBe(true);
    expect(answer.content).toMatch(/you have 0 GPU-seconds left; your budget tops up to 1000 GPU-seconds <t:\d+:R> \(<t:\d+:f>\)/);
  });
});

describe('the buttons’ rules', () => {
  it('missing Attach Files in that channel: refused by DM naming it, nothing queued', async () => {
    const art = fake.channel('art', studio.id);
    const parent = await video('a kite', studio);
    const parentId = jobIdOn(parent, 'upscale');
    // A server admin takes Attach Files from the bot's role and from @everyone.
    for (const role of studio.roles.filter((r) => r.botId !== null || r.id === studio.id)) {
      role.permissions &= ~Permissions.AttachFiles;
      fake.gateway.dispatchToGuild(studio.id, 'GUILD_ROLE_UPDATE', { guild_id: studio.id, role: apiRole(role) });
    }
    await until(() => bot.client.guilds.cache.get(studio.id)?.members.me?.permissions.has(PermissionsBitField.Flags.AttachFiles) === false, 5000, 'the role update');

    const since = Date.now();
    fake.addReaction({ messageId: parent.id, emoji: '🔍', user: alice });
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.createdAt >= since, 15_000);
    expect(dm.content).toBe(
      `Your 🔍 on job #${parentId} in <#${art.id}> did not upscale it. I can't post videos in <#${art.id}>: I'm missing the **Attach Files** permission there, so nothing was queued or charged. ` +
        `Ask a server admin to give me View Channel, Send Messages, Attach Files, Embed Links and Read Message History in <#${art.id}> (Edit Channel → Permissions), or use a channel where I have them.`,
    );
    await until(() => !(fake.message(parent.id)!.reactions.get('🔍')?.has(alice.id) ?? false), 5000, 'the reaction removed');
    await sleep(300);
    expect(await followUpsOf(parentId)).toEqual([]);
    expect(postedSince(art.id, since)).toEqual([]);
  });

  it('a reaction and a Re-roll press together make one job', async () => {
    const parent = await video('a harbour');
    const parentId = jobIdOn(parent, 'reroll');
    // Both answers are held up a little (a rate limit), so each submission is still under way when the other arrives.
    fake.failNext({ route: '/interactions/:interactionId/:token/callback', method: 'POST', status: 429, retryAfter: 0.5 });
    fake.failNext({ route: `/channels/${renders.id}/messages`, method: 'POST', status: 429, retryAfter: 0.5 });
    const since = Date.now();
    const press = fake.pressButton({ messageId: parent.id, customId: `bf:reroll:${parentId}`, user: alice });
    fake.addReaction({ messageId: parent.id, emoji: '🔁', user: alice });
    await until(async () => (await followUpsOf(parentId)).length > 0, 10_000, 'the re-roll');
    // One of them says the other's job is on its way: the button privately, or the reaction by DM.
    const onItsWay = `Your re-roll of #${parentId} is already on its way; its message will appear in a moment.`;
    await until(
      () => fake.messages(undefined, { includeDeleted: true }).some((m) => m.createdAt >= since && m.content.endsWith(onItsWay) && (m.ephemeral || m.channelId === fake.dmChannel(alice)?.id)),
      10_000,
      'the "already on its way" answer',
    );
    await press.waitForResponse();
    await sleep(1000);
    const made = await followUpsOf(parentId);
    expect(made.map((j) => j.kind)).toEqual(['reroll']);
    fake.clearFaults();
  });

  it('the reply fails after the submission: only logged, no error shown, and the video is delivered in the channel', async () => {
    const parent = await video('[fake ms=200] a windmill');
    const parentId = jobIdOn(parent, 'reroll');
    const since = Date.now();
    // Every try of the "queued" reply fails (discord.js tries a 500 four times).
    fake.failNext({ route: `/channels/${renders.id}/messages`, method: 'POST', status: 500, times: 4 });
    fake.addReaction({ messageId: parent.id, emoji: '🔁', user: alice });
    await until(async () => (await followUpsOf(parentId)).length === 1, 10_000, 'the re-roll');
    const [job] = await followUpsOf(parentId);
    await until(() => logs.some((l) => l.includes(`job ${job.id} is queued, but its message could not be posted`)), 15_000, 'the log line');
    const delivered = await fake.waitForMessage((m) => m.channelId === renders.id && hasVideo(m) && m.content.includes(`#${job.id}`), 20_000);
    expect(delivered.content).toMatch(new RegExp(`^<@${alice.id}> `));
    await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 5000, 'delivered');
    expect((await getJob(farm, job.id))!.messageId).toBe(delivered.id);
    const shown = [...postedSince(renders.id, since), ...dmsSince(since)];
    expect(shown.filter((m) => /could not|did not|wrong/i.test(m.content))).toEqual([]);
    expect(fake.message(parent.id)!.reactions.get('🔁')?.has(alice.id)).toBe(true);
    expect(fake.unhandled).toEqual([]);
  });
});

describe('a reaction renders for the server’s upload limit now, from its Boost level (a reaction carries no limit)', () => {
  let at10: StoredMessage;
  let at50: StoredMessage;
  const maxBytesOf = async (m: StoredMessage) => (await getJob(farm, jobIdOn(m, 'reroll')))!.params.maxBytes;
  const upscaleOf = async (parent: StoredMessage): Promise<Job> => {
    fake.addReaction({ messageId: parent.id, emoji: '🔍', user: alice });
    await until(async () => (await followUpsOf(jobIdOn(parent, 'reroll'))).length === 1, 10_000, 'the upscale');
    return (await followUpsOf(jobIdOn(parent, 'reroll')))[0];
  };

  beforeAll(async () => {
    // Rendered at Boost level 2 (50 MiB, Discord says so with the command); then the boosts lapse
    // (GUILD_UPDATE: no level, 10 MiB) and another is rendered at 10 MiB.
    at50 = await video('a boosted harbour', boosted);
    fake.setAttachmentSizeLimit(10 * MIB, boosted.id);
    at10 = await video('a plain meadow', boosted);
    expect([await maxBytesOf(at50), await maxBytesOf(at10)]).toEqual([50 * MIB, 10 * MIB]);
  });

  afterAll(() => fake.setAttachmentSizeLimit(50 * MIB, boosted.id));

  it('🔍 in a server boosted to level 2 since: an upscale at 50 MiB, though its parent was rendered at 10 MiB', async () => {
    fake.setAttachmentSizeLimit(50 * MIB, boosted.id);
    const job = await upscaleOf(at10);
    expect([job.kind, job.params.maxBytes]).toEqual(['upscale', 50 * MIB]);
  });

  it('🔍 in a server whose boosts have lapsed since: an upscale at 10 MiB, though its parent was rendered at 50 MiB', async () => {
    fake.setAttachmentSizeLimit(10 * MIB, boosted.id);
    const job = await upscaleOf(at50);
    expect([job.kind, job.params.maxBytes]).toEqual(['upscale', 10 * MIB]);
  });

  it('🔍 in a server without boosts: 10 MiB', async () => {
    const job = await upscaleOf(await video('an unboosted lane'));
    expect([job.kind, job.guildId, job.params.maxBytes]).toEqual(['upscale', home.id, 10 * MIB]);
  });
});

describe('a reaction on a message the bot cannot read back', () => {
  it('without Read Message History on a message the bot has not cached (a partial, not fetchable): refused by DM naming it, nothing queued, the message never fetched', async () => {
    const parent = await video('a reading room');
    const parentId = jobIdOn(parent, 'upscale');
    // A server admin takes Read Message History from the bot's role and from @everyone: Discord
    // would now refuse to hand the bot its own message (403 50001), which the fake does not check.
    const rolesOf = () => home.roles.filter((r) => r.botId !== null || r.id === home.id);
    const setHistory = async (allowed: boolean) => {
      for (const role of rolesOf()) {
        role.permissions = allowed ? role.permissions | Permissions.ReadMessageHistory : role.permissions & ~Permissions.ReadMessageHistory;
        fake.gateway.dispatchToGuild(home.id, 'GUILD_ROLE_UPDATE', { guild_id: home.id, role: apiRole(role) });
      }
      await until(() => bot.client.guilds.cache.get(home.id)?.members.me?.permissions.has(PermissionsBitField.Flags.ReadMessageHistory) === allowed, 5000, 'the role update');
    };
    const getMessage = `/channels/${renders.id}/messages/${parent.id}`;
    // As after a restart: the bot no longer has the message, so the reaction comes as a partial.
    const channel = bot.client.channels.cache.get(renders.id);
    if (channel?.isTextBased()) channel.messages.cache.delete(parent.id);
    await setHistory(false);
    try {
      fake.failNext({ route: getMessage, method: 'GET', status: 403, code: 50001, message: 'Missing Access', times: 10 });
      const since = Date.now();
      fake.addReaction({ messageId: parent.id, emoji: '🔍', user: alice });
      const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.createdAt >= since, 15_000);
      expect(dm.content).toBe(
        `Your 🔍 on job #${parentId} in <#${renders.id}> did not upscale it. I can't post videos in <#${renders.id}>: I'm missing the **Read Message History** permission there, so nothing was queued or charged. ` +
          `Ask a server admin to give me View Channel, Send Messages, Attach Files, Embed Links and Read Message History in <#${renders.id}> (Edit Channel → Permissions), or use a channel where I have them.`,
      );
      await until(() => !(fake.message(parent.id)!.reactions.get('🔍')?.has(alice.id) ?? false), 5000, 'the reaction removed');
      await sleep(300);
      expect(await followUpsOf(parentId)).toEqual([]);
      expect(fake.requests.filter((r) => r.method === 'GET' && r.path === getMessage)).toEqual([]);
    } finally {
      fake.clearFaults();
      await setHistory(true);
    }
  });

  it('a message the bot has not cached (a partial) with every permission: the job is queued as a reply to it, and a quick render is posted into that reply, once', async () => {
    const parent = await video('a forgotten pier');
    const parentId = jobIdOn(parent, 'reroll');
    const channel = bot.client.channels.cache.get(renders.id);
    if (channel?.isTextBased()) channel.messages.cache.delete(parent.id);
    const since = Date.now();
    // The reply is held up (a rate limit) while the re-roll renders in milliseconds: delivery waits for the reply.
    fake.failNext({ route: `/channels/${renders.id}/messages`, method: 'POST', status: 429, retryAfter: 0.5 });
    fake.addReaction({ messageId: parent.id, emoji: '🔁', user: alice });
    const reply = await fake.waitForMessage((m) => m.channelId === renders.id && m.messageReference?.message_id === parent.id && hasVideo(m), 15_000);
    const [job] = await followUpsOf(parentId);
    expect(job.kind).toBe('reroll');
    expect(reply.content).toContain(`#${job.id}:`);
    await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 5000, 'delivered');
    expect((await getJob(farm, job.id))!.messageId).toBe(reply.id);
    await sleep(300);
    expect(postedSince(renders.id, since).map((m) => m.id)).toEqual([reply.id]);
  });
});
