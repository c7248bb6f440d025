/**
 * The render options /blend and /movie share, in one place: how Discord shows them (ranges, lengths
 * and help texts from the farm's LIMITS and DEFAULT_PARAMS, never restated), reading them from an
 * interaction, a server's defaults for the ones a member leaves out, and the mapping onto the farm's
 * job parameters. Only Discord-specific parsing happens here (splitting "a | b | c", size choice
 * names, quality labels); the farm's parseJobParams is the one validator.
 */
import type {
  ChatInputCommandInteraction,
  SlashCommandIntegerOption,
  SlashCommandNumberOption,
  SlashCommandOptionsOnlyBuilder,
  SlashCommandStringOption,
} from 'discord.js';
import { DEFAULT_MODELS, DEFAULT_PARAMS, getGuildSettings, LIMITS, modelAbilityFor, QUALITY_PRESETS, JOB_VIDEO_FORMATS, seedCount, type FarmContext, type JobKind, type JobParamsInput, type OfferedModel, type QualityPreset } from '../farm/index.ts';
import { UserInputError } from './errors.ts';
import { escapeMarkdown } from './format.ts';
import { recentOfferedModels } from './offered-models.ts';
import { SIZE_CHOICES, type SizeChoice } from './sizes.ts';

/** Discord's own caps: a string option's value, and a form's text input. */
export const DISCORD_MAX_OPTION_LENGTH = 6000;
export const DISCORD_MAX_TEXT_INPUT_LENGTH = 4000;

/** Characters in a list of the most prompts a movie may have, as typed (separators included), within Discord's `cap`. */
export function promptListLength(cap: number): number {
  return Math.min(cap, LIMITS.prompts.max * (LIMITS.promptLength.max + ' | '.length));
}

export { SIZE_CHOICES, type SizeChoice };

export const QUALITY_LABELS: Record<QualityPreset, string> = {
  draft: 'Draft (fast)',
  standard: 'Standard',
  high: 'High',
  max: 'Maximum (slow)',
};

/**
 * The shared options as Discord sends them (option name -> value); also the shape of a server's
 * defaults and of the options a movie form carries in its custom id. Absent means "not given".
 */
export interface RenderOptions {
  negative?: string;
  seed?: number;
  duration?: number;
  size?: string;
  quality?: string;
  depth?: number;
  format?: string;
  /** A model id online workers offer (the `model` option's autocomplete lists them); absent: the farm's main model. */
  model?: string;
}

/** Which Discord option each job-parameter field comes from (for refusals that name the option). */
export const OPTION_NAMES: Readonly<Record<string, keyof RenderOptions>> = {
  negativePrompt: 'negative',
  durationSeconds: 'duration',
  depthStrength: 'depth',
  width: 'size',
  height: 'size',
  quality: 'quality',
  format: 'format',
  model: 'model',
};

/** The options whose values are the farm's defaults when neither the member nor the server picks one. */
function farmDefault(): Required<Pick<RenderOptions, 'quality' | 'size' | 'duration' | 'format'>> {
  const quality = (Object.keys(QUALITY_PRESETS) as QualityPreset[]).find((q) => QUALITY_PRESETS[q].steps === DEFAULT_PARAMS.steps && QUALITY_PRESETS[q].maxBranches === DEFAULT_PARAMS.maxBranches);
  const size = (Object.keys(SIZE_CHOICES) as SizeChoice[]).find((s) => SIZE_CHOICES[s].width === DEFAULT_PARAMS.width && SIZE_CHOICES[s].height === DEFAULT_PARAMS.height);
  return { quality: quality ?? `${DEFAULT_PARAMS.steps} steps`, size: size ?? `${DEFAULT_PARAMS.width}×${DEFAULT_PARAMS.height}`, duration: DEFAULT_PARAMS.durationSeconds, format: DEFAULT_PARAMS.format };
}

/** "quality standard, size square, duration 4 s, format mp4": what /settings shows as the farm's defaults (a model id escaped: it may hold "_"). */
export function describeDefaults(options: RenderOptions): string {
  return Object.entries(options)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${k === 'duration' ? `${v} s` : escapeMarkdown(String(v))}`)
    .join(', ');
}
export const FARM_DEFAULTS_TEXT = describeDefaults(farmDefault());

// The option definitions, one builder each, shared by /blend, /movie and /settings defaults.
export const qualityOption = (o: SlashCommandStringOption, description: string) =>
  o
    .setName('quality')
    .setDescription(description)
    .addChoices(...(Object.keys(QUALITY_PRESETS) as QualityPreset[]).map((value) => ({ name: QUALITY_LABELS[value], value })));
export const sizeOption = (o: SlashCommandStringOption, description: string) =>
  o
    .setName('size')
    .setDescription(description)
    .addChoices(...(Object.keys(SIZE_CHOICES) as SizeChoice[]).map((value) => ({ name: SIZE_CHOICES[value].label, value })));
export const durationOption = (o: SlashCommandNumberOption, description: string) =>
  o.setName('duration').setDescription(description).setMinValue(LIMITS.durationSeconds.min).setMaxValue(LIMITS.durationSeconds.max);
export const formatOption = (o: SlashCommandStringOption, description: string) =>
  o
    .setName('format')
    .setDescription(description)
    .addChoices(...JOB_VIDEO_FORMATS.map((f) => ({ name: f, value: f })));
/** The model to render with: any id (LIMITS.modelId), the models online workers offer suggested as the member types (bot/autocomplete.ts). */
export const modelOption = (o: SlashCommandStringOption, description: string) => o.setName('model').setDescription(description).setMaxLength(LIMITS.modelId.max).setAutocomplete(true);
const seedOption = (o: SlashCommandIntegerOption) =>
  o.setName('seed').setDescription('Seed for a reproducible video (prompt i uses seed + i)').setMinValue(LIMITS.seed.min).setMaxValue(LIMITS.seed.max);
const depthOption = (o: SlashCommandNumberOption) =>
  o
    .setName('depth')
    .setDescription(`${LIMITS.depthStrength.min} to ${LIMITS.depthStrength.max}: how late the frames branch off (higher keeps more in common)`)
    .setMinValue(LIMITS.depthStrength.min)
    .setMaxValue(LIMITS.depthStrength.max);

/** A prompt option (from, to, negative): at most one prompt's length. */
export const promptOption = (o: SlashCommandStringOption, name: string, description: string) => o.setName(name).setDescription(description).setMaxLength(LIMITS.promptLength.max);

/** Adds the options /blend and /movie share. */
export function addRenderOptions(b: SlashCommandOptionsOnlyBuilder): SlashCommandOptionsOnlyBuilder {
  const { durationSeconds, format } = DEFAULT_PARAMS;
  return b
    .addStringOption((o) => promptOption(o, 'negative', 'What the video should not show'))
    .addIntegerOption(seedOption)
    .addNumberOption((o) => durationOption(o, `Seconds of video per transition, ${LIMITS.durationSeconds.min} to ${LIMITS.durationSeconds.max} (default ${durationSeconds})`))
    .addStringOption((o) => sizeOption(o, 'Frame size'))
    .addStringOption((o) => qualityOption(o, 'More steps and branches: smoother, slower, costs more'))
    .addNumberOption(depthOption)
    .addStringOption((o) => formatOption(o, `Video format (default ${format})`))
    .addStringOption((o) => modelOption(o, "The model to render with: pick one the farm's workers offer (default: the farm's main model)"));
}

/** The shared options a member gave (options left out are absent, not undefined). */
export function readRenderOptions(interaction: Pick<ChatInputCommandInteraction, 'options'>): RenderOptions {
  const o = interaction.options;
  const read: RenderOptions = {
    negative: o.getString('negative') ?? undefined,
    seed: o.getInteger('seed') ?? undefined,
    duration: o.getNumber('duration') ?? undefined,
    size: o.getString('size') ?? undefined,
    quality: o.getString('quality') ?? undefined,
    depth: o.getNumber('depth') ?? undefined,
    format: o.getString('format') ?? undefined,
    model: o.getString('model')?.trim() || undefined,
  };
  return given(read);
}

function given<T extends object>(values: T): T {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== null)) as T;
}

/**
 * Splits "a | b | c" (the /movie option) or one prompt per line (the forms) into trimmed prompts.
 * Blank lines in a form are skipped; an empty prompt between bars stays, for the farm to refuse.
 */
export function splitPrompts(text: string, separator: '|' | 'line'): string[] {
  if (separator === '|') return text.split('|').map((p) => p.trim());
  return text
    .split(/\r?\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/**
 * A member's options over the server's defaults: only options the member gave override. The
 * server's default model is left out unless `withModel` (serverModelApplies says when it applies).
 */
export function withServerDefaults(options: RenderOptions, defaults: RenderOptions, withModel = true): RenderOptions {
  const { model, ...rest } = given(defaults);
  return { ...rest, ...(withModel && model !== undefined ? { model } : {}), ...given(options) };
}

/**
 * Whether a job of `kind` with these picture parameters renders on the farm's main model when it
 * names none (not inpainting, not variations).
 *
 * The rule for a server's default model (/settings defaults model:), applied by serverModelApplies:
 * it stands in for the farm's main model only, and only where it can do what the job needs. A model
 * the member picks is theirs and is never replaced.
 * - Inpainting and /vary jobs have models of their own (usesMainModel false): never.
 * - A job that starts or ends at a picture (a /blend with `from_image` or `to_image`: the 'picture'
 *   ability, a model with a VAE encoder) only when online workers offer the default with that ability
 *   (offeredModels, one shared recent read); else the farm's main model renders it. A text-only
 *   default would otherwise refuse every /blend with pictures of a member who picked no model,
 *   though the main model could render it. /settings defaults warns when the default it sets cannot.
 * - Jobs from text alone: always (a default no worker offers is refused like a member's pick, and
 *   /settings defaults warns of it).
 */
export function usesMainModel(kind: JobKind, params: Pick<JobParamsInput, 'inpaint' | 'images'> = {}): boolean {
  return DEFAULT_MODELS[modelAbilityFor(kind, { inpaint: params.inpaint, images: undefined })] === DEFAULT_MODELS.text;
}

/** Whether the server's default `model` applies to this job (the rule at usesMainModel); `offered` is read only for a job with pictures. */
export async function serverModelApplies(model: string, kind: JobKind, params: Pick<JobParamsInput, 'inpaint' | 'images'>, offered: () => Promise<readonly OfferedModel[]>): Promise<boolean> {
  if (!usesMainModel(kind, params)) return false;
  // From text alone, or the main model's own id (applying it or not names the same model): no read.
  if (!params.images?.length || model === DEFAULT_MODELS.picture) return true;
  return (await offered()).some((m) => m.id === model && m.abilities.includes('picture'));
}

/** The server's render defaults (none outside servers or when none are set). */
export async function serverDefaults(farm: FarmContext, guildId: string | null): Promise<RenderOptions> {
  return guildId ? (await getGuildSettings(farm, guildId)).defaults : {};
}

/**
 * A member's options over the server's defaults that apply to this job (withServerDefaults; the
 * default model where serverModelApplies). `offered`: the models online workers offer (default the
 * shared recent read, offered-models.ts), read only when the rule needs them.
 */
export async function optionsWithServerDefaults(
  farm: FarmContext,
  guildId: string | null,
  options: RenderOptions,
  kind: JobKind,
  params: Pick<JobParamsInput, 'inpaint' | 'images'> = {},
  offered: () => Promise<readonly OfferedModel[]> = () => recentOfferedModels(farm),
): Promise<RenderOptions> {
  const defaults = await serverDefaults(farm, guildId);
  const withModel = options.model === undefined && defaults.model !== undefined && (await serverModelApplies(defaults.model, kind, params, offered));
  return withServerDefaults(options, defaults, withModel);
}

/** Discord options -> the farm's job parameters (which parseJobParams then checks and completes). */
export function toJobParamsInput(prompts: string[], options: RenderOptions, kind?: JobKind): JobParamsInput {
  const params: JobParamsInput = { prompts };
  if (options.negative !== undefined) params.negativePrompt = options.negative;
  // One seed makes the whole video reproducible: prompt i uses seed + i (wrapping within the seed
  // range); a variation animation has one seed, whatever guidance prompts it has.
  const seeds = kind ? seedCount(kind, prompts) : prompts.length;
  if (options.seed !== undefined) params.seeds = Array.from({ length: seeds }, (_, i) => (options.seed! + i) % (LIMITS.seed.max + 1));
  if (options.duration !== undefined) params.durationSeconds = options.duration;
  if (options.size !== undefined) {
    const size = SIZE_CHOICES[options.size as SizeChoice];
    if (!size) throw new UserInputError(`Unknown size "${options.size}"; pick one of ${Object.keys(SIZE_CHOICES).join(', ')}.`);
    params.width = size.width;
    params.height = size.height;
  }
  if (options.quality !== undefined) params.quality = options.quality as QualityPreset;
  if (options.depth !== undefined) params.depthStrength = options.depth;
  if (options.format !== undefined) params.format = options.format as JobParamsInput['format'];
  if (options.model !== undefined) params.model = options.model;
  return params;
}
