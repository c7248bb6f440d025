import { SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { DEFAULT_VARIATION, INPUT_NAMES, LIMITS, MAX_SPLITTABLE_VARIATION_FRAMES, nearestSplittableVariationFrames, variationFrames, variationShape } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { userMessage } from '../errors.ts';
import { attachedPictures, type AttachedPictures } from '../pictures.ts';
import { formatOption, promptOption, qualityOption, readRenderOptions, sizeOption } from '../render-options.ts';
import { refuse, submitRender } from '../submit.ts';

/** The farm's field and input names -> this command's options, for refusals. */
const NAMES = { [INPUT_NAMES.startImage]: 'image', 'prompt 1': 'positive', negativePrompt: 'negative', variations: 'frames', intermediate: 'frames' };

const DEFAULT_FRAMES = variationFrames(DEFAULT_VARIATION);

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
        .setMaxValue(MAX_SPLITTABLE_VARIATION_FRAMES),
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
    const frames = nearestSplittableVariationFrames(asked);
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
