/**
 * A failed render as the channel sees it: the real discord.js client against the fake Discord, a
 * farm on PGlite, and a worker whose fake renderer fails on request ("[fake permanent]": an internal
 * fault; "[fake refuse]": a refusal written for the job's owner). The owner is told what they can
 * act on, and never the worker's own words for a fault (a model path, a driver message, a host);
 * the operator keeps those in the job row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeDiscord, FakeUser, StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { getJob, listJobs } from '../../farm/index.ts';

let running: BotFarm | undefined;
let fake: FakeDiscord;
let alice: FakeUser;

const hasFailed = (m: StoredMessage) => /The render failed/.test(m.content ?? '');

beforeAll(async () => {
  running = await startBotFarm({ members: ['alice'], renderer: { fake: { models: ['demo'], steps: 2, stepMs: 5 } } });
  ({ fake } = running);
  alice = running.users.alice;
}, 60_000);

afterAll(() => stopBotFarm(running ?? {}));

async function failedBlend(from: string) {
  const posted = await fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from, to: 'a calm sea', quality: 'draft', duration: 1 } }).waitForOriginal(hasFailed, 20_000);
  const [job] = await listJobs(running!.farm, { order: 'newest', limit: 1 });
  return { posted, job: (await getJob(running!.farm, job.id))! };
}

describe('a failed render in the channel', () => {
  it('an internal fault: a generic line with the job number; the worker\'s text stays with the operator', async () => {
    const { posted, job } = await failedBlend('[fake permanent] a lighthouse');
    expect(job).toMatchObject({ status: 'failed', error: 'fake permanent failure', userError: null });
    expect(posted.content).toContain(`The render failed after 1 attempt: something went wrong on the farm's side, not with your request; the farm's operator can look it up as job ${job.id}\n`);
    expect(posted.content).not.toContain('fake permanent failure');
    // The farm's fault: other settings would not help.
    expect(posted.content).toMatch(/\nYour reserved GPU-seconds were refunded\. Try again\.$/);
  });

  it('a refusal written for the owner: shown as it is', async () => {
    const { posted, job } = await failedBlend('[fake refuse] a lighthouse');
    expect(job).toMatchObject({ status: 'failed', userError: 'fake refusal: use a smaller size' });
    expect(posted.content).toContain('The render failed after 1 attempt: fake refusal: use a smaller size\n');
    expect(posted.content).toMatch(/\nYour reserved GPU-seconds were refunded\. Try again, or change the settings\.$/);
  });
});
