// bot/render-options.ts: Discord options -> the farm's job parameters, server defaults, and the
// option definitions (ranges and lengths from the farm's LIMITS). No Discord, no database.
import { describe, expect, it } from 'vitest';
import { DEFAULT_MODELS, DEFAULT_PARAMS, JobParamsError, JOB_VIDEO_FORMATS, LIMITS, parseJobParams, QUALITY_PRESETS } from '../../farm/index.ts';
import type { OfferedModel } from '../../farm/index.ts';
import { commands } from '../../bot/commands/index.ts';
import { UserInputError } from '../../bot/errors.ts';
import {
  DISCORD_MAX_OPTION_LENGTH,
  FARM_DEFAULTS_TEXT,
  promptListLength,
  readRenderOptions,
  SIZE_CHOICES,
  splitPrompts,
  toJobParamsInput,
  serverModelApplies,
  usesMainModel,
  withServerDefaults,
  describeDefaults,
  type RenderOptions,
} from '../../bot/render-options.ts';

/** Just enough of a ChatInputCommandInteraction for readRenderOptions. */
function interactionWith(values: Record<string, string | number>) {
  const get = (name: string) => values[name] ?? null;
  return { options: { getString: get, getInteger: get, getNumber: get } } as unknown as Parameters<typeof readRenderOptions>[0];
}

type OptionJson = { name: string; type: number; min_value?: number; max_value?: number; max_length?: number; choices?: Array<{ name: string; value: string }>; options?: OptionJson[] };
function commandJson(name: string): { options: OptionJson[] } {
  const command = commands.find((c) => c.data.name === name);
  if (!command) throw new Error(`no command ${name}`);
  return command.data.toJSON() as unknown as { options: OptionJson[] };
}
const option = (options: OptionJson[], name: string) => options.find((o) => o.name === name)!;

describe('Discord options -> job parameters', () => {
  it('maps each option onto its field (size choice -> width and height, quality preset, depth, format, negative)', () => {
    const input = toJobParamsInput(['a cat', 'a dog'], { negative: 'blurry', duration: 3, size: 'landscape', quality: 'draft', depth: 0.7, format: 'gif' });
    expect(input).toEqual({
      prompts: ['a cat', 'a dog'],
      negativePrompt: 'blurry',
      durationSeconds: 3,
      width: SIZE_CHOICES.landscape.width,
      height: SIZE_CHOICES.landscape.height,
      quality: 'draft',
      depthStrength: 0.7,
      format: 'gif',
    });
    const params = parseJobParams('blend', input);
    expect([params.steps, params.maxBranches]).toEqual([QUALITY_PRESETS.draft.steps, QUALITY_PRESETS.draft.maxBranches]);
  });

  it('leaves options the member did not give to the farm (its defaults)', () => {
    expect(toJobParamsInput(['a', 'b'], {})).toEqual({ prompts: ['a', 'b'] });
    expect(parseJobParams('blend', toJobParamsInput(['a', 'b'], {}))).toMatchObject({ durationSeconds: DEFAULT_PARAMS.durationSeconds, format: DEFAULT_PARAMS.format });
  });

  it('one seed gives every prompt its own: prompt i uses seed + i, wrapping inside the seed range', () => {
    expect(toJobParamsInput(['a', 'b', 'c'], { seed: 42 }).seeds).toEqual([42, 43, 44]);
    // A variation animation has one seed, with or without guidance prompts.
    expect(parseJobParams('vary', toJobParamsInput([], { seed: 42 }, 'vary')).seeds).toEqual([42]);
    expect(parseJobParams('vary', toJobParamsInput(['oil painting', 'at night'], { seed: 42 }, 'vary')).seeds).toEqual([42]);
    expect(toJobParamsInput(['a', 'b', 'c'], { seed: LIMITS.seed.max }).seeds).toEqual([LIMITS.seed.max, 0, 1]);
    expect(parseJobParams('movie', toJobParamsInput(['a', 'b', 'c'], { seed: LIMITS.seed.max })).seeds).toEqual([LIMITS.seed.max, 0, 1]);
  });

  it('refuses a size it has no choice for; everything else is the farm’s to check', () => {
    expect(() => toJobParamsInput(['a', 'b'], { size: 'huge' })).toThrow(UserInputError);
    // An unknown quality or format goes through and the farm's validator names it.
    const input = toJobParamsInput(['a', 'b'], { quality: 'ultra', format: 'avi' });
    expect(() => parseJobParams('blend', input)).toThrow(JobParamsError);
  });

  it('the farm’s validator is what refuses prompts (empty, too long, too few): the bot does not check them itself', () => {
    const issues = (prompts: string[], kind: 'blend' | 'movie') => {
      try {
        parseJobParams(kind, toJobParamsInput(prompts, {}));
        return [];
      } catch (err) {
        return (err as JobParamsError).issues;
      }
    };
    expect(issues(['   ', 'a dog'], 'blend').join()).toMatch(/^prompt 1 must not be empty/);
    expect(issues(['a'.repeat(LIMITS.promptLength.max + 1), 'b'], 'blend').join()).toMatch(/prompt 1 must be at most/);
    expect(issues(splitPrompts('only one', '|'), 'movie').join()).toMatch(new RegExp(`${LIMITS.prompts.min} to ${LIMITS.prompts.max} prompts`));
    expect(issues(splitPrompts('a | | c', '|'), 'movie').join()).toMatch(/prompt 2 must not be empty/);
  });
});

describe('splitting prompts', () => {
  it('"a | b | c" keeps every part, trimmed (an empty one is for the farm to refuse)', () => {
    expect(splitPrompts(' a calm sea |a storm|  a rainbow ', '|')).toEqual(['a calm sea', 'a storm', 'a rainbow']);
    expect(splitPrompts('a | ', '|')).toEqual(['a', '']);
  });

  it('a form takes one prompt per line and skips blank lines', () => {
    expect(splitPrompts('a red sunset\r\n a green forest\n\n  \na blue ocean\n', 'line')).toEqual(['a red sunset', 'a green forest', 'a blue ocean']);
  });
});

describe('reading options and server defaults', () => {
  it('reads only the options a member gave', () => {
    expect(readRenderOptions(interactionWith({}))).toEqual({});
    expect(readRenderOptions(interactionWith({ seed: 7, size: 'portrait', depth: 0.3, unrelated: 'x' }))).toEqual({ seed: 7, size: 'portrait', depth: 0.3 });
  });

  it('server defaults fill in only the options a member left out', () => {
    const defaults: RenderOptions = { size: 'landscape', duration: 2, format: 'gif', quality: 'high' };
    expect(withServerDefaults({ format: 'mp4', seed: 1 }, defaults)).toEqual({ size: 'landscape', duration: 2, format: 'mp4', quality: 'high', seed: 1 });
    expect(withServerDefaults({ duration: undefined }, defaults).duration).toBe(2);
    expect(withServerDefaults({ size: 'square' }, {})).toEqual({ size: 'square' });
  });

  it('the model: read trimmed, mapped onto the job’s model, a server’s default only for jobs on the main model', () => {
    expect(readRenderOptions(interactionWith({ model: ' sdxl-turbo ' }))).toEqual({ model: 'sdxl-turbo' });
    expect(readRenderOptions(interactionWith({ model: '  ' }))).toEqual({});
    expect(toJobParamsInput(['a', 'b'], { model: 'sdxl-turbo' })).toEqual({ prompts: ['a', 'b'], model: 'sdxl-turbo' });
    // Checked by the farm's one rule, named after the option.
    expect(() => parseJobParams('blend', toJobParamsInput(['a', 'b'], { model: 'sdxl turbo' }))).toThrow(/model must be a model id/);
    const defaults: RenderOptions = { model: 'sdxl-turbo', quality: 'draft' };
    expect(withServerDefaults({}, defaults)).toEqual({ model: 'sdxl-turbo', quality: 'draft' });
    expect(withServerDefaults({ model: 'demo' }, defaults).model).toBe('demo');
    expect(withServerDefaults({}, defaults, usesMainModel('vary'))).toEqual({ quality: 'draft' });
    expect(withServerDefaults({}, defaults, usesMainModel('blend', { inpaint: { mask: 'centre' } }))).toEqual({ quality: 'draft' });
    expect(usesMainModel('blend', { images: [{ index: 0 }] })).toBe(true);
    expect(usesMainModel('movie')).toBe(true);
  });

  it('a server’s default model applies to a job with pictures only where online workers offer it with that ability; else the farm’s main model renders it', async () => {
    const offered = (abilities: OfferedModel['abilities']) => {
      const reads: number[] = [];
      const read = async (): Promise<OfferedModel[]> => (reads.push(1), [{ id: 'sd-text', abilities, workers: 1, devices: { GPU: 1, CPU: 0, other: 0 } }]);
      return { read, reads };
    };
    const pictures = { images: [{ index: 0 }] };
    // A text-only default (no VAE encoder): not for a /blend with pictures, whose main model can render it.
    const textOnly = offered(['text']);
    expect(await serverModelApplies('sd-text', 'blend', pictures, textOnly.read)).toBe(false);
    expect(await serverModelApplies('sd-text', 'blend', { images: [{ index: 0 }, { index: 1 }] }, textOnly.read)).toBe(false);
    expect(await serverModelApplies('nobody-has-it', 'blend', pictures, textOnly.read)).toBe(false);
    expect(await serverModelApplies('sd-text', 'blend', pictures, offered(['text', 'picture']).read)).toBe(true);
    // From text alone: always (nothing read); inpainting and /vary: never; the main model's own id: nothing to read.
    const unread = offered(['text']);
    expect(await serverModelApplies('sd-text', 'blend', {}, unread.read)).toBe(true);
    expect(await serverModelApplies('sd-text', 'movie', { images: [] }, unread.read)).toBe(true);
    expect(await serverModelApplies('sd-text', 'blend', { inpaint: { mask: 'centre' }, ...pictures }, unread.read)).toBe(false);
    expect(await serverModelApplies('sd-text', 'vary', {}, unread.read)).toBe(false);
    expect(await serverModelApplies(DEFAULT_MODELS.picture, 'blend', pictures, unread.read)).toBe(true);
    expect(unread.reads).toEqual([]);
    expect(describeDefaults({ model: 'my_model' })).toBe('model my\\_model');
    // /blend, /movie and /settings defaults suggest models as the member types; /vary has its own.
    for (const [name, path] of [['blend', []], ['movie', []], ['settings', ['defaults']]] as const) {
      let options = commandJson(name).options;
      for (const sub of path) options = option(options, sub).options!;
      expect(option(options, 'model'), name).toMatchObject({ type: 3, autocomplete: true, max_length: LIMITS.modelId.max });
    }
    expect(option(commandJson('vary').options, 'model')).toBeUndefined();
  });

  it('describes the farm’s own defaults in the options’ terms', () => {
    expect(FARM_DEFAULTS_TEXT).toBe(`quality standard, size square, duration ${DEFAULT_PARAMS.durationSeconds} s, format ${DEFAULT_PARAMS.format}`);
  });
});

describe('option definitions come from the farm’s limits', () => {
  it('/blend: prompt lengths, seed, duration and depth ranges, choices', () => {
    const { options } = commandJson('blend');
    for (const name of ['from', 'to', 'negative']) expect(option(options, name).max_length).toBe(LIMITS.promptLength.max);
    expect([option(options, 'seed').min_value, option(options, 'seed').max_value]).toEqual([LIMITS.seed.min, LIMITS.seed.max]);
    expect([option(options, 'duration').min_value, option(options, 'duration').max_value]).toEqual([LIMITS.durationSeconds.min, LIMITS.durationSeconds.max]);
    expect([option(options, 'depth').min_value, option(options, 'depth').max_value]).toEqual([LIMITS.depthStrength.min, LIMITS.depthStrength.max]);
    expect(option(options, 'quality').choices!.map((c) => c.value)).toEqual(Object.keys(QUALITY_PRESETS));
    expect(option(options, 'format').choices!.map((c) => c.value)).toEqual([...JOB_VIDEO_FORMATS]);
    expect(option(options, 'size').choices!.map((c) => c.value)).toEqual(Object.keys(SIZE_CHOICES));
    // Every size choice is one the farm accepts.
    for (const size of Object.keys(SIZE_CHOICES)) expect(() => parseJobParams('blend', toJobParamsInput(['a', 'b'], { size }))).not.toThrow();
  });

  it('/movie: the same shared options, and a prompt list that fits Discord', () => {
    const { options } = commandJson('movie');
    // /blend's own options: its two prompts and the picture inputs (pictures are a /blend feature).
    const blendOnly = ['from', 'to', 'from_image', 'to_image', 'strength', 'image', 'mask', 'mask_preset'];
    const shared = commandJson('blend').options.filter((o) => !blendOnly.includes(o.name));
    expect(options.filter((o) => o.name !== 'prompts')).toEqual(shared);
    expect(option(options, 'prompts').max_length).toBe(promptListLength(DISCORD_MAX_OPTION_LENGTH));
    expect(promptListLength(DISCORD_MAX_OPTION_LENGTH)).toBeLessThanOrEqual(DISCORD_MAX_OPTION_LENGTH);
  });

  it('/settings defaults: the same choices and duration range', () => {
    const defaults = option(commandJson('settings').options, 'defaults').options!;
    const blend = commandJson('blend').options;
    for (const name of ['quality', 'size', 'format']) expect(option(defaults, name).choices).toEqual(option(blend, name).choices);
    expect([option(defaults, 'duration').min_value, option(defaults, 'duration').max_value]).toEqual([LIMITS.durationSeconds.min, LIMITS.durationSeconds.max]);
  });
});
