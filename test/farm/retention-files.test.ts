// Retention and videos stored as files (artifacts.path, in BLENDFARM_ARTIFACT_DIR): a video row goes
// only with its file. A process that cannot reach the file (no BLENDFARM_ARTIFACT_DIR, a folder that
// is not there, a path outside it) keeps the row, and the job it belongs to, for a process that can,
// and says so; a removal that fails keeps the row (the next run tries again) and names the file and
// its error; the size cap counts only what was freed. Before, every worker without the folder (one
// keeping videos in the database, or `npm run farm -- prune` on an admin machine) deleted the rows
// and left their files on the shared disk for good, and a failed removal was swallowed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { farmCli } from '../../apps/farm-cli/main.ts';
import { queryRows, type FarmDb } from '../../db/client.ts';
import type { FarmConfigOverrides, FarmContext } from '../../farm/config.ts';
import { pruneOnce } from '../../farm/housekeeping.ts';
import { describePrune, PRUNE_BATCH_ROWS, pruneFarm } from '../../farm/retention.ts';
import { BACKENDS, countRows, farmContext } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const OFF = { artifactDays: 0, jobDays: 0, maxArtifactBytes: 0, unrenderedInputHours: 0 };

describe.each(BACKENDS)('retention of videos stored as files on %s', (backend) => {
  let db: FarmDb;
  let dir: string;
  useTestFarm(backend, {}, (t) => ({ db } = t));

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-retention-files-'));
    await db.db.execute(sql`delete from jobs`);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const farmWith = (retention: FarmConfigOverrides['retention'], artifactDir: string | undefined): FarmContext =>
    farmContext(db, { retention: { ...OFF, ...retention }, artifactDir });

  /** A done job finished `daysAgo` days ago with a video of `size` bytes: a file `name` in the artifact folder, or (no name) bytes in the database. */
  async function video(daysAgo: number, size: number, name?: string): Promise<number> {
    await db.db.execute(sql`insert into users (id) values ('keeper') on conflict do nothing`);
    const [{ id }] = await queryRows<{ id: number }>(
      db.db,
      sql`insert into jobs (kind, user_id, params, model, pixels, status, finished_at)
          values ('blend', 'keeper', '{}'::jsonb, 'm', 1, 'done', now() - make_interval(secs => ${daysAgo * 86_400}::float8)) returning id::float8 as id`,
    );
    if (name) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      fs.writeFileSync(path.join(dir, name), Buffer.alloc(size, 1));
    }
    await db.db.execute(
      sql`insert into artifacts (job_id, format, mime, size_bytes, path, data) values (${id}, 'mp4', 'video/mp4', ${size}, ${name ?? null}, ${name ? null : Buffer.alloc(size, 7)})`,
    );
    return id;
  }
  const videos = () => countRows(db, 'artifacts');

  it('a process without BLENDFARM_ARTIFACT_DIR keeps an old video file and its row, and says so; one with it deletes both', async () => {
    await video(40, 100, 'job-file.mp4');
    await video(40, 50);
    const lines: string[] = [];
    await pruneOnce(farmWith({ artifactDays: 30 }, undefined), (line) => lines.push(line));
    expect(lines).toEqual([
      'retention: Deleted 1 video(s) (0.0 MB; 0 for the size cap), 0 job(s), 0 event(s); kept 1 video file(s) this process cannot reach (BLENDFARM_ARTIFACT_DIR is not set here): ' +
        'set BLENDFARM_ARTIFACT_DIR to the folder the workers keep videos in, or leave them to a process that has it.',
    ]);
    expect(await videos()).toBe(1);
    expect(fs.readdirSync(dir)).toEqual(['job-file.mp4']);

    // Nothing else to delete: still said, every run, while the file waits.
    expect(await pruneFarm(farmWith({ artifactDays: 30 }, undefined))).toMatchObject({ artifactsByAge: 0, artifactBytes: 0, keptFiles: 1, files: 0 });

    const report = await pruneFarm(farmWith({ artifactDays: 30 }, dir));
    expect(report).toMatchObject({ artifactsByAge: 1, artifactBytes: 100, files: 1, keptFiles: 0, keptFilesReason: null, filesFailed: 0 });
    expect(await videos()).toBe(0);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('`npm run farm -- prune` without BLENDFARM_ARTIFACT_DIR: the dry run and the run count only what goes, and name what stays', async () => {
    await video(40, 100, 'job-cli.mp4');
    await video(40, 50);
    const env = { BLENDFARM_RETENTION_ARTIFACT_DAYS: '30', BLENDFARM_RETENTION_JOB_DAYS: '0', BLENDFARM_RETENTION_MAX_ARTIFACT_BYTES: '0' };
    const out: string[] = [];
    const io = { db, env, stdout: (t: string) => out.push(t), stderr: () => {} };
    expect(await farmCli(['prune', '--dry-run', '--json'], io)).toBe(0);
    expect(JSON.parse(out.pop()!)).toMatchObject({ dryRun: true, artifactsByAge: 1, artifactBytes: 50, files: 0, keptFiles: 1, keptFilesReason: 'BLENDFARM_ARTIFACT_DIR is not set here' });
    expect(await farmCli(['prune', '--dry-run'], io)).toBe(0);
    expect(out.pop()).toMatch(/^Would delete 1 video\(s\) \(0\.0 MB; 0 for the size cap\), 0 job\(s\), 0 event\(s\); would keep 1 video file\(s\) this process cannot reach \(BLENDFARM_ARTIFACT_DIR is not set here\)/);
    expect(await videos()).toBe(2);
    expect(await farmCli(['prune'], io)).toBe(0);
    expect(out.pop()).toMatch(/^Deleted 1 video\(s\) \(0\.0 MB; 0 for the size cap\), 0 job\(s\), 0 event\(s\); kept 1 video file\(s\) this process cannot reach/);
    expect(await videos()).toBe(1);
    expect(fs.readdirSync(dir)).toEqual(['job-cli.mp4']);
  });

  it('keeps an old job whose video file it cannot reach (the cascade would drop the row), and deletes it where it can', async () => {
    const fileJob = await video(400, 10, 'job-old.mp4');
    const dbJob = await video(400, 10);
    const none = await pruneFarm(farmWith({ jobDays: 90 }, undefined));
    expect(none).toMatchObject({ jobs: 1, artifactsByAge: 1, keptFiles: 1 });
    expect(await countRows(db, 'jobs', sql`id = ${fileJob}`)).toBe(1);
    expect(await countRows(db, 'jobs', sql`id = ${dbJob}`)).toBe(0);
    expect(await videos()).toBe(1);

    expect(await pruneFarm(farmWith({ jobDays: 90 }, dir))).toMatchObject({ jobs: 1, artifactsByAge: 1, files: 1, keptFiles: 0 });
    expect(await countRows(db, 'jobs')).toBe(0);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('keeps the files when BLENDFARM_ARTIFACT_DIR is not a folder here (a mount missing) or the path lies outside it', async () => {
    await video(40, 10, 'job-a.mp4');
    const missing = path.join(dir, 'not-mounted');
    const report = await pruneFarm(farmWith({ artifactDays: 30 }, missing));
    expect(report).toMatchObject({ artifactsByAge: 0, keptFiles: 1, keptFilesReason: `BLENDFARM_ARTIFACT_DIR (${missing}) cannot be read here (ENOENT)` });
    expect(await videos()).toBe(1);

    const inner = path.join(dir, 'inner');
    fs.mkdirSync(inner);
    await db.db.execute(sql`update artifacts set path = '../job-a.mp4'`);
    expect(await pruneFarm(farmWith({ artifactDays: 30 }, inner))).toMatchObject({ artifactsByAge: 0, keptFiles: 1, keptFilesReason: `stored outside BLENDFARM_ARTIFACT_DIR (${inner}): ../job-a.mp4` });
    expect(await videos()).toBe(1);
    expect(fs.existsSync(path.join(dir, 'job-a.mp4'))).toBe(true);
  });

  it('a failed removal keeps the row and is logged with the file and its error; the size cap counts only what was freed; the next run retries', async () => {
    // Oldest first: the stuck file (its path is a folder, so removing it fails), then two newer videos.
    await video(3, 100, 'stuck.mp4/inside');
    await db.db.execute(sql`update artifacts set path = 'stuck.mp4'`);
    await video(2, 100, 'job-b.mp4');
    await video(1, 100);
    // A cap of 200 bytes: only the oldest is over it.
    const farm = farmWith({ maxArtifactBytes: 200 }, dir);
    const lines: string[] = [];
    await pruneOnce(farm, (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^retention: Deleted 0 video\(s\) \(0\.0 MB; 0 for the size cap\), 0 job\(s\), 0 event\(s\); could not remove 1 file\(s\), so their videos stay and the next run tries again \(check the folder's mount and permissions\): /);
    expect(lines[0]).toContain(`${path.join(dir, 'stuck.mp4')} (`);
    // Nothing newer went in its place, and nothing counts as freed.
    expect(await videos()).toBe(3);
    expect(fs.existsSync(path.join(dir, 'job-b.mp4'))).toBe(true);

    const again = await pruneFarm(farm);
    expect(again).toMatchObject({ artifactsBySize: 0, artifactBytes: 0, files: 0, filesFailed: 1, fileErrors: [{ file: path.join(dir, 'stuck.mp4') }] });
    expect(again.fileErrors[0].error).not.toBe('');

    // Fixed: the next run removes it.
    fs.rmSync(path.join(dir, 'stuck.mp4'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'stuck.mp4'), Buffer.alloc(100, 1));
    const fixed = await pruneFarm(farm);
    expect(fixed).toMatchObject({ artifactsBySize: 1, artifactBytes: 100, files: 1, filesFailed: 0 });
    expect(describePrune(fixed)).toBe('Deleted 1 video(s) (0.0 MB; 1 for the size cap), 0 job(s), 0 event(s); removed 1 file(s).');
    expect(await videos()).toBe(2);
  });

  it('goes on past a whole batch of files it keeps to the videos it can delete', async () => {
    const kept = PRUNE_BATCH_ROWS + 5;
    await db.db.execute(sql`insert into users (id) values ('keeper') on conflict do nothing`);
    await db.db.execute(sql`insert into jobs (kind, user_id, params, model, pixels, status, finished_at)
      select 'blend', 'keeper', '{}'::jsonb, 'file', 1, 'done', now() - interval '40 days' from generate_series(1, ${kept})`);
    await db.db.execute(sql`insert into artifacts (job_id, format, mime, size_bytes, path) select id, 'mp4', 'video/mp4', 1, 'job-' || id || '.mp4' from jobs where model = 'file'`);
    for (let i = 0; i < 3; i++) await video(40, 10);
    const report = await pruneFarm(farmWith({ artifactDays: 30 }, undefined));
    expect(report).toMatchObject({ artifactsByAge: 3, artifactBytes: 30, keptFiles: kept });
    expect(await videos()).toBe(kept);
  });

  it('deletes the row of a video whose file is gone already', async () => {
    await video(40, 10, 'job-gone.mp4');
    fs.rmSync(path.join(dir, 'job-gone.mp4'));
    const report = await pruneFarm(farmWith({ artifactDays: 30 }, dir));
    expect(report).toMatchObject({ artifactsByAge: 1, files: 0, filesAlreadyGone: 1, filesFailed: 0 });
    expect(describePrune(report)).toBe('Deleted 1 video(s) (0.0 MB; 0 for the size cap), 0 job(s), 0 event(s); 1 video file(s) were gone already.');
    expect(await videos()).toBe(0);
  });
});
