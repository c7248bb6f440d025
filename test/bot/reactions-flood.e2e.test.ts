/**
 * Toggling 🔍/🔁 costs a member nothing, so it must not make the bot repeat failing or public
 * requests (a hostile review: 30 toggles made 30 member fetches, 30 refused reaction removals and
 * 30 DMs; Cloudflare bans an IP for an hour after 10,000 401/403/429 in 10 minutes). Through the
 * real discord.js client against the fake Discord, which refuses the removal of someone else's
 * reaction without Manage Messages (403 / 50013) as Discord does:
 * - a member who may not act on the video is judged from the cache (no member fetch), told whose it
 *   is once, and their reaction is left alone where the bot lacks Manage Messages (its invite's
 *   permissions do not include it), taken off where it has it;
 * - the owner with closed DMs and no budget gets one DM attempt and one note in the channel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REST, Routes } from 'discord.js';
import { buttonsOf, type FakeDiscord, type FakeGuild, type FakeUser, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { until } from '../helpers/until.ts';
import { getBudget, grantBudget, listJobs, type FarmContext } from '../../farm/index.ts';
import { INVITE_PERMISSIONS, permissionsInteger } from '../../bot/permissions.ts';

let running: BotFarm | undefined;
let fake: FakeDiscord;
let farm: FarmContext;
let alice: FakeUser;
let bob: FakeUser;
/** The bot has its invite's permissions only (no Manage Messages). */
let invited: FakeGuild;
/** The bot has Manage Messages as well. */
let moderated: FakeGuild;
const logs: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const finished = (m: StoredMessage) => hasVideo(m) && buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:'));
const jobIdOn = (m: StoredMessage) => Number(buttonsOf(m).find((b) => b.customId?.startsWith('bf:reroll:'))!.customId!.split(':')[2]);
const REACTION_OF_USER = '/channels/:channelId/messages/:messageId/reactions/:emoji/:userId';

function video(guild: FakeGuild, from: string): Promise<StoredMessage> {
  return fake.sendSlashCommand({ commandName: 'blend', user: alice, guildId: guild.id, options: { from, to: 'a calm sea', quality: 'draft', duration: 1 } }).waitForOriginal(finished, 20_000);
}

/**
 * `user` adds and takes off `emoji` on `message` `times` times; then waits until `settled()` holds
 * (the answer the test expects has come: on a loaded machine the bot may still be at the first
 * toggles) and 1.5 s more, for anything the later toggles would wrongly repeat.
 */
async function toggle(message: StoredMessage, emoji: string, user: FakeUser, times: number, settled: () => boolean = () => true): Promise<void> {
  for (let i = 0; i < times; i++) {
    expect(fake.addReaction({ messageId: message.id, emoji, user }).delivered).toBe(true);
    await sleep(30);
    fake.removeReaction({ messageId: message.id, emoji, user });
    await sleep(10);
  }
  await until(settled, 20_000, 'the bot’s answer to the toggles');
  await sleep(1500);
}

/** Whether a DM was sent (or attempted) to channel `dm` since `since`. */
const dmTried = (dm: string, since: number) => () => fake.requests.some((r) => r.at >= since && r.method === 'POST' && r.path === `/channels/${dm}/messages`);

/** The user's DM channel, opened as the bot opens one. */
async function dmChannelOf(user: FakeUser): Promise<string> {
  const channel = (await new REST({ api: fake.restBase }).setToken(fake.token).post(Routes.userChannels(), { body: { recipient_id: user.id } })) as { id: string };
  return channel.id;
}

beforeAll(async () => {
  running = await startBotFarm({
    guilds: [
      { name: 'Invited', channels: ['renders'], botPermissions: BigInt(permissionsInteger(INVITE_PERMISSIONS)) },
      { name: 'Moderated', channels: ['gallery'] },
    ],
    members: [{ username: 'alice', guilds: ['Invited', 'Moderated'] }, { username: 'bob', guilds: ['Invited', 'Moderated'] }],
    config: { budget: { refillGpuSeconds: 1000, refillPeriodSeconds: 86_400, maxActiveJobs: 20 } },
    renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } },
    log: (m) => logs.push(m),
  });
  ({ fake, farm } = running);
  ({ alice, bob } = running.users);
  invited = fake.guild('Invited');
  moderated = fake.guild('Moderated');
}, 90_000);

afterAll(() => stopBotFarm(running ?? {}));

describe('a member who may not act on the video toggles 🔁 30 times', () => {
  it('without Manage Messages: one DM, no member fetch, no attempt to take the reaction off, nothing queued or posted', async () => {
    const parent = await video(invited, 'a lighthouse');
    const parentId = jobIdOn(parent);
    const dm = await dmChannelOf(bob);
    const since = Date.now();
    await toggle(parent, '🔁', bob, 30, dmTried(dm, since));
    const made = fake.requests.filter((r) => r.at >= since);
    const dms = made.filter((r) => r.method === 'POST' && r.path === `/channels/${dm}/messages`);
    expect(dms.length).toBe(1);
    expect(fake.messages(dm).filter((m) => m.createdAt >= since).map((m) => m.content)).toEqual([
      `Your 🔁 on job #${parentId} in <#${parent.channelId}> did not re-roll it. Only the person who made this video (or a moderator) can re-roll it; make your own with /blend, /movie or /vary.`,
    ]);
    expect(made.filter((r) => r.route === REACTION_OF_USER)).toEqual([]);
    expect(made.filter((r) => r.path === `/guilds/${invited.id}/members/${bob.id}`)).toEqual([]);
    expect(made.filter((r) => r.status >= 400)).toEqual([]);
    expect(fake.messages(parent.channelId, { includeDeleted: true }).filter((m) => m.createdAt >= since)).toEqual([]);
    expect((await listJobs(farm, { userId: bob.id })).length).toBe(0);
  });

  it('with Manage Messages: the reaction is taken off each time, still one DM', async () => {
    const parent = await video(moderated, 'a kite');
    const dm = await dmChannelOf(bob);
    const since = Date.now();
    expect(fake.addReaction({ messageId: parent.id, emoji: '🔁', user: bob }).delivered).toBe(true);
    await until(() => !(fake.message(parent.id)!.reactions.get('🔁')?.has(bob.id) ?? false), 5000, 'the reaction taken off');
    await toggle(parent, '🔁', bob, 10, dmTried(dm, since));
    const made = fake.requests.filter((r) => r.at >= since);
    expect(made.filter((r) => r.method === 'POST' && r.path === `/channels/${dm}/messages`).length).toBe(1);
    const removals = made.filter((r) => r.method === 'DELETE' && r.route === REACTION_OF_USER);
    expect(removals.length).toBeGreaterThanOrEqual(1);
    expect(removals.every((r) => r.status === 204)).toBe(true);
    expect(made.filter((r) => r.status >= 400)).toEqual([]);
  });

  it('DMs closed, no Manage Messages: one DM attempt (refused), nothing else', async () => {
    const parent = await video(invited, 'a harbour');
    const dm = await dmChannelOf(bob);
    // Bob's earlier DMs went through; now Discord refuses every one.
    fake.failNext({ route: `/channels/${dm}/messages`, method: 'POST', status: 403, code: 50007, message: 'Cannot send messages to this user', times: 100 });
    try {
      const since = Date.now();
      const other = await video(invited, 'a windmill');
      await toggle(parent, '🔍', bob, 15, dmTried(dm, since));
      await toggle(other, '🔍', bob, 15);
      const made = fake.requests.filter((r) => r.at >= since);
      expect(made.filter((r) => r.method === 'POST' && r.path === `/channels/${dm}/messages`).length).toBe(1);
      expect(made.filter((r) => r.status >= 400 && !r.injected)).toEqual([]);
      expect(fake.messages(parent.channelId, { includeDeleted: true }).filter((m) => m.createdAt >= since && !hasVideo(m) && m.content.includes(`<@${bob.id}>`))).toEqual([]);
    } finally {
      fake.clearFaults();
    }
  });
});

describe('the owner, DMs closed and no budget left, toggles 🔁 30 times', () => {
  let spent = 0;
  let parent: StoredMessage;
  beforeAll(async () => {
    parent = await video(moderated, 'a lantern');
    spent = (await getBudget(farm, alice.id, { guildId: moderated.id, roleIds: [moderated.id] })).balanceGpuSeconds;
    await grantBudget(farm, alice.id, -spent, 'spent');
  });
  afterAll(async () => {
    fake.clearFaults();
    await grantBudget(farm, alice.id, spent, 'back');
  });

  it('one DM attempt and one note in the channel; the reaction taken off each time (Manage Messages); nothing queued', async () => {
    const parentId = jobIdOn(parent);
    const dm = await dmChannelOf(alice);
    fake.failNext({ route: `/channels/${dm}/messages`, method: 'POST', status: 403, code: 50007, message: 'Cannot send messages to this user', times: 100 });
    const since = Date.now();
    await toggle(parent, '🔁', alice, 30, () => fake.messages(parent.channelId).some((m) => m.createdAt >= since && m.content.includes('could not start')));
    const made = fake.requests.filter((r) => r.at >= since);
    expect(made.filter((r) => r.method === 'POST' && r.path === `/channels/${dm}/messages`).length).toBe(1);
    const notes = fake.messages(parent.channelId, { includeDeleted: true }).filter((m) => m.createdAt >= since);
    expect(notes.map((m) => m.content)).toEqual([`<@${alice.id}> your 🔁 could not start; I could not DM you why — use the **Re-roll** button to see the reason.`]);
    expect(made.filter((r) => r.method === 'DELETE' && r.route === REACTION_OF_USER).every((r) => r.status === 204)).toBe(true);
    expect(made.filter((r) => r.status >= 400 && !r.injected)).toEqual([]);
    expect((await listJobs(farm, { userId: alice.id })).filter((j) => j.parentJobId === parentId)).toEqual([]);
  });
});
