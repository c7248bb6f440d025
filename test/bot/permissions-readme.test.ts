// farm/README.md's failure-modes table quotes the answer to someone who may not act on a job: it is
// noJobOfYoursText's (bot/permissions.ts), the same words for a job that does not exist.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { noJobOfYoursText } from '../../bot/permissions.ts';

describe('farm/README: who may act on a job', () => {
  it("quotes the bot's one answer for a job that is not yours or does not exist", () => {
    const row = fs.readFileSync(new URL('../../farm/README.md', import.meta.url), 'utf8').split('\n').find((l) => l.startsWith('| Who may act on a job'));
    expect(row).toBeDefined();
    expect(row).toContain(noJobOfYoursText(1, 'cancel').replace('#1', '#N'));
    expect(row).not.toMatch(/belongs to|is not yours, so/);
  });
});
