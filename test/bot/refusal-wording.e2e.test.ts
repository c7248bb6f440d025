/**
 * What a member reads when no render worker can take their job, and what /queue shows them: the
 * command's own terms (its options, "the farm's operator"), never the operator's (worker ids and
 * devices, model ids, pixel counts, settings, shell commands). The real discord.js client against
 * the fake Discord, a real farm on PGlite, fake renders whose workers advertise what each test needs.
 */
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateReason as privateReasonOf } from '../helpers/replies.ts';
import { buttonsOf, type FakeDiscord, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { cancelJob, listJobs, startLocalWorkers, type FarmContext, type WorkerCapabilities } from '../../farm/index.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';

const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));
const picture = { filename: 'picture.png', bytes: PHOTO, contentType: 'image/png' };
/** What no member-facing text may contain: the operator's words and numbers. */
const OPERATOR_WORDS = /BLENDFARM_|npm run|online worker|pixels|model "|demo|local-|fake renderer/;

let running: BotFarm | undefined;
let fake: FakeDiscord;
let alice: FakeUser;
let farm: FarmContext;
const logs: string[] = [];

/** Replaces the farm's workers by `count` fake ones advertising `caps` over the fake renderer's own. */
async function workersWith(caps: Partial<WorkerCapabilities>, count = 1): Promise<void> {
  await running!.workers.stop('release');
  running!.workers = await startLocalWorkers(farm, {
    count,
    log: () => {},
    renderer: () => {
      const renderer = new FakeRenderer({ steps: 2, stepMs: 5 });
      const base = renderer.capabilities();
      renderer.capabilities = () => ({ ...base, ...caps });
      return renderer;
    },
  });
}

async function noWorkers(): Promise<void> {
  await running!.workers.stop('release');
  running!.workers = { workers: [], stop: async () => {} };
}

/** The reason a refused command was sent privately, in the member's words (no operator's terms). */
async function privateReason(handle: InteractionHandle): Promise<string> {
  const reason = await privateReasonOf(handle);
  expect(reason).not.toMatch(OPERATOR_WORDS);
  return reason;
}

const blend = (options: Record<string, unknown> = {}) => fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a cat', to: 'a dog', quality: 'draft', duration: 1, ...options } });

/** A finished video of alice's, posted with its buttons. */
async function finishedVideo(): Promise<{ message: StoredMessage; jobId: number }> {
  const message = await blend({ from: 'a lantern', size: 'square' }).waitForOriginal((m) => hasVideo(m) && buttonsOf(m).length > 0, 20_000);
  const jobId = Number(buttonsOf(message).find((b) => b.customId?.startsWith('bf:upscale:'))!.customId!.split(':')[2]);
  return { message, jobId };
}

/** The private answer to alice's Upscale press on `message`. */
async function pressUpscale(message: StoredMessage, jobId: number): Promise<string> {
  const press = fake.pressButton({ messageId: message.id, customId: `bf:upscale:${jobId}`, user: alice });
  const reason = await privateReason(press);
  // The press is settled (no follow-up of it still under way) once its public "thinking…" is gone.
  await press.waitForOriginal((m) => m.deleted, 10_000);
  return reason;
}

async function queueText(): Promise<string> {
  const q = fake.sendSlashCommand({ commandName: 'queue', user: alice });
  const answer = await q.waitForOriginal((m) => /waiting/.test(m.content ?? ''), 10_000);
  expect(answer.ephemeral).toBe(true);
  expect(answer.content).not.toMatch(OPERATOR_WORDS);
  return answer.content ?? '';
}

beforeAll(async () => {
  running = await startBotFarm({ members: ['alice'], renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } }, log: (m) => logs.push(m) });
  ({ fake, farm } = running);
  alice = running.users.alice;
}, 60_000);

afterAll(() => stopBotFarm(running ?? {}));

describe('no worker can take the job: the refusal speaks in the command’s terms', () => {
  it('no worker online at all', async () => {
    await noWorkers();
    expect(await privateReason(blend())).toBe("No render worker is online right now, so nothing would start. Try again in a few minutes, or tell the farm's operator if it lasts.");
  }, 30_000);

  it('pictures, with a model that cannot start at one: names the options to leave out', async () => {
    await workersWith({ models: ['demo'], modelAbilities: { demo: ['text'] } });
    expect(await privateReason(blend({ from_image: picture }))).toBe(
      "This farm can't start or end a video at a picture right now: no render worker online has a model that can. Leave `from_image` and `to_image` out, or ask the farm's operator.",
    );
  }, 30_000);

  it('inpainting with no inpainting model', async () => {
    expect(await privateReason(blend({ image: picture, mask_preset: 'centre' }))).toBe(
      "This farm can't inpaint pictures right now: no render worker online has a model that can. Leave `image` and `mask` out, or ask the farm's operator.",
    );
  }, 30_000);

  it('/vary with no image-variation model', async () => {
    const vary = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: picture, frames: 2, quality: 'draft' } });
    expect(await privateReason(vary)).toBe("This farm can't make image variations right now: no render worker online has a model that can. Try again later, or ask the farm's operator.");
  }, 30_000);

  it('a size no worker takes: names the `size` option, not pixels or models', async () => {
    await workersWith({ models: ['demo'], maxPixels: 512 * 512 });
    expect(await privateReason(blend({ size: 'landscape' }))).toBe("No render worker online can render this size right now: pick a smaller `size`, or ask the farm's operator.");
  }, 30_000);

  it('the smallest size too big: no advice to pick a smaller one', async () => {
    await workersWith({ models: ['demo'], maxPixels: 256 * 256 });
    expect(await privateReason(blend({ size: 'square' }))).toBe("No render worker online can render a video this size right now. Try again later, or ask the farm's operator.");
  }, 30_000);
});

describe('Upscale where no worker can upscale', () => {
  let video: { message: StoredMessage; jobId: number };

  beforeAll(async () => {
    await workersWith({ models: ['demo'], upscalers: [] });
    video = await finishedVideo();
  }, 30_000);

  it('the button says upscaling is not available on this farm now', async () => {
    expect(await pressUpscale(video.message, video.jobId)).toBe("Upscaling isn't available on this farm right now: no render worker online can upscale. Try again later, or ask the farm's operator.");
  }, 30_000);

  it('🔍 says the same by DM', async () => {
    const since = Date.now();
    fake.addReaction({ messageId: video.message.id, emoji: '🔍', user: alice });
    const deadline = Date.now() + 10_000;
    let dm: StoredMessage | undefined;
    while (!dm && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
      const channel = fake.dmChannel(alice);
      dm = channel ? fake.messages(channel.id).find((m) => m.createdAt >= since) : undefined;
    }
    expect(dm?.content).toBe(
      `Your 🔍 on job #${video.jobId} in <#${video.message.channelId}> did not upscale it. Upscaling isn't available on this farm right now: no render worker online can upscale. Try again later, or ask the farm's operator.`,
    );
  }, 30_000);

  it('with upscalers, but none that makes this video 4× at its size', async () => {
    await workersWith({ models: ['demo'], upscalers: ['*'], maxPixels: 512 * 512 });
    expect(await pressUpscale(video.message, video.jobId)).toBe("This farm can't upscale this video 4× right now: no render worker online can. Try again later, or ask the farm's operator.");
  }, 30_000);
});

describe('/queue', () => {
  it('counts workers (no ids, no devices) and says what of yours is waiting or rendering', async () => {
    await workersWith({ models: ['demo'] }, 2);
    expect(await queueText()).toBe(['**0** waiting, **0** rendering, **2** workers online, **0** busy.', 'You have nothing waiting or rendering.'].join('\n'));

    // One of alice's renders half done: hers, with its progress, and one worker busy.
    const slow = blend({ from: '[fake ms=3000] a slow one' });
    await slow.waitForResponse();
    const deadline = Date.now() + 15_000;
    const slowJob = async () => (await listJobs(farm, { userId: alice.id, statuses: ['running'] })).find((j) => j.params.prompts[0]?.includes('a slow one'));
    let job = await slowJob();
    while (job?.progress?.fraction !== 0.5) {
      if (Date.now() > deadline) throw new Error('the slow job made no progress');
      await new Promise((r) => setTimeout(r, 50));
      job = await slowJob();
    }
    try {
      expect(await queueText()).toBe(['**0** waiting, **1** rendering, **2** workers online, **1** busy.', `• Your job #${job.id} is rendering (50%).`].join('\n'));
    } finally {
      await cancelJob(farm, job.id);
    }
  }, 40_000);

  it('GPU and CPU workers are counted apart', async () => {
    await running!.workers.stop('release');
    const gpu = await startLocalWorkers(farm, { idPrefix: 'gpu', log: () => {}, renderer: () => Object.assign(new FakeRenderer({}), { capabilities: () => ({ models: ['demo'], maxPixels: 1 << 22, executionProvider: 'cuda' }) }) });
    const cpu = await startLocalWorkers(farm, { idPrefix: 'cpu', count: 2, log: () => {}, renderer: () => Object.assign(new FakeRenderer({}), { capabilities: () => ({ models: ['demo'], maxPixels: 1 << 22, executionProvider: 'cpu' }) }) });
    running!.workers = { workers: [...gpu.workers, ...cpu.workers], stop: async (mode, grace) => void (await Promise.all([gpu.stop(mode, grace), cpu.stop(mode, grace)])) };
    expect(await queueText()).toBe(['**0** waiting, **0** rendering, **3** workers online (1 GPU, 2 CPU), **0** busy.', 'You have nothing waiting or rendering.'].join('\n'));
  }, 30_000);

  it('no worker online: says so, and whom to tell, without a shell command', async () => {
    await noWorkers();
    expect(await queueText()).toBe(
      [
        '**0** waiting, **0** rendering, **0** workers online, **0** busy.',
        'You have nothing waiting or rendering.',
        "No render worker is online, so nothing is rendering; queued jobs wait up to 6h for one. If it lasts, tell the farm's operator.",
      ].join('\n'),
    );
  }, 30_000);
});

describe('/queue on a long queue', () => {
  it('counts every waiting job (it stopped at 1000) without reading them', async () => {
    await noWorkers();
    const kind = 'blend';
    await farm.db.db.execute(sql`insert into users (id) values ('crowd') on conflict do nothing`);
    await farm.db.db.execute(
      sql`insert into jobs (kind, user_id, params, model, pixels) select ${kind}, 'crowd', '{"prompts": ["a", "b"]}'::jsonb, 'nobody-has-it', 4096 from generate_series(1, 1005)`,
    );
    try {
      expect((await queueText()).split('\n')[0]).toBe('**1005** waiting, **0** rendering, **0** workers online, **0** busy.');
    } finally {
      await farm.db.db.execute(sql`delete from jobs where user_id = 'crowd'`);
    }
  }, 30_000);
});

describe('a command Discord still shows but this bot no longer has', () => {
  it('the member is told whom to tell; the operator’s log names the command to run', async () => {
    const res = await fetch(`${fake.restBase}/v10/applications/${fake.applicationId}/guilds/${fake.guild().id}/commands`, {
      method: 'POST',
      headers: { authorization: `Bot ${fake.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'render', description: 'An old command', type: 1 }),
    });
    expect(res.ok).toBe(true);
    const handle = fake.sendSlashCommand({ commandName: 'render', user: alice });
    const r = await handle.waitForResponse();
    expect([r.type, r.ephemeral, r.data?.content]).toEqual([4, true, "This command is not known to this version of the bot; tell the farm's operator, who can update the bot's commands."]);
    expect(logs).toContain("[bot] /render is not one of this bot's commands: the commands Discord shows are out of date; run `npm run deploy-commands`");
  }, 30_000);
});
