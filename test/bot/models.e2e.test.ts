/**
 * Picking a model from Discord, end to end: the real discord.js client against the fake Discord, a
 * real farm on PGlite, and two real render workers running the engine — one offering the demo
 * model under the farm's default id, one offering it as a second model ("sdxl-turbo", as a worker
 * with BLENDFARM_MODEL_ID does). The `model` option's autocomplete lists what online workers offer;
 * a job naming a model renders on the worker that has it, and its re-roll keeps it; a model no
 * worker has is refused privately; a server's default model applies unless the member picks one,
 * and to a /blend with pictures only where it can start or end at one.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateReason } from '../helpers/replies.ts';
import { buttonsOf, type FakeDiscord, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { countRows } from '../helpers/db.ts';
import { cancelJob, createThreadRenderer, DEFAULT_MODELS, getJob, listJobs, startLocalWorkers, type FarmContext, type Job, type LocalWorkers, type ThreadRenderer } from '../../farm/index.ts';
import { markWorkerStopped, registerWorker } from '../../farm/worker-registry.ts';
import { testModelDir } from '../../models/paths.ts';

const RENDER_TIMEOUT = 90_000;
const SECOND = 'sdxl-turbo';
const MANAGE_GUILD = 1n << 5n;
const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));

let running: BotFarm | undefined;
let second: ThreadRenderer | undefined;
let secondWorkers: LocalWorkers | undefined;
let fake: FakeDiscord;
let alice: FakeUser;
let farm: FarmContext;

beforeAll(async () => {
  running = await startBotFarm({ members: ['alice'], renderer: { engine: { modelDir: testModelDir('demo') } } });
  ({ fake, farm } = running);
  alice = running.users.alice;
  second = await createThreadRenderer({ module: 'apps/worker/engine-renderer.ts', rendererOptions: { modelDir: testModelDir('demo'), modelId: SECOND }, threads: 1 });
  secondWorkers = await startLocalWorkers(farm, { renderer: second, idPrefix: 'turbo', log: () => {} });
}, 120_000);

afterAll(async () => {
  await secondWorkers?.stop('release');
  await second?.close();
  if (running) await stopBotFarm(running);
});

const blend = (options: Record<string, unknown>) =>
  fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red fox', to: 'a blue whale', quality: 'draft', duration: 1, ...options } });

/** The job a command made, once its queued message shows. */
async function queuedJob(handle: InteractionHandle): Promise<{ job: Job; message: StoredMessage }> {
  const message = await handle.waitForOriginal((m) => /#\d+/.test(m.content ?? '') && !m.ephemeral, 20_000);
  const id = Number(/#(\d+)/.exec(message.content ?? '')![1]);
  return { job: (await getJob(farm, id))!, message };
}

describe('the model option', () => {
  let finished: StoredMessage;
  let parentId: number;

  it('suggests the models online workers offer, matching what was typed', async () => {
    const all = fake.sendAutocomplete({ commandName: 'blend', user: alice, focused: 'model' });
    expect(await all.waitForChoices()).toEqual([
      { name: `${DEFAULT_MODELS.text} · 1 CPU worker`, value: DEFAULT_MODELS.text },
      { name: `${SECOND} · 1 CPU worker`, value: SECOND },
    ]);
    // Any case, anywhere in the id; required options not filled in yet; /movie and /settings defaults alike.
    expect(await fake.sendAutocomplete({ commandName: 'blend', user: alice, focused: 'model', typed: 'TURBO' }).waitForChoices()).toEqual([{ name: `${SECOND} · 1 CPU worker`, value: SECOND }]);
    expect(await fake.sendAutocomplete({ commandName: 'movie', user: alice, focused: 'model', typed: 'nothing like it' }).waitForChoices()).toEqual([]);
    const settings = fake.sendAutocomplete({ commandName: 'settings', subcommand: 'defaults', user: alice, focused: 'model', typed: 'sdxl', memberPermissions: MANAGE_GUILD });
    expect(await settings.waitForChoices()).toEqual([{ name: `${SECOND} · 1 CPU worker`, value: SECOND }]);
  });

  it('renders a /blend with model:<second> on the worker that has it, and says which model', async () => {
    const handle = blend({ model: SECOND, seed: 5 });
    expect((await handle.waitForResponse()).type).toBe(5);
    const { job: queued, message } = await queuedJob(handle);
    expect(message.content).toMatch(new RegExp(`Queued: .*, on model ${SECOND}\\.`));
    expect(queued.params.model).toBe(SECOND);
    expect(queued.model).toBe(SECOND);
    finished = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    expect(finished.content).toMatch(new RegExp(`seeds 5, 6 · model ${SECOND} ·`));
    parentId = queued.id;
    const done = (await getJob(farm, parentId))!;
    expect([done.status, done.workerId]).toEqual(['done', 'turbo-1']);
  });

  it('a re-roll keeps its parent’s model', async () => {
    const press = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: alice });
    expect((await press.waitForResponse()).type).toBe(5);
    const done = await press.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const [reroll] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([reroll.kind, reroll.parentJobId, reroll.params.model, reroll.workerId, reroll.status]).toEqual(['reroll', parentId, SECOND, 'turbo-1', 'done']);
    expect(done.content).toMatch(new RegExp(`model ${SECOND}`));
  });

  it('refuses a model no worker offers privately, naming it, and queues nothing', async () => {
    const before = await countRows(running!.db, 'jobs');
    const handle = blend({ model: 'nobody-has-it' });
    expect(await privateReason(handle)).toBe(
      "No render worker online has the model `nobody-has-it` right now, so nothing was queued: pick one from the list the `model` option offers, or ask the farm's operator.",
    );
    expect(await countRows(running!.db, 'jobs')).toBe(before);
    // A typo that is not a model id at all is refused before anything is answered publicly.
    const typo = blend({ model: 'sdxl turbo' });
    const refusal = await typo.waitForOriginal(() => true, 10_000);
    expect(refusal.ephemeral).toBe(true);
    expect(refusal.content).toMatch(/^That request can't be rendered: `model` must be a model id of/);
    expect(await countRows(running!.db, 'jobs')).toBe(before);
  });

  it('/settings defaults model applies to /blend and /movie; a member’s own model wins', async () => {
    const set = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { model: SECOND }, memberPermissions: MANAGE_GUILD });
    expect((await set.waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000)).content).toMatch(new RegExp(`^Render defaults: model ${SECOND}\\.`));
    const shown = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'show', memberPermissions: MANAGE_GUILD });
    expect((await shown.waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000)).content).toMatch(new RegExp(`Render defaults: model ${SECOND}\\.`));
    try {
      const byDefault = await queuedJob(blend({}));
      expect(byDefault.job.params.model).toBe(SECOND);
      expect(byDefault.message.content).toMatch(new RegExp(`on model ${SECOND}`));
      const movie = await queuedJob(fake.sendSlashCommand({ commandName: 'movie', user: alice, options: { prompts: 'a | b | c', quality: 'draft', duration: 1 } }));
      expect(movie.job.params.model).toBe(SECOND);
      const own = await queuedJob(blend({ model: DEFAULT_MODELS.text }));
      expect(own.job.params.model).toBe(DEFAULT_MODELS.text);
      expect(own.message.content).not.toMatch(/model/);
      for (const { job } of [byDefault, movie, own]) await cancelJob(farm, job.id);
    } finally {
      const reset = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { reset: true }, memberPermissions: MANAGE_GUILD });
      await reset.waitForOriginal((m) => /Render defaults: none/.test(m.content ?? ''), 10_000);
    }
    // A default no worker offers is stored, with a warning; a malformed one is refused and changes nothing.
    const absent = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { model: 'nobody-has-it' }, memberPermissions: MANAGE_GUILD });
    expect((await absent.waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000)).content).toMatch(/^⚠️ No render worker online offers the model `nobody-has-it` right now/);
    const bad = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { model: 'no good' }, memberPermissions: MANAGE_GUILD });
    expect((await bad.waitForOriginal((m) => /can't be set/.test(m.content ?? ''), 10_000)).content).toBe(
      'That default can\'t be set, so nothing was changed: `model` must be a model id of 1 to 100 letters, digits, ".", "_" or "-" (got "no good").',
    );
    const reset = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { reset: true }, memberPermissions: MANAGE_GUILD });
    await reset.waitForOriginal((m) => /Render defaults: none/.test(m.content ?? ''), 10_000);
    expect(buttonsOf(finished).length).toBeGreaterThan(0);
    expect(fake.unhandled).toEqual([]);
    expect(fake.serverErrors).toEqual([]);
  });

  it('a server default that cannot start at a picture: /settings defaults says so, and a /blend with pictures renders on the farm’s main model', async () => {
    // A worker offering a text-only model (no VAE encoder), as a row: it claims nothing.
    const TEXT_ONLY = 'sd-text';
    await registerWorker(farm, { id: 'text-only-1', host: 'h', pid: 1, concurrency: 1, capabilities: { models: [TEXT_ONLY], modelAbilities: { [TEXT_ONLY]: ['text'] }, maxPixels: 1 << 22, executionProvider: 'cpu' } });
    try {
      const set = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { model: TEXT_ONLY }, memberPermissions: MANAGE_GUILD });
      expect((await set.waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000)).content).toMatch(
        new RegExp(`^⚠️ The model \`${TEXT_ONLY}\` can't start or end a video at a picture on any render worker online right now: a /blend with \`from_image\` or \`to_image\` and no \`model\` of its own uses the farm's main model instead\.\nRender defaults: model ${TEXT_ONLY}\.`),
      );
      const withPicture = await queuedJob(blend({ from_image: { filename: 'picture.png', bytes: PHOTO, contentType: 'image/png' } }));
      expect(withPicture.job.params.model).toBe(DEFAULT_MODELS.picture);
      const fromText = await queuedJob(blend({}));
      expect(fromText.job.params.model).toBe(TEXT_ONLY);
      for (const { job } of [withPicture, fromText]) await cancelJob(farm, job.id);
    } finally {
      const reset = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { reset: true }, memberPermissions: MANAGE_GUILD });
      await reset.waitForOriginal((m) => /Render defaults: none/.test(m.content ?? ''), 10_000);
      await markWorkerStopped(farm, 'text-only-1');
    }
    expect(fake.unhandled).toEqual([]);
    expect(fake.serverErrors).toEqual([]);
  });
});
