/**
 * 🔍 / 🔁 reactions go through the same budget rules as the buttons, through the real discord.js
 * client against the fake Discord, on both database back ends: the reacting member's roles are
 * fetched and passed, so a role's job limit and refill count (without them the reaction was held
 * to the server's job limit, refused where the Re-roll button succeeded, and could not apply a
 * due refill); an owner who has left the server is told plainly (by DM) and nothing is queued. A
 * command whose member Discord sends raw (the server not in the bot's cache) is admitted with the
 * roles Discord sent, not as a member without roles.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeGuild, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { BACKENDS } from '../helpers/db.ts';
import { getBudget, grantBudget, listJobs, updateGuildSettings, type FarmContext } from '../../farm/index.ts';
import type { RunningBot } from '../../bot/bot.ts';

describe.each(BACKENDS)('reactions use the member’s roles (%s)', (backend) => {
  let fake: FakeDiscord;
  let home: FakeGuild;
  let patronRole: string;
  let alice: FakeUser;
  let carol: FakeUser;
  let running: BotFarm | undefined;
  let farm: FarmContext;
  let bot: RunningBot;
  let alicesVideo: StoredMessage;
  let carolsVideo: StoredMessage;

  const finished = (m: StoredMessage) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:'));
  const isQueued = (m: StoredMessage) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:cancel:'));
  const jobIdOn = (m: StoredMessage, action: string) => Number(buttonsOf(m).find((b) => b.customId?.startsWith(`bf:${action}:`))!.customId!.split(':')[2]);
  const until = async (check: () => boolean, timeoutMs: number, what: string) => {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  function blend(user: FakeUser, from: string): InteractionHandle {
    return fake.sendSlashCommand({ commandName: 'blend', user, guildId: home.id, options: { from, to: 'a city of glass at noon', quality: 'draft', duration: 1 } });
  }

  beforeAll(async () => {
    running = await startBotFarm({
      guilds: [{ name: 'Blendfarm', channels: ['renders'], roles: [{ name: 'Patrons' }] }],
      members: [{ username: 'alice', roles: ['Patrons'] }, 'carol'],
      backend,
      // One active job each by the farm's rule; Patrons may have three, and a bigger refill (below).
      config: { budget: { refillGpuSeconds: 1000, refillPeriodSeconds: 86_400, maxActiveJobs: 1 } },
      // Quick renders unless a prompt asks for a slow one ("[fake ms=N]").
      renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } },
      messenger: { editIntervalMs: 100, retryDelayMs: 100 },
    });
    ({ fake, farm, bot } = running);
    ({ alice, carol } = running.users);
    home = fake.guild('Blendfarm');
    patronRole = home.roles.find((r) => r.name === 'Patrons')!.id;
    await updateGuildSettings(farm, home.id, { role: { roleId: patronRole, override: { refillGpuSeconds: 3000, maxActiveJobs: 3 } } });

    alicesVideo = await blend(alice, 'a lighthouse at dusk').waitForOriginal(finished, 30_000);
    carolsVideo = await blend(carol, 'a kite over the sea').waitForOriginal(finished, 30_000);
    // Alice keeps one job active: the server's (the farm's) limit of one is reached, her role's three are not.
    await blend(alice, '[fake ms=120000] a very slow render').waitForOriginal(isQueued, 10_000);
  }, 90_000);

  afterAll(() => stopBotFarm(running ?? {}));

  it('🔁 by a Patron with a job already active is admitted under the role’s job limit and applies a due refill with the role’s allowance', async () => {
    const roles = { guildId: home.id, roleIds: [home.id, patronRole] };
    // Alice has spent down to 5 GPU-seconds, and her refill period has ended.
    const { balanceGpuSeconds } = await getBudget(farm, alice.id, roles);
    await grantBudget(farm, alice.id, 5 - balanceGpuSeconds, 'spent');
    await farm.db.db.execute(sql`update users set last_refill_at = last_refill_at - interval '2 days' where id = ${alice.id}`);
    await farm.db.db.execute(sql`update budget_ledger set created_at = created_at - interval '2 days' where user_id = ${alice.id}`);
    expect(await getBudget(farm, alice.id, roles)).toMatchObject({ balanceGpuSeconds: 5, refillDue: true, activeJobs: 1, maxActiveJobs: 3 });
    // /budget says so and applies nothing (a look never starts a period).
    const look = await fake.sendSlashCommand({ commandName: 'budget', user: alice, guildId: home.id }).waitForOriginal((m) => /GPU-seconds/.test(m.content ?? ''), 10_000);
    expect(look.content).toContain('**5 GPU-seconds** available');
    expect(look.content).toContain('A refill to 3000 GPU-seconds is due: your next request here applies it');
    expect(look.content).toContain('Active jobs: 1 of 3.');
    expect(await getBudget(farm, alice.id, roles)).toMatchObject({ balanceGpuSeconds: 5, refillDue: true });

    const parentId = jobIdOn(alicesVideo, 'reroll');
    expect(fake.addReaction({ messageId: alicesVideo.id, emoji: '🔁', user: alice }).delivered).toBe(true);
    const reply = await fake.waitForMessage((m) => m.content?.startsWith(`<@${alice.id}> `) === true && m.id !== alicesVideo.id, 15_000);
    expect(reply.content).not.toMatch(/active|limit|GPU-seconds left/i);
    expect(isQueued(reply)).toBe(true);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.parentJobId, job.userId, job.guildId]).toEqual(['reroll', parentId, alice.id, home.id]);

    const after = await getBudget(farm, alice.id, roles);
    const refill = after.ledger.find((e) => e.kind === 'refill' && e.createdAt.getTime() > Date.now() - 60_000);
    expect(refill?.note).toMatch(/^top-up to 3000 GPU-seconds/);
    expect(after.refillDue).toBe(false);
    expect(after.balanceGpuSeconds + after.heldGpuSeconds).toBeCloseTo(3000, 3);
    // /budget now names the next refill as Discord timestamps (each reader's own clock), never an ISO string.
    const t = Math.floor(after.nextRefillAt.getTime() / 1000);
    const look2 = await fake.sendSlashCommand({ commandName: 'budget', user: alice, guildId: home.id }).waitForOriginal((m) => /GPU-seconds/.test(m.content ?? ''), 10_000);
    expect(look2.content).toContain(`Tops up to 3000 GPU-seconds every 24h; next refill <t:${t}:R> (<t:${t}:f>).`);
    expect(look2.content).not.toMatch(/\d{4}-\d{2}-\d{2}T/);
  });

  it('an owner who has left the server is told so by DM, their reaction is removed and nothing is queued', async () => {
    const before = (await listJobs(farm, {})).length;
    expect(fake.addReaction({ messageId: carolsVideo.id, emoji: '🔁', user: carol }).delivered).toBe(true);
    // Carol leaves before the bot gets to the reaction.
    home.members.delete(carol.id);
    const parentId = jobIdOn(carolsVideo, 'reroll');
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(carol)?.id, 15_000);
    expect(dm.content).toBe(`Your 🔁 on job #${parentId} in <#${carolsVideo.channelId}> did not re-roll it. You're no longer a member of that server.`);
    await until(() => !(fake.message(carolsVideo.id)!.reactions.get('🔁')?.has(carol.id) ?? false), 5000, 'the reaction removed');
    expect(fake.messages(carolsVideo.channelId).filter((m) => m.content.includes(`<@${carol.id}>`))).toEqual([]);
    expect((await listJobs(farm, {})).length).toBe(before);
    expect(fake.serverErrors).toEqual([]);
  });

  it('a command from a member Discord sends raw (the server not in the bot’s cache) is admitted under their role’s job limit', async () => {
    // Alice (Patrons: 3 jobs) still has her slow job active; the server's limit of one is reached.
    expect((await getBudget(farm, alice.id, { guildId: home.id, roleIds: [home.id, patronRole] })).activeJobs).toBeGreaterThanOrEqual(1);
    const cached = bot.client.guilds.cache.get(home.id)!;
    bot.client.guilds.cache.delete(home.id);
    try {
      const run = blend(alice, '[fake ms=120000] another slow render');
      const answer = await run.waitForOriginal((m) => isQueued(m) || /limit|could not start/.test(m.content), 15_000);
      expect(answer.content).not.toMatch(/limit is 1/);
      expect(isQueued(answer)).toBe(true);
      const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
      expect([job.userId, job.interactionToken]).toEqual([alice.id, run.token]);
      // Admitted with her roles: more jobs active than the server's limit of one allows.
      expect((await listJobs(farm, { userId: alice.id, statuses: ['queued', 'running'] })).length).toBeGreaterThanOrEqual(2);
    } finally {
      bot.client.guilds.cache.set(home.id, cached);
    }
  });
});
