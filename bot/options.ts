/**
 * Slash-command options -> farm job parameters. The choices users see (size, quality) map to
 * concrete numbers here, in one place; the farm validates the result again.
 */
import { MAX_JOB_SEED, QUALITY_PRESETS, type JobParamsInput, type QualityPreset } from '../farm/job-params.ts';

export const SIZE_CHOICES = {
  square: { width: 512, height: 512, label: 'Square (512×512)' },
  landscape: { width: 768, height: 512, label: 'Landscape (768×512)' },
  portrait: { width: 512, height: 768, label: 'Portrait (512×768)' },
} as const;
export type SizeChoice = keyof typeof SIZE_CHOICES;

export const QUALITY_LABELS: Record<QualityPreset, string> = {
  draft: 'Draft (fast)',
  standard: 'Standard',
  high: 'High',
  max: 'Maximum (slow)',
};


export const PROMPT_MAX_LENGTH = 500;
export const MOVIE_PROMPTS_MAX_LENGTH = 4000;

/** Settings shared by /blend and /movie, as read from an interaction (or a movie form's id). */
export interface RenderChoices {
  negative?: string;
  seed?: number;
  duration?: number;
  size?: string;
  quality?: string;
  depth?: number;
  format?: string;
}

export class UserInputError extends Error {
  override name = 'UserInputError';
}

/** Splits "a | b | c" (or one prompt per line) into trimmed prompts, refusing empty ones. */
export function splitPrompts(text: string, separator: '|' | 'line'): string[] {
  const parts = (separator === '|' ? text.split('|') : text.split(/\r?\n/)).map((p) => p.trim());
  const prompts = separator === 'line' ? parts.filter((p) => p.length > 0) : parts;
  prompts.forEach((p, i) => {
    if (!p) throw new UserInputError(`Prompt ${i + 1} is empty. Separate prompts with "|", e.g. \`a calm sea | a storm | a rainbow\`.`);
  });
  return prompts;
}

export function checkPrompt(name: string, text: string | null | undefined): string {
  const t = (text ?? '').trim();
  if (!t) throw new UserInputError(`The \`${name}\` prompt is empty: describe what the video should show, e.g. \`a lighthouse at dusk\`.`);
  if (t.length > PROMPT_MAX_LENGTH) throw new UserInputError(`The \`${name}\` prompt is ${t.length} characters long; keep it under ${PROMPT_MAX_LENGTH}.`);
  return t;
}

export function paramsFromChoices(prompts: string[], c: RenderChoices): JobParamsInput {
  const params: JobParamsInput = { prompts };
  if (c.negative?.trim()) params.negativePrompt = c.negative.trim();
  // One seed makes the whole video reproducible: prompt i uses seed + i.
  if (c.seed !== undefined) params.seeds = prompts.map((_, i) => (c.seed! + i) % (MAX_JOB_SEED + 1));
  if (c.duration !== undefined) params.durationSeconds = c.duration;
  if (c.size) {
    const s = SIZE_CHOICES[c.size as SizeChoice];
    if (!s) throw new UserInputError(`Unknown size "${c.size}"; pick one of ${Object.keys(SIZE_CHOICES).join(', ')}.`);
    params.width = s.width;
    params.height = s.height;
  }
  if (c.quality) {
    if (!(c.quality in QUALITY_PRESETS)) throw new UserInputError(`Unknown quality "${c.quality}"; pick one of ${Object.keys(QUALITY_PRESETS).join(', ')}.`);
    params.quality = c.quality as QualityPreset;
  }
  if (c.depth !== undefined) params.depthStrength = c.depth;
  if (c.format) params.format = c.format as JobParamsInput['format'];
  return params;
}

/** A member's choices over the server's defaults: only options the member gave override. */
export function withServerDefaults(choices: RenderChoices, defaults: RenderChoices): RenderChoices {
  const given = Object.fromEntries(Object.entries(choices).filter(([, v]) => v !== undefined && v !== null));
  return { ...defaults, ...given };
}
