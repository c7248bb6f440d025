/**
 * The last line of .ci/run ("N passed, N failed", scripts/ci-summary.ts) on real vitest JSON
 * reports: a run of small test files in a temporary folder, one passing, one failing to import,
 * one whose beforeAll throws, one with a failing test. A file that fails without a failed test
 * must count, or a failed run reads "0 failed".
 */
import { execFile } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { summarize } from '../../scripts/ci-summary.ts';
import { ROOT, TSX } from '../helpers/cli.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

const run = promisify(execFile);
let dir: string;
useTempDir('ci-summary-', (d) => (dir = d));

const FILES: Record<string, string> = {
  'passes.test.ts': "import { expect, it } from 'vitest';\nit('passes', () => expect(1).toBe(1));\nit('passes too', () => expect(2).toBe(2));\n",
  'import-fails.test.ts': "import { it } from 'vitest';\nthrow new Error('cannot load');\nit('never collected', () => {});\n",
  'hook-fails.test.ts': "import { beforeAll, expect, it } from 'vitest';\nbeforeAll(() => { throw new Error('no database'); });\nit('skipped', () => expect(1).toBe(1));\n",
};

/** Runs vitest on `files` in a fresh folder of `dir` and returns the path of its JSON report. */
async function report(name: string, files: Record<string, string>): Promise<string> {
  const root = join(dir, name);
  await run('mkdir', ['-p', root]);
  await symlink(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  await writeFile(join(root, 'vitest.config.ts'), "import { defineConfig } from 'vitest/config';\nexport default defineConfig({ test: { include: ['*.test.ts'] } });\n");
  for (const [file, text] of Object.entries(files)) await writeFile(join(root, file), text);
  await run(join(ROOT, 'node_modules/.bin/vitest'), ['run', '--root', root, '--reporter=json', '--outputFile.json=report.json'], { cwd: root, timeout: 120_000 }).catch(() => {});
  return join(root, 'report.json');
}

async function line(file: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', TSX, join(ROOT, 'scripts/ci-summary.ts'), file], { cwd: ROOT });
  return stdout.trim();
}

/**
 * The lines of .ci/run after the test run (`status=$?` up to `exit $status`), run in a folder laid
 * out as the repository (.ci-out/vitest.json, scripts/, node_modules/): what CI prints last.
 */
async function ciRunLastLine(reportFile: string): Promise<string> {
  const script = await readFile(join(ROOT, '.ci/run'), 'utf8');
  const tail = script.slice(script.indexOf('status=$?') + 'status=$?'.length, script.lastIndexOf('exit $status'));
  const root = join(dir, 'ci-run');
  await run('mkdir', ['-p', join(root, '.ci-out')]);
  await run('cp', [reportFile, join(root, '.ci-out', 'vitest.json')]);
  for (const link of ['scripts', 'node_modules']) await symlink(join(ROOT, link), join(root, link)).catch(() => {});
  const { stdout } = await run('bash', ['-c', tail], { cwd: root });
  return stdout.trim().split('\n').pop()!;
}

describe('scripts/ci-summary.ts', () => {
  it('counts a test file that fails to load or whose hook throws as a failure', async () => {
    const file = await report('broken', FILES);
    const raw = JSON.parse(await readFile(file, 'utf8'));
    // What the old line printed: vitest's own counts leave both files out.
    expect([raw.numPassedTests, raw.numFailedTests]).toEqual([2, 0]);
    expect(await line(file)).toBe('2 passed, 2 failed');
    expect(await ciRunLastLine(file)).toBe('2 passed, 2 failed');
  });

  it('counts failed tests once, not their file again', async () => {
    const file = await report('failing', {
      'passes.test.ts': FILES['passes.test.ts'],
      'one-fails.test.ts': "import { expect, it } from 'vitest';\nit('fails', () => expect(1).toBe(2));\nit('fails too', () => expect(1).toBe(3));\nit('passes', () => expect(1).toBe(1));\n",
    });
    expect(await line(file)).toBe('3 passed, 2 failed');
  });

  it('reads a passing run as it is, and a missing report as one failure', async () => {
    expect(await line(await report('green', { 'passes.test.ts': FILES['passes.test.ts'] }))).toBe('2 passed, 0 failed');
    expect(await line(join(dir, 'no-report.json'))).toBe('0 passed, 1 failed');
    expect(summarize({ numPassedTests: 5, numFailedTests: 0, success: false, testResults: [] })).toEqual({ passed: 5, failed: 1 });
  });
});
