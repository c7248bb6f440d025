/**
 * bench/README.md's table is where README.md sends a reader for "what each benchmark measures and
 * where its results are": every benchmark (each bench:* npm script and each bench/*.ts program) is
 * in it, and every results file it names exists.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.ts';

const readme = readFileSync(join(ROOT, 'bench/README.md'), 'utf8');
const table = readme.split('\n').filter((line) => line.startsWith('| `'));
const scripts = Object.entries((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);

describe('bench/README.md', () => {
  it('lists every bench:* npm script', () => {
    const benchScripts = scripts.filter(([name]) => name.startsWith('bench:')).map(([name]) => name);
    expect(benchScripts.length).toBeGreaterThan(3);
    expect(benchScripts.filter((name) => !table.some((row) => row.includes(`npm run ${name}`)))).toEqual([]);
  });

  it('lists every benchmark program in bench/, by its npm script or its own command', () => {
    // Modules shared by the benchmarks, not programs.
    const programs = readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts') && !['gpu-common.ts', 'postgres.ts'].includes(f));
    const named = (file: string) => {
      const script = scripts.find(([, command]) => command.includes(`bench/${file}`));
      return table.some((row) => row.includes(`bench/${file}`) || (script !== undefined && row.includes(`npm run ${script[0]}`)));
    };
    expect(programs.filter((file) => !named(file))).toEqual([]);
  });

  it('names only results files that exist', () => {
    const named = [...new Set(table.flatMap((row) => [...row.matchAll(/results\/([\w.-]+)/g)].map((m) => m[1])))];
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((file) => !existsSync(join(ROOT, 'bench/results', file)))).toEqual([]);
  });
});
