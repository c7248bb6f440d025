// The status page in a real headless browser (Debian's chromium driven by playwright-core): it
// loads without console errors, shows a job appear and finish live (server-sent events), hides
// a private server's prompts in the public view and shows them with the operator token.
// Chromium: /usr/bin/chromium (`apt-get install -y chromium`; .ci/run installs it when missing),
// or the path in BLENDFARM_CHROMIUM.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_SNAPSHOT_MAX_AGE_MS } from '../../../apps/http/server.ts';
import { cancelJob, OPERATOR_CANCEL_REASON, submitJob } from '../../../farm/index.ts';
import { CHEAP_BLEND } from '../../helpers/db.ts';
import { type OpsFarm, startOpsFarm, STATUS_TOKEN } from './helpers.ts';

const CHROMIUM = process.env.BLENDFARM_CHROMIUM ?? '/usr/bin/chromium';

describe('status page in headless chromium', () => {
  let f: OpsFarm;
  let browser: BrowserContext;
  let profile: string;
  const problems: string[] = [];

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`No chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium; .ci/run does this) or set BLENDFARM_CHROMIUM to a Chromium binary.`);
    }
    f = await startOpsFarm('pglite');
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-chromium-'));
    // A fresh profile directory each run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
  });

  async function open(hash = '', on: OpsFarm = f): Promise<Page> {
    const page = await browser.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${on.ops.server.url}/status${hash}`);
    await page.locator('#connection.live').waitFor();
    return page;
  }

  it('shows a job appearing and finishing, live, without console errors', async () => {
    const page = await open();
    expect(await page.title()).toBe('Blendfarm status');
    await page.locator('#view', { hasText: 'public view' }).waitFor();

    // Nothing can run it yet: it appears as waiting.
    const job = await submitJob(f.farm, { kind: 'blend', userId: 'alice', guildId: 'g-private', params: { ...CHEAP_BLEND, prompts: ['a quiet harbour', 'a loud market'], model: 'page' } });
    const waiting = page.locator(`#queued tr[data-job-id="${job.id}"]`);
    await waiting.waitFor();
    expect(await waiting.textContent()).toContain('hidden (private server)');
    expect(await page.locator('body').textContent()).not.toContain('a quiet harbour');
    await page.locator('#queue tr[data-model="page"]', { hasText: '1' }).waitFor();

    // A worker takes it: rendering, with its worker (in the public view "worker 1", not its id), then finished.
    await f.worker('page', { steps: 6, stepMs: 150 });
    await page.locator(`#running tr[data-job-id="${job.id}"]`, { hasText: 'worker 1' }).waitFor();
    await page.locator('#workers tr[data-worker-id="worker 1"]', { hasText: 'other' }).waitFor();
    expect(await page.locator('body').textContent()).not.toContain('w-page');
    await page.locator(`#recent tr[data-job-id="${job.id}"][data-status="done"]`).waitFor({ timeout: 20_000 });
    await page.locator(`#running tr[data-job-id="${job.id}"]`).waitFor({ state: 'detached' });
    expect(await page.locator('#chart rect').count()).toBeGreaterThan(0);

    await page.close();
    expect(problems).toEqual([]);
  });

  it('shows private prompts with the operator token', async () => {
    const page = await open(`#token=${encodeURIComponent(STATUS_TOKEN)}`);
    await page.locator('#view', { hasText: 'full view' }).waitFor();
    await page.locator('#recent', { hasText: 'a quiet harbour → a loud market' }).waitFor();
    // The operator sees the worker's id and provider.
    await page.locator('#workers tr[data-worker-id="w-page"]', { hasText: 'fake' }).waitFor();
    // The token does not stay in the address bar.
    expect(page.url()).not.toContain(STATUS_TOKEN);
    await page.close();
    expect(problems).toEqual([]);
  });

  it('ends on a snapshot made after the last job event, though the server serves one again for a while', async () => {
    const shared = await startOpsFarm('pglite', { statusSnapshotMaxAgeMs: STATUS_SNAPSHOT_MAX_AGE_MS });
    try {
      const idle = await shared.worker('parked');
      await idle.stop('release', 0);
      const page = await open('', shared);
      const job = await submitJob(shared.farm, { kind: 'blend', userId: 'bob', params: { ...CHEAP_BLEND, model: 'parked' } });
      // Well before the page's own 15 s refresh: the refresh after the events' burst shows it.
      await page.locator(`#queued tr[data-job-id="${job.id}"]`).waitFor({ timeout: 6000 });
      await cancelJob(shared.farm, job.id, OPERATOR_CANCEL_REASON);
      await page.locator(`#recent tr[data-job-id="${job.id}"][data-status="cancelled"]`).waitFor({ timeout: 6000 });
      await page.locator(`#queued tr[data-job-id="${job.id}"]`).waitFor({ state: 'detached', timeout: 1000 });
      await page.close();
      expect(problems).toEqual([]);
    } finally {
      await shared.close();
    }
  });
});
