import { SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { DEFAULT_VARIATION, INPUT_NAMES, LIMITS, variationFrames } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { userMessage } from '../errors.ts';
import { attachedPictures, type AttachedPictures } from '../pictures.ts';
import { formatOption, promptOption, qualityOption, readRenderOptions, sizeOption } from '../render-options.ts';
import { refuse, submitRender } from '../submit.ts';

/** The farm's field and input names -> this command's options, for refusals. */
const NAMES = { [INPUT_NAMES.startImage]: 'image', 'prompt 1': 'positive', negativePrompt: 'negative', variations: 'frames', intermediate: 'frames' };

const DEFAULT_FRAMES = variationFrames(DEFAULT_VARIATION);

/**
 * `frames` (the whole animation, the picture included) as the farm's variations x intermediate:
 * frames per variation as close to the default as divides frames - 1 within the limits, so the
 * video has exactly the frames asked for; undefined when no such split exists (frames - 1 a prime
 * above the most variations, say).
 */
export function variationShape(frames: number): { variations: number; intermediate: number } | undefined {
  const steps = frames - 1;
  if (!Number.isInteger(frames) || frames < LIMITS.variationFrames.min || frames > LIMITS.variationFrames.max) return undefined;
  const fits = (i: number) => steps % i === 0 && steps / i >= LIMITS.variations.min && steps / i <= LIMITS.variations.max;
  const candidates = Array.from({ length: LIMITS.intermediate.max - LIMITS.intermediate.min + 1 }, (_, k) => k + LIMITS.intermediate.min).sort(
    (a, b) => Math.abs(a - DEFAULT_VARIATION.intermediate) - Math.abs(b - DEFAULT_VARIATION.intermediate) || a - b,
  );
  const intermediate = candidates.find(fits);
  return intermediate === undefined ? undefined : { variations: steps / intermediate, intermediate };
}

/** The most frames /vary offers: the largest count within the farm's limits that splits (variationShape). */
export const MAX_VARY_FRAMES = (() => {
  for (let f = LIMITS.variationFrames.max; f > LIMITS.variationFrames.min; f--) if (variationShape(f)) return f;
  return LIMITS.variationFrames.min;
})();

/**
 * The frame count nearest `frames` that splits (variationShape), within what /vary offers; of two
 * as near, the larger (the member asked for at least `frames`). The count itself when it splits.
 */
export function nearestVaryFrames(frames: number): number {
  if (!Number.isFinite(frames)) return DEFAULT_FRAMES;
  const asked = Math.min(Math.max(Math.round(frames), LIMITS.variationFrames.min), MAX_VARY_FRAMES);
  for (let d = 0; d <= MAX_VARY_FRAMES; d++) {
    if (asked + d <= MAX_VARY_FRAMES && variationShape(asked + d)) return asked + d;
    if (asked - d >= LIMITS.variationFrames.min && variationShape(asked - d)) return asked - d;
  }
  return MAX_VARY_FRAMES; // unreachable: MAX_VARY_FRAMES itself splits
}

/** What the member is told when their frame count was changed to one that splits. */
export function roundedFramesText(asked: number, frames: number): string {
  return `${asked} frames can't be split evenly into variations; rendering ${frames}.`;
}

export const vary: Command = {
  data: new SlashCommandBuilder()
    .setName('vary')
    .setDescription('Animate variations of a picture: each frame a new take on it, drifting smoothly')
    .addAttachmentOption((o) => o.setName('image').setDescription('The picture to vary (PNG, JPEG or WebP)').setRequired(true))
    .addIntegerOption((o) =>
      o
        .setName('frames')
        .setDescription(`Frames of the animation, the picture included (default ${DEFAULT_FRAMES})`)
        .setMinValue(LIMITS.variationFrames.min)
        .setMaxValue(MAX_VARY_FRAMES),
    )
    .addStringOption((o) => promptOption(o, 'positive', 'Steer the variations towards this, e.g. "oil painting"'))
    .addStringOption((o) => promptOption(o, 'negative', 'Steer the variations away from this, e.g. "blurry"'))
    .addIntegerOption((o) => o.setName('seed').setDescription('Seed for a reproducible animation').setMinValue(LIMITS.seed.min).setMaxValue(LIMITS.seed.max))
    .addStringOption((o) => sizeOption(o, 'Frame size'))
    .addStringOption((o) => qualityOption(o, 'More denoising steps: better frames, slower, costs more'))
    .addStringOption((o) => formatOption(o, 'Video format')),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    const o = interaction.options;
    const positive = o.getString('positive');
    const asked = o.getInteger('frames') ?? DEFAULT_FRAMES;
    // A count that does not split is rendered as the nearest that does, and the member is told so.
    const frames = nearestVaryFrames(asked);
    const shape = variationShape(frames)!;
    let pictures: AttachedPictures;
    try {
      pictures = attachedPictures(interaction, [{ option: 'image', input: INPUT_NAMES.startImage }]);
    } catch (err) {
      return refuse(interaction, userMessage(err, ctx.log, NAMES));
    }
    // The changed count is said once the job exists (a refusal says nothing was rendered).
    await submitRender(interaction, ctx, 'vary', positive ? [positive] : [], readRenderOptions(interaction), NAMES, {
      params: { variation: shape },
      pictures,
      notice: frames !== asked ? roundedFramesText(asked, frames) : undefined,
    });
  },
};
