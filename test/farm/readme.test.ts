// farm/README.md restates the request limits for operators (its Limits table and the job.params
// table); farm/limits.ts is the one place they are set. These checks keep the restatement true:
// each range the README gives for a limit is the table's, every limit has a row, and the formats a
// job may ask for are the ones listed.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MAX_SEED } from '../../engine/index.ts';
import { DEFAULT_UPSCALE_FACTOR, JOB_VIDEO_FORMATS, LIMITS, UPSCALE_FACTORS } from '../../farm/limits.ts';

const README = fs.readFileSync(new URL('../../farm/README.md', import.meta.url), 'utf8');

/** The rows of the markdown table that follows `heading` (cells trimmed, header and rule left out). */
function tableAfter(heading: string): string[][] {
  const start = README.indexOf(heading);
  expect(start, `README section ${heading}`).toBeGreaterThanOrEqual(0);
  const lines = README.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
  }
  return rows;
}

const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
/** "1–500", "10 000–2 000 000 000", "0.05–0.95": every numeric range in the cell, in order. */
const ranges = (cell: string) => [...cell.matchAll(/(\d[\d ]*(?:\.\d+)?)–(\d[\d ]*(?:\.\d+)?)/g)].map((m) => ({ min: Number(m[1].replace(/ /g, '')), max: Number(m[2].replace(/ /g, '')) }));

describe('farm/README.md', () => {
  it("the Limits table gives every limit of farm/limits.ts with the table's own range", () => {
    const rows = tableAfter('## Limits\n');
    const documented = new Set<string>();
    for (const [name, range] of rows) {
      const limits = names(name).filter((n) => Object.hasOwn(LIMITS, n)) as Array<keyof typeof LIMITS>;
      if (limits.length === 0) continue;
      const given = ranges(range);
      limits.forEach((limit, i) => {
        documented.add(limit);
        if (limit === 'seed') {
          expect(range).toContain('MAX_SEED');
          expect(LIMITS.seed.max).toBe(MAX_SEED);
          return;
        }
        expect({ limit, ...given[i] }).toEqual({ limit, min: LIMITS[limit].min, max: LIMITS[limit].max });
      });
    }
    expect([...documented].sort()).toEqual(Object.keys(LIMITS).sort());
  });

  it('the job.params table gives the ranges and formats of farm/limits.ts', () => {
    const rows = new Map(tableAfter('| field | meaning |').map((r) => [names(r[0]).join(','), r[1]]));
    expect(ranges(rows.get('width,height')!)[0]).toEqual({ min: LIMITS.side.min, max: LIMITS.side.max });
    expect(rows.get('width,height')).toContain(`multiples of ${LIMITS.side.multipleOf}`);
    expect(ranges(rows.get('maxBranches')!)[0]).toEqual({ min: LIMITS.maxBranches.min, max: LIMITS.maxBranches.max });
    expect(ranges(rows.get('depthStrength')!)[0]).toEqual({ min: LIMITS.depthStrength.min, max: LIMITS.depthStrength.max });
    expect(ranges(rows.get('guidance')!)[0]).toEqual({ min: LIMITS.guidance.min, max: LIMITS.guidance.max });
    // movie/reroll/upscale: the prompts range; extend: the new prompts only, leaving room for a movie.
    expect(ranges(rows.get('prompts')!)).toEqual([
      { min: LIMITS.prompts.min, max: LIMITS.prompts.max },
      { min: 1, max: LIMITS.prompts.max - LIMITS.prompts.min },
    ]);
    const format = rows.get('format')!;
    expect(names(format).filter((n) => n !== 'JOB_VIDEO_FORMATS').sort()).toEqual([...JOB_VIDEO_FORMATS].sort());
    expect(rows.get('upscaleFactor')).toContain(`${UPSCALE_FACTORS.slice(0, -1).join(', ')} or ${UPSCALE_FACTORS.at(-1)} (default ${DEFAULT_UPSCALE_FACTOR})`);
  });
});
