// The layer rules of .dependency-cruiser.cjs, checked on the real source tree with
// dependency-cruiser (the same check as `npx depcruise apps bot farm engine db config models bench scripts`).
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const rules = createRequire(import.meta.url)(join(ROOT, '.dependency-cruiser.cjs'));
// The layers and the front ends outside apps/: benchmarks and operator scripts.
const LAYERS = ['apps', 'bot', 'farm', 'engine', 'db', 'config', 'models', 'bench', 'scripts'];

async function violations(baseDir: string, dirs: string[]): Promise<IViolation[]> {
  const cwd = process.cwd();
  process.chdir(baseDir);
  try {
    const { output } = await cruise(dirs, { ...rules.options, validate: true, ruleSet: { forbidden: rules.forbidden }, tsConfig: undefined });
    return (output as ICruiseResult).summary.violations;
  } finally {
    process.chdir(cwd);
  }
}

const describeViolation = (v: IViolation) => `${v.rule.name}: ${v.from} -> ${v.to}`;

describe('layers', () => {
  it('the source tree crosses no layer boundary and has no import cycle', async () => {
    const found = await violations(ROOT, LAYERS);
    expect(found.map(describeViolation)).toEqual([]);
  });

  it('the rules catch a crossing (a tree that breaks each rule once)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'layers-'));
    try {
      const file = (path: string, text: string) => {
        mkdirSync(join(dir, path, '..'), { recursive: true });
        writeFileSync(join(dir, path), text);
      };
      file('engine/index.ts', "export * from './render.ts';\n");
      file('engine/render.ts', "import '../config/index.ts';\nexport const render = 1;\n");
      file('config/index.ts', 'export const config = 1;\n');
      file('farm/index.ts', "export * from './jobs.ts';\n");
      file('farm/jobs.ts', "import '../engine/render.ts';\nexport const jobs = 1;\n");
      file('bot/bot.ts', "import '../farm/jobs.ts';\nimport '../db/schema.ts';\n");
      file('bench/speed.ts', "import '../engine/render.ts';\nimport '../engine/index.ts';\n");
      file('db/schema.ts', 'export const schema = 1;\n');
      const found = (await violations(dir, ['engine', 'farm', 'bot', 'db', 'config', 'bench'])).map(describeViolation).sort();
      expect(found).toEqual(
        [
          'bot-not-db-config-models: bot/bot.ts -> db/schema.ts',
          'engine-through-its-index: bench/speed.ts -> engine/render.ts',
          'engine-is-self-contained: engine/render.ts -> config/index.ts',
          'engine-through-its-index: farm/jobs.ts -> engine/render.ts',
          'farm-through-its-index: bot/bot.ts -> farm/jobs.ts',
        ].sort(),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
