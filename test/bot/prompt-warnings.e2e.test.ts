/**
 * A prompt longer than the text encoder reads, end to end: /blend on the fake Discord, a real
 * engine worker thread rendering the demo model: said in the queued message before it renders
 * (no model needed), then the engine's warning stored with the job's result (its artifact's
 * metadata) and shown in the posted message under the video.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeDiscord, FakeUser } from '../fake-discord/index.ts';
import { hasVideo, startBotFarm, stopBotFarm, type BotFarm } from '../helpers/bot-farm.ts';
import { getArtifact, listJobs, resultWarnings } from '../../farm/index.ts';
import { StableDiffusionPipeline } from '../../engine/index.ts';
import { testModelDir } from '../../models/paths.ts';

const RENDER_TIMEOUT = 90_000;
let running: BotFarm;
let fake: FakeDiscord;
let alice: FakeUser;

beforeAll(async () => {
  running = await startBotFarm({ members: ['alice'], renderer: { engine: { modelDir: testModelDir('demo') } } });
  fake = running.fake;
  alice = running.users.alice;
});

afterAll(async () => {
  if (running) await stopBotFarm(running);
});

describe('prompt warnings', () => {
  it('tells the member under the video that the end of their long prompt B was cut off', async () => {
    // 90 one-letter words: longer than the 75 tokens CLIP reads, within the farm's 500 characters.
    const long = `a castle ${Array.from({ length: 90 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(' ')} *and* a moat`;
    const pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
    const tokens = pipe.tokenizers[0].encodeWithInfo(long).tokenCount - 2;
    await pipe.release();
    expect(tokens).toBeGreaterThan(75);

    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red house', to: long, quality: 'draft', duration: 1, seed: 5 } });
    const posted = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const [job] = await listJobs(running.farm, { order: 'newest', limit: 1 });
    const warning = `Prompt B is ${tokens} CLIP tokens long; the text encoder reads 75 (77 CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.`;
    // Stored with the job's result, through the farm's public surface...
    expect(resultWarnings((await getArtifact(running.farm, job.id))?.meta)).toEqual([warning]);
    // ...and shown once, on its own line, under the video's details.
    expect(posted.content?.split('\n').filter((line) => line.startsWith('⚠️'))).toEqual([`⚠️ ${warning}`]);
    expect(posted.content!.length).toBeLessThanOrEqual(2000);
    // Before it rendered, the queued message said so already (no model needed: a lower bound of the count above).
    const queued = fake.edits(handle).map((r) => r.content ?? '').filter((t) => /Queued/.test(t));
    expect(queued.length).toBeGreaterThan(0);
    for (const t of queued) {
      const least = Number(/\n⚠️ Prompt B is at least (\d+) CLIP tokens long; the text encoder reads 75, so its end will be cut off: shorten it to keep every word\.$/.exec(t)?.[1]);
      expect(least).toBeGreaterThan(75);
      expect(least).toBeLessThanOrEqual(tokens);
    }
  }, 120_000);

  it('says nothing for prompts that fit', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red house', to: 'a blue boat', quality: 'draft', duration: 1, seed: 6 } });
    const posted = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const [job] = await listJobs(running.farm, { order: 'newest', limit: 1 });
    expect((await getArtifact(running.farm, job.id))?.meta.warnings).toBeUndefined();
    expect(posted.content).not.toMatch(/⚠️/);
    expect(fake.edits(handle).some((r) => /⚠️/.test(r.content ?? ''))).toBe(false);
  }, 120_000);
});
