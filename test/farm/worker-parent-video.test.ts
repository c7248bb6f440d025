// An upscale or an extension needs its parent's finished video. Stored as a file
// (BLENDFARM_ARTIFACT_DIR) on a folder this worker's machine does not have (not shared there, or
// the setting differs), it cannot be read here: that is this worker's fault, not the job's
// (farm/worker.ts attachParent). The job is handed back without using an attempt, the worker
// pauses what needs the same, and a worker that can read the file renders it. It failed every
// attempt in milliseconds with a generic message before.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FarmContext } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { submitFollowUp } from '../../farm/follow-up.ts';
import { getJob, submitJob } from '../../farm/jobs.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { queryRows } from '../../db/client.ts';
import { sql } from 'drizzle-orm';
import { CHEAP_BLEND, farmContext, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { useTempDir } from '../helpers/temp-dir.ts';
import { until } from '../helpers/until.ts';

const MODEL = 'pv-model';

describe('a follow-up whose parent video this worker cannot read (pglite)', () => {
  let dir = '';
  useTempDir('blendfarm-artifacts-', (d) => (dir = d));
  let db: FarmContext['db'];
  useTestFarm('pglite', {}, (t) => {
    db = t.db;
  });

  /** This machine's view of the farm: its own BLENDFARM_ARTIFACT_DIR. */
  const machine = (name: string): FarmContext => {
    const artifactDir = path.join(dir, name);
    fs.mkdirSync(artifactDir, { recursive: true });
    return farmContext(db, { budget: GENEROUS_BUDGET, artifactDir });
  };
  // Offering the model by name: a fault pauses that model's jobs ("*" would take them all the same).
  const worker = (farm: FarmContext, id: string, model: string, lines: string[] = []) =>
    new FarmWorker({ farm, renderer: new FakeRenderer({ models: [model], steps: 1, stepMs: 1 }), id, log: (line) => lines.push(line), faultPause: { firstMs: 60_000, maxMs: 60_000 } });
  const fileOf = async (jobId: number) => (await queryRows<{ path: string }>(db.db, sql`select path from artifacts where job_id = ${jobId}`))[0]!.path;

  it('is handed back without using an attempt, and a worker that reads the file renders it (upscale, then extend)', async () => {
    const shared = machine('shared');
    const other = machine('other');
    // Machine 1 renders the blend: its video is a file in its folder.
    const first = worker(shared, 'machine1-gpu0', MODEL);
    await first.start();
    const blend = await submitJob(shared, { kind: 'blend', userId: 'pv-owner', params: { ...CHEAP_BLEND, model: MODEL } });
    try {
      expect((await waitForJob(shared, blend.id, { timeoutMs: 20_000 })).status).toBe('done');
    } finally {
      await first.stop('release', 0);
    }
    const file = await fileOf(blend.id);
    expect(fs.existsSync(path.join(shared.config.artifactDir!, file))).toBe(true);

    // Machine 2 has another folder: it cannot read that file.
    const lines: string[] = [];
    const blind = worker(other, 'machine2-gpu0', MODEL, lines);
    await blind.start();
    let reader: FarmWorker | undefined;
    try {
      const upscale = await submitFollowUp(other, { kind: 'upscale', userId: 'pv-owner', parentJobId: blend.id });
      const said = (id: number) => lines.find((l) => l.startsWith(`job ${id}: this worker cannot render it`));
      await until(() => said(upscale.id) !== undefined, 20_000, 'the worker fault');
      expect(said(upscale.id)).toBe(
        `job ${upscale.id}: this worker cannot render it (cannot read the video of job ${blend.id} that it upscales: ${path.join(other.config.artifactDir!, file)} (ENOENT); ` +
          `set BLENDFARM_ARTIFACT_DIR on this worker to the folder the farm keeps videos in (it is ${other.config.artifactDir} here), one folder every machine reads and writes); ` +
          'handed back to the queue without using an attempt, for another worker. This worker claims no job on upscales for 60 s (fault 1 in a row), then tries one again',
      );
      expect(await getJob(other, upscale.id)).toMatchObject({ status: 'queued', attempts: 0 });
      expect(blind.stats).toMatchObject({ failedAttempts: 0, released: 1 });
      expect(blind.faultCheck()).toMatch(/^claims no job on upscales for \d+ s: cannot read the video of job/);

      // A worker on a machine with the shared folder renders it, on its first attempt.
      reader = worker(shared, 'machine1-gpu1', MODEL);
      await reader.start();
      expect(await waitForJob(shared, upscale.id, { timeoutMs: 20_000 })).toMatchObject({ status: 'done', attempts: 1, workerId: 'machine1-gpu1' });
      await reader.stop('release', 0);
      reader = undefined;

      // An extension of the blend: the same, paused on its model only.
      const extend = await submitFollowUp(other, { kind: 'extend', userId: 'pv-owner', parentJobId: blend.id, options: { prompts: ['a green heron'] } });
      await until(() => said(extend.id) !== undefined, 20_000, 'the worker fault');
      expect(said(extend.id)).toContain(`(cannot read the video of job ${blend.id} that it continues: ${path.join(other.config.artifactDir!, file)} (ENOENT); `);
      expect(said(extend.id)).toContain(`This worker claims no job on model "${MODEL}" for 60 s`);
      expect(await getJob(other, extend.id)).toMatchObject({ status: 'queued', attempts: 0 });
      reader = worker(shared, 'machine1-gpu2', MODEL);
      await reader.start();
      expect(await waitForJob(shared, extend.id, { timeoutMs: 20_000 })).toMatchObject({ status: 'done', attempts: 1, workerId: 'machine1-gpu2' });
    } finally {
      await reader?.stop('release', 0);
      await blind.stop('release', 0);
    }
  });
});
