// bot/components/custom-id.ts: the ids on buttons and forms. They round-trip, fit Discord's 100
// characters, and anything the bot did not make is not taken for one of its own.
import { describe, expect, it } from 'vitest';
import { LIMITS, parseJobId } from '../../../farm/index.ts';
import {
  BUTTON_ACTIONS,
  buttonId,
  CUSTOM_ID_MAX_LENGTH,
  extendFormId,
  movieFormId,
  parseButtonId,
  parseFormId,
} from '../../../bot/components/custom-id.ts';
import type { RenderOptions } from '../../../bot/render-options.ts';

const BIG_JOB = 999_999_999_999_999; // 15 digits

describe('button ids', () => {
  it('round-trip every action with small and large job ids, within 100 characters', () => {
    for (const action of BUTTON_ACTIONS) {
      for (const jobId of [1, 42, BIG_JOB]) {
        const id = buttonId(action, jobId);
        expect(id.length).toBeLessThanOrEqual(CUSTOM_ID_MAX_LENGTH);
        expect(parseButtonId(id)).toEqual({ action, jobId });
      }
    }
    expect(buttonId('upscale', 12)).toBe('bf:upscale:12');
  });

  it('read the job id by the farm’s rule (parseJobId): 16 digits up to Number.MAX_SAFE_INTEGER, never 0', () => {
    const sixteen = String(Number.MAX_SAFE_INTEGER); // 9007199254740991
    expect(sixteen).toHaveLength(16);
    for (const raw of [sixteen, '9007199254740992', '1000000000000000', '0', '007']) {
      const jobId = parseJobId(raw);
      expect(parseButtonId(`bf:upscale:${raw}`), raw).toEqual(jobId === undefined ? undefined : { action: 'upscale', jobId });
      expect(parseFormId(`bf:extend-form:${raw}`), raw).toEqual(jobId === undefined ? undefined : { kind: 'extend', jobId });
    }
    expect(parseButtonId(`bf:reroll:${sixteen}`)).toEqual({ action: 'reroll', jobId: Number.MAX_SAFE_INTEGER });
    expect(parseButtonId('bf:reroll:9007199254740992')).toBeUndefined();
    expect(parseButtonId('bf:reroll:0')).toBeUndefined();
  });

  it('carries the model last, so forms shown before it existed read the same', () => {
    const options: RenderOptions = { seed: 1, negative: 'blurry', model: 'sdxl-turbo' };
    expect(parseFormId(movieFormId(options))).toEqual({ kind: 'movie', options });
    expect(movieFormId({ model: 'sdxl-turbo' })).toBe('bf:movie-form:[null,null,null,null,null,null,null,"sdxl-turbo"]');
    expect(parseFormId('bf:movie-form:[1,null,null,null,null,null,"blurry"]')).toEqual({ kind: 'movie', options: { seed: 1, negative: 'blurry' } });
  });

  it('reject ids the bot did not make', () => {
    for (const id of ['', 'bf:delete:1', 'xx:upscale:1', 'bf:upscale:', 'bf:upscale:abc', 'bf:upscale:-1', 'bf:upscale:1:2', ' bf:upscale:1', `bf:upscale:${BIG_JOB}0`, 'bf:extend-form:1']) {
      expect(parseButtonId(id), id).toBeUndefined();
    }
  });
});

describe('form ids', () => {
  it('the extend form names its parent job', () => {
    expect(parseFormId(extendFormId(42))).toEqual({ kind: 'extend', jobId: 42 });
    expect(parseFormId(extendFormId(BIG_JOB))).toEqual({ kind: 'extend', jobId: BIG_JOB });
  });

  it('the movie form carries the command’s options there and back', () => {
    const options: RenderOptions = { seed: LIMITS.seed.max, duration: LIMITS.durationSeconds.max, size: 'landscape', quality: 'draft', depth: 0.35, format: 'webm' };
    const id = movieFormId(options);
    expect(id.length).toBeLessThanOrEqual(CUSTOM_ID_MAX_LENGTH);
    expect(parseFormId(id)).toEqual({ kind: 'movie', options });
    expect(parseFormId(movieFormId({}))).toEqual({ kind: 'movie', options: {} });
  });

  it('options that do not fit in 100 characters are refused, not cut', () => {
    expect(() => movieFormId({ negative: 'n'.repeat(LIMITS.promptLength.max) })).toThrow(RangeError);
  });

  it('a short negative prompt fits too', () => {
    const options: RenderOptions = { seed: 1, quality: 'high', negative: 'blurry, text' };
    expect(parseFormId(movieFormId(options))).toEqual({ kind: 'movie', options });
  });

  it('reject ids the bot did not make', () => {
    const form = (text: string) => `bf:movie-form:${text}`;
    const tooMany = JSON.stringify(Array.from({ length: 9 }, () => null));
    for (const id of ['', 'bf:upscale:1', 'bf:extend-form:', 'bf:extend-form:x', 'xx:extend-form:1', form(''), form('!!'), form('{"seed":1}'), form('"text"'), form('null'), form('[1'), form('["1"]'), form('[1,"2"]'), form(tooMany)]) {
      expect(parseFormId(id), id).toBeUndefined();
    }
  });
});
