// bot/autocomplete.ts: the `model` option's choices from the models online workers offer. Pure
// functions; the choices through Discord are in models.e2e.test.ts.
import { describe, expect, it } from 'vitest';
import { answerAutocomplete, MAX_AUTOCOMPLETE_CHOICES, modelChoiceName, modelChoices, workerCountText } from '../../bot/autocomplete.ts';
import type { OfferedModel } from '../../farm/index.ts';

const model = (id: string, devices: Partial<OfferedModel['devices']> = { GPU: 1 }, abilities: OfferedModel['abilities'] = ['text']): OfferedModel => {
  const all = { GPU: 0, CPU: 0, other: 0, ...devices };
  return { id, abilities, workers: all.GPU + all.CPU + all.other, devices: all };
};

describe('model choices', () => {
  it('say where a model runs', () => {
    expect(workerCountText(model('a', { GPU: 2 }))).toBe('2 GPU workers');
    expect(workerCountText(model('a', { CPU: 1 }))).toBe('1 CPU worker');
    expect(workerCountText(model('a', { GPU: 1, CPU: 2 }))).toBe('3 workers (1 GPU, 2 CPU)');
    expect(workerCountText(model('a', { other: 1 }))).toBe('1 worker');
    expect(modelChoiceName(model('sdxl-turbo', { GPU: 2 }))).toBe('sdxl-turbo · 2 GPU workers');
    const long = modelChoiceName(model('m'.repeat(100), { GPU: 2 }));
    expect(long).toHaveLength(100);
    expect(long).toMatch(/^m+… · 2 GPU workers$/);
  });

  it('list text-capable models whose id holds what was typed, any case, at most 25, valued with the id', () => {
    const offered = [model('demo', { CPU: 1 }, ['text', 'picture']), model('inpaint', { GPU: 1 }, ['inpaint', 'picture']), model('SDXL-Turbo', { GPU: 2 }), model('variation', { GPU: 1 }, ['variation'])];
    expect(modelChoices(offered, '')).toEqual([
      { name: 'demo · 1 CPU worker', value: 'demo' },
      { name: 'SDXL-Turbo · 2 GPU workers', value: 'SDXL-Turbo' },
    ]);
    expect(modelChoices(offered, ' sdxl ')).toEqual([{ name: 'SDXL-Turbo · 2 GPU workers', value: 'SDXL-Turbo' }]);
    expect(modelChoices(offered, 'nothing')).toEqual([]);
    const many = Array.from({ length: 30 }, (_, i) => model(`m${String(i).padStart(2, '0')}`));
    expect(modelChoices(many, 'm').map((c) => c.value)).toEqual(many.slice(0, MAX_AUTOCOMPLETE_CHOICES).map((m) => m.id));
  });
});

describe('answering an autocomplete', () => {
  /** Just enough of an AutocompleteInteraction: what it was answered with. */
  function interaction(respond: (choices: unknown[]) => Promise<void> = async () => {}) {
    const answers: unknown[][] = [];
    const it = { commandName: 'blend', respond: async (choices: unknown[]) => (answers.push(choices), respond(choices)) };
    return { it: it as unknown as Parameters<typeof answerAutocomplete>[0], answers };
  }
  const ctx = (logs: string[]) => ({ log: (line: string) => void logs.push(line) }) as unknown as Parameters<typeof answerAutocomplete>[1];

  it('answers with the choices found', async () => {
    const { it: i, answers } = interaction();
    await answerAutocomplete(i, ctx([]), async () => [{ name: 'demo · 1 CPU worker', value: 'demo' }]);
    expect(answers).toEqual([[{ name: 'demo · 1 CPU worker', value: 'demo' }]]);
  });

  it('answers with none, and logs why, when the farm fails or is too slow for Discord’s 3 s; never throws', async () => {
    const logs: string[] = [];
    const failed = interaction();
    await answerAutocomplete(failed.it, ctx(logs), async () => {
      throw new Error('connection refused');
    });
    expect(failed.answers).toEqual([[]]);
    expect(logs.at(-1)).toMatch(/autocomplete in \/blend failed; no choices shown: .*connection refused/);

    const slow = interaction();
    const started = Date.now();
    await answerAutocomplete(slow.it, ctx(logs), () => new Promise(() => {}));
    expect(Date.now() - started).toBeLessThan(2900);
    expect(slow.answers).toEqual([[]]);
    expect(logs.at(-1)).toMatch(/did not answer within 2000 ms/);

    // Discord refusing the answer (the interaction expired) is logged, not thrown.
    const refused = interaction(async () => {
      throw new Error('Unknown interaction');
    });
    await expect(answerAutocomplete(refused.it, ctx(logs), async () => [])).resolves.toBeUndefined();
    expect(logs.at(-1)).toMatch(/could not be answered: .*Unknown interaction/);
  });
});
