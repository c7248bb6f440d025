/**
 * Component custom ids. A button carries only an action and a job id ("bf:<action>:<job>");
 * everything else is looked up in the database when it is pressed, so buttons keep working after a
 * restart and cannot be forged into acting on someone else's behalf. Forms: the extend form names
 * its parent job; the movie form carries the command's other options. Discord allows 100 characters.
 */
import { parseJobId } from '../../farm/index.ts';
import type { RenderOptions } from '../render-options.ts';

export const CUSTOM_ID_MAX_LENGTH = 100;
export const BUTTON_ACTIONS = ['upscale', 'reroll', 'extend', 'cancel'] as const;
export type ButtonAction = (typeof BUTTON_ACTIONS)[number];

const PREFIX = 'bf';

export function buttonId(action: ButtonAction, jobId: number): string {
  return `${PREFIX}:${action}:${jobId}`;
}

/** The action and job of one of this bot's buttons; undefined for any other id. The job id follows the farm's rule (parseJobId). */
export function parseButtonId(customId: string): { action: ButtonAction; jobId: number } | undefined {
  const m = /^bf:([a-z]+):([^:]*)$/.exec(customId);
  if (!m || !(BUTTON_ACTIONS as readonly string[]).includes(m[1])) return undefined;
  const jobId = parseJobId(m[2]);
  return jobId === undefined ? undefined : { action: m[1] as ButtonAction, jobId };
}

export function extendFormId(jobId: number): string {
  return `${PREFIX}:extend-form:${jobId}`;
}

/**
 * The options a movie form carries, in this order, as a JSON list without keys (so a seed, a
 * duration, a size, a quality, a depth and a format all fit); the type each must have.
 */
const MOVIE_FORM_OPTIONS: ReadonlyArray<readonly [keyof RenderOptions, 'string' | 'number']> = [
  ['seed', 'number'],
  ['duration', 'number'],
  ['size', 'string'],
  ['quality', 'string'],
  ['depth', 'number'],
  ['format', 'string'],
  ['negative', 'string'],
  // Last, so forms shown before the option existed still read the same.
  ['model', 'string'],
];

/** Throws RangeError when the options do not fit in a custom id. */
export function movieFormId(options: RenderOptions): string {
  const values = MOVIE_FORM_OPTIONS.map(([key]) => options[key] ?? null);
  while (values.length > 0 && values.at(-1) === null) values.pop();
  const id = `${PREFIX}:movie-form:${JSON.stringify(values)}`;
  if (id.length > CUSTOM_ID_MAX_LENGTH) throw new RangeError('movie form options do not fit in a custom id');
  return id;
}

export type FormRoute = { kind: 'extend'; jobId: number } | { kind: 'movie'; options: RenderOptions };

/** Where a submitted form goes; undefined for any id this bot did not make. */
export function parseFormId(customId: string): FormRoute | undefined {
  const ext = /^bf:extend-form:([^:]*)$/.exec(customId);
  if (ext) {
    const jobId = parseJobId(ext[1]);
    return jobId === undefined ? undefined : { kind: 'extend', jobId };
  }
  const movie = /^bf:movie-form:(\[.*\])$/.exec(customId);
  if (!movie) return undefined;
  let values: unknown;
  try {
    values = JSON.parse(movie[1]);
  } catch {
    return undefined;
  }
  if (!Array.isArray(values) || values.length > MOVIE_FORM_OPTIONS.length) return undefined;
  const options: Record<string, string | number> = {};
  for (const [i, value] of values.entries()) {
    const [key, type] = MOVIE_FORM_OPTIONS[i];
    if (value === null) continue;
    if (typeof value !== type) return undefined;
    options[key] = value as string | number;
  }
  return { kind: 'movie', options: options as RenderOptions };
}
