/**
 * /budget tells what a due refill adds, through the real discord.js client against the fake
 * Discord, on both database back ends. Within a period a refill to a larger allowance adds only the
 * difference (farm/policy/budget.ts): a member refilled to 90 who used 30, after an admin raised the
 * server's refill to 91, gets 1 at their next request, while /budget said "A refill to 91 is due:
 * your next request here applies it", a top-up to 91 (31) that never came. An ordinary due refill
 * (a new period) is worded as before.
 */
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeGuild, type FakeUser, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { BACKENDS } from '../helpers/db.ts';
import { getBudget, updateGuildSettings, type FarmContext } from '../../farm/index.ts';

describe.each(BACKENDS)('/budget says what a due refill adds (%s)', (backend) => {
  let fake: FakeDiscord;
  let home: FakeGuild;
  let dana: FakeUser;
  let running: BotFarm | undefined;
  let farm: FarmContext;

  const finished = (m: StoredMessage) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:'));
  const here = () => ({ guildId: home.id, roleIds: [] });

  /** Dana renders one job (30 GPU-seconds, all of it used) and waits until it is settled. */
  async function renderOne(from: string) {
    await fake
      .sendSlashCommand({ commandName: 'blend', user: dana, guildId: home.id, options: { from, to: 'a city of glass at noon', quality: 'draft', duration: 1 } })
      .waitForOriginal(finished, 30_000);
    const deadline = Date.now() + 10_000;
    while ((await getBudget(farm, dana.id, here())).activeJobs > 0) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the job to settle');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function lookAtBudget(): Promise<string> {
    const look = await fake.sendSlashCommand({ commandName: 'budget', user: dana, guildId: home.id }).waitForOriginal((m) => /GPU-seconds/.test(m.content ?? ''), 10_000);
    return look.content ?? '';
  }

  beforeAll(async () => {
    running = await startBotFarm({
      guilds: [{ name: 'Blendfarm', channels: ['renders'] }],
      members: ['dana'],
      backend,
      // Every job reserves 30 GPU-seconds and uses all of them.
      config: { budget: { refillGpuSeconds: 600, refillPeriodSeconds: 86_400, maxActiveJobs: 3 }, cost: { overheadSeconds: 30, secondsPerMegapixelStep: 0, secondsPerMegapixelFrame: 0 } },
      renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5, gpuSeconds: 30 } },
      messenger: { editIntervalMs: 100, retryDelayMs: 100 },
    });
    ({ fake, farm } = running);
    ({ dana } = running.users);
    home = fake.guild('Blendfarm');
    await updateGuildSettings(farm, home.id, { refillGpuSeconds: 90 });
  }, 90_000);

  afterAll(() => stopBotFarm(running ?? {}));

  it('refilled to 90, 30 used, the refill raised to 91: /budget says the next request adds 1 GPU-second, and it does; a new period’s refill is worded as before', async () => {
    await renderOne('a lighthouse at dusk');
    expect(await getBudget(farm, dana.id, here())).toMatchObject({ balanceGpuSeconds: 60, heldGpuSeconds: 0, refillDue: false });

    await updateGuildSettings(farm, home.id, { refillGpuSeconds: 91 });
    const capped = await lookAtBudget();
    expect(capped).toContain('**60 GPU-seconds** available');
    expect(capped).toContain(
      'A refill is due: your next request here adds 1 GPU-second (you were refilled to 90 GPU-seconds within this period; a larger allowance adds only the difference).',
    );
    expect(capped).not.toContain('A refill to 91 GPU-seconds is due');

    // The next request adds exactly that: 60 + 1 − 30.
    await renderOne('a kite over the sea');
    const after = await getBudget(farm, dana.id, here(), 100);
    expect(after).toMatchObject({ balanceGpuSeconds: 31, refillDue: false });
    expect(after.ledger.filter((e) => e.kind === 'refill').map((e) => e.amountGpuSeconds)).toEqual([1, 90]);

    // A new period: the ordinary top-up to 91, worded as before.
    await farm.db.db.execute(sql`update users set last_refill_at = last_refill_at - interval '2 days' where id = ${dana.id}`);
    await farm.db.db.execute(sql`update budget_ledger set created_at = created_at - interval '2 days' where user_id = ${dana.id}`);
    expect(await getBudget(farm, dana.id, here())).toMatchObject({ refillDue: true, refillAddsGpuSeconds: 60, refilledWithinPeriodGpuSeconds: null });
    const ordinary = await lookAtBudget();
    expect(ordinary).toContain('A refill to 91 GPU-seconds is due: your next request here applies it (then one every 24h).');
    expect(fake.serverErrors).toEqual([]);
  });
});
