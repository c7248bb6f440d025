// Delays past what one Node timer takes (2^31 - 1 ms, about 24.8 days): Node fires those after 1 ms
// with a TimeoutOverflowWarning, so a render time limit of 35 days stopped every render at once and
// a monthly retention ran back to back. farm/timers.ts waits them out in steps; the timer settings
// refuse values past 24 days with a message that says the bound; a worker whose render time limit is
// past 24.8 days (a large minimum, or a huge reservation × the factor) renders its jobs normally.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.ts';
import { MAX_WAIT_SECONDS } from '../../config/settings.ts';
import { type FarmContext, farmConfigFrom, renderTimeLimitSeconds } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { every } from '../../farm/housekeeping.ts';
import { listJobs, submitJob } from '../../farm/jobs.ts';
import { delay, MAX_TIMER_MS, startInterval, startTimeout } from '../../farm/timers.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { BACKENDS, CHEAP_BLEND, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const DAY_MS = 86_400_000;

/** Collects the process warnings emitted while `body` runs (TimeoutOverflowWarning among them). */
async function warningsDuring(body: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (warning: Error) => seen.push(warning.name);
  process.on('warning', listener);
  try {
    await body();
    // Node emits warnings on the next tick.
    await sleep(10);
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

describe('timers past 24.8 days (farm/timers.ts)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a real timeout of 35 days does not fire at once, and Node is never asked for more than it takes', async () => {
    let fired = 0;
    const warnings = await warningsDuring(async () => {
      const timer = startTimeout(() => fired++, 35 * DAY_MS);
      const interval = startInterval(() => fired++, 30 * DAY_MS);
      const stop = every(30 * 86_400, async () => void fired++);
      await sleep(100);
      timer.clear();
      interval.clear();
      await stop();
    });
    expect(fired).toBe(0);
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  it('fires once the whole delay has passed, not a step earlier', () => {
    vi.useFakeTimers();
    const fired: number[] = [];
    const start = Date.now();
    startTimeout(() => fired.push(Date.now() - start), 35 * DAY_MS);
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(35 * DAY_MS - MAX_TIMER_MS - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([35 * DAY_MS]);
    vi.advanceTimersByTime(100 * DAY_MS);
    expect(fired).toHaveLength(1);
  });

  it('cleared, it never fires, also between its steps', () => {
    vi.useFakeTimers();
    let fired = 0;
    const early = startTimeout(() => fired++, 35 * DAY_MS);
    early.clear();
    const late = startTimeout(() => fired++, 35 * DAY_MS);
    vi.advanceTimersByTime(30 * DAY_MS);
    late.clear();
    vi.advanceTimersByTime(100 * DAY_MS);
    expect(fired).toBe(0);
  });

  it('an interval past the limit runs once per period; a short one is a plain interval', () => {
    vi.useFakeTimers();
    const long: number[] = [];
    const short: number[] = [];
    const start = Date.now();
    const b = startInterval(() => short.push(Date.now() - start), 1000);
    vi.advanceTimersByTime(10_500);
    b.clear();
    expect(short).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => s * 1000));
    const a = startInterval(() => long.push(Date.now() - start), 30 * DAY_MS);
    vi.advanceTimersByTime(95 * DAY_MS);
    a.clear();
    expect(long).toEqual([30, 60, 90].map((days) => 10_500 + days * DAY_MS));
    vi.advanceTimersByTime(100 * DAY_MS);
    expect(long).toHaveLength(3);
    expect(short).toHaveLength(10);
  });

  it('a monthly retention interval runs monthly', async () => {
    vi.useFakeTimers();
    let runs = 0;
    const stop = every(2_592_000, async () => void runs++);
    vi.advanceTimersByTime(29 * DAY_MS);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(DAY_MS);
    expect(runs).toBe(1);
    await stop();
  });

  it('delay waits; NaN and negative delays are 0 and Infinity never fires', async () => {
    vi.useFakeTimers();
    let done = false;
    void delay(40 * DAY_MS).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(40 * DAY_MS - 1);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    const fired: string[] = [];
    startTimeout(() => fired.push('nan'), Number.NaN);
    startTimeout(() => fired.push('negative'), -5);
    startTimeout(() => fired.push('infinity'), Infinity);
    vi.advanceTimersByTime(365 * DAY_MS);
    expect(fired.sort()).toEqual(['nan', 'negative']);
  });
});

describe('timer settings: upper bounds', () => {
  const refused = (env: Record<string, string>): string => {
    try {
      loadConfig(env);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).problems.join('\n');
    }
    throw new Error(`accepted ${JSON.stringify(env)}`);
  };

  it('refuse a wait past 24 days, saying the bound', () => {
    expect(MAX_WAIT_SECONDS).toBe(2_073_600);
    expect(refused({ BLENDFARM_PRUNE_INTERVAL_SECONDS: '2592000' })).toContain(
      'BLENDFARM_PRUNE_INTERVAL_SECONDS="2592000" must be at most 2073600 (seconds: 24 days, the longest wait a setting may ask for).',
    );
    expect(refused({ BLENDFARM_RENDER_TIMEOUT_MIN_SECONDS: '3000000' })).toMatch(/^BLENDFARM_RENDER_TIMEOUT_MIN_SECONDS="3000000" must be at most 2073600 \(seconds: 24 days/);
    expect(refused({ BLENDFARM_SHUTDOWN_GRACE_SECONDS: '9999999' })).toMatch(/must be at most 2073600 \(seconds/);
    expect(refused({ BLENDFARM_HEARTBEAT_SECONDS: '3000000', BLENDFARM_LEASE_SECONDS: '9000000' })).toMatch(/BLENDFARM_HEARTBEAT_SECONDS="3000000" must be at most 2073600/);
    for (const env of ['BLENDFARM_POLL_INTERVAL_MS', 'BLENDFARM_PROGRESS_THROTTLE_MS', 'BLENDFARM_ABORT_GRACE_MS']) {
      expect(refused({ [env]: '2147483648' })).toContain(`${env}="2147483648" must be at most 2073600000 (milliseconds: 24 days, the longest wait a setting may ask for).`);
    }
    // Below the minimum, as before.
    expect(refused({ BLENDFARM_POLL_INTERVAL_MS: '5' })).toContain('must be a number of at least 10');
    expect(refused({ BLENDFARM_PRUNE_INTERVAL_SECONDS: '-1' })).toContain('must be a number of at least 0');
  });

  it('take values up to the bound, and 0 where 0 means off', () => {
    const config = farmConfigFrom(
      loadConfig({ BLENDFARM_PRUNE_INTERVAL_SECONDS: '2073600', BLENDFARM_RENDER_TIMEOUT_MIN_SECONDS: '2073600', BLENDFARM_POLL_INTERVAL_MS: '2073600000', BLENDFARM_HEARTBEAT_SECONDS: '0.1' }),
    );
    expect(config).toMatchObject({ pruneIntervalSeconds: 2_073_600, renderTimeoutMinSeconds: 2_073_600, pollIntervalMs: 2_073_600_000, heartbeatSeconds: 0.1 });
    expect(farmConfigFrom(loadConfig({ BLENDFARM_PRUNE_INTERVAL_SECONDS: '0' })).pruneIntervalSeconds).toBe(0);
  });
});

describe.each(BACKENDS)('a render time limit past 24.8 days on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ farm } = t));

  it.each([
    ['a large minimum', { renderTimeoutMinSeconds: 3_000_000 }],
    ['a huge reservation × the factor', { renderTimeoutMinSeconds: 1, renderTimeoutFactor: 10_000_000 }],
  ])('does not stop the render at once (%s)', async (name, limits) => {
    const model = name.startsWith('a large') ? 'big-min' : 'big-factor';
    const config = { ...farm.config, ...limits };
    const lines: string[] = [];
    const worker = new FarmWorker({ farm: { ...farm, config }, renderer: new FakeRenderer({ models: [model], steps: 5, stepMs: 60 }), id: `w-${model}`, log: (l) => lines.push(l) });
    let reserved = 0;
    const warnings = await warningsDuring(async () => {
      await worker.start();
      const job = await submitJob(farm, { kind: 'blend', userId: `u-${model}`, params: { ...CHEAP_BLEND, model } });
      reserved = job.reservedGpuSeconds;
      await waitForJob(farm, job.id, { timeoutMs: 20_000 });
      await worker.stop();
    });
    expect(renderTimeLimitSeconds(config, reserved) * 1000).toBeGreaterThan(MAX_TIMER_MS);
    const [done] = await listJobs(farm, { userId: `u-${model}` });
    expect(done).toMatchObject({ status: 'done', attempts: 1, error: null });
    expect(lines.some((l) => l.includes('its time limit'))).toBe(false);
    expect(worker.stats).toMatchObject({ completed: 1, failedAttempts: 0 });
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });
});
