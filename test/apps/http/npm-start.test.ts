/**
 * `npm start` with its HTTP server, end to end: a /blend from the fake Discord renders on the
 * built-in worker (stand-in renderer), after which /metrics shows the job's wait and render in
 * the histograms and the queue gauge back at zero, /readyz is ready (database and gateway), and
 * stdout is JSON lines with job ids and without the bot token.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeDiscord } from '../../fake-discord/index.ts';
import { type BotProcess, startBotProcess } from '../../helpers/bot-process.ts';
import { ROOT } from '../../helpers/cli.ts';
import { sample, until } from './helpers.ts';

let bot: BotProcess;
let fake: FakeDiscord;
let child: ChildProcess;
let base = '';

const lines = () => bot.output.split('\n').filter((l) => l.trim());

beforeAll(async () => {
  bot = await startBotProcess('blendfarm-ops-start-', () => ({
    BLENDFARM_RENDERER: join(ROOT, 'farm/fake-renderer.ts'),
    BLENDFARM_HTTP_PORT: '0',
    BLENDFARM_LOG_FORMAT: 'auto',
  }));
  ({ fake, child } = bot);
  const http = lines()
    .map((l) => JSON.parse(l) as { url?: string })
    .find((l) => l.url);
  base = http!.url!;
});

afterAll(() => bot?.stop());

describe('npm start with BLENDFARM_HTTP_PORT', () => {
  it('shows a rendered /blend in the metrics, is ready, and logs JSON lines with job ids', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const alice = fake.createUser({ username: 'alice' });
    fake.addMember(alice);
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red sunset', to: 'a green forest', quality: 'draft', duration: 1 } });
    await handle.waitForOriginal((m) => m.attachments.length > 0, 60_000);

    let text = '';
    await until(async () => {
      text = await (await fetch(`${base}/metrics`)).text();
      return sample(text, 'blendfarm_job_render_seconds_count', { kind: 'blend' }) === 1;
    });
    expect(sample(text, 'blendfarm_job_wait_seconds_count', { kind: 'blend' })).toBe(1);
    // The bot's default model is the demo model; its queue is drained.
    expect(sample(text, 'blendfarm_jobs', { status: 'queued', model: 'demo' })).toBe(0);
    expect(sample(text, 'blendfarm_jobs', { status: 'running', model: 'demo' })).toBe(0);
    expect(sample(text, 'blendfarm_worker_attempt_seconds_count', { kind: 'blend', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'blendfarm_discord_rest_429_total', { scope: 'user' })).toBe(0);
    const ready = (await (await fetch(`${base}/readyz`)).json()) as { ready: boolean; checks: Record<string, string> };
    expect(ready).toEqual({ ready: true, role: 'bot', checks: { database: 'ok', discord: 'ok' } });

    const events = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.find((e) => e.event === 'done' && typeof e.jobId === 'number')).toMatchObject({ kind: 'blend', attempt: 1 });
    expect(bot.output).not.toContain(fake.token);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });
});
