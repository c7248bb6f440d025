import { SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { DEFAULT_VARIATION, INPUT_NAMES, LIMITS, variationFrames } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { UserInputError, userMessage } from '../errors.ts';
import { attachedPictures, type AttachedPictures } from '../pictures.ts';
import { formatOption, promptOption, qualityOption, readRenderOptions, sizeOption } from '../render-options.ts';
import { refuse, submitRender } from '../submit.ts';

/** The farm's field and input names -> this command's options, for refusals. */
const NAMES = { [INPUT_NAMES.startImage]: 'image', 'prompt 1': 'positive', negativePrompt: 'negative', variations: 'frames', intermediate: 'frames' };

const DEFAULT_FRAMES = variationFrames(DEFAULT_VARIATION);

/**
 * `frames` (the whole animation, the picture included) as the farm's variations x intermediate:
 * frames per variation as close to the default as divides frames - 1 within the limits, so the
 * video has exactly the frames asked for.
 */
function variationShape(frames: number): { variations: number; intermediate: number } {
  const steps = frames - 1;
  const fits = (i: number) => steps % i === 0 && steps / i >= LIMITS.variations.min && steps / i <= LIMITS.variations.max;
  const candidates = Array.from({ length: LIMITS.intermediate.max }, (_, k) => k + 1).sort((a, b) => Math.abs(a - DEFAULT_VARIATION.intermediate) - Math.abs(b - DEFAULT_VARIATION.intermediate) || a - b);
  const intermediate = candidates.find(fits);
  if (intermediate === undefined) {
    throw new UserInputError(`${frames} frames cannot be split into ${LIMITS.variations.min} to ${LIMITS.variations.max} variations of up to ${LIMITS.intermediate.max} frames each; pick a frame count one more than such a product, e.g. ${DEFAULT_FRAMES}.`);
  }
  return { variations: steps / intermediate, intermediate };
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
        .setMaxValue(LIMITS.variationFrames.max),
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
    let pictures: AttachedPictures;
    let shape: { variations: number; intermediate: number };
    try {
      shape = variationShape(o.getInteger('frames') ?? DEFAULT_FRAMES);
      pictures = attachedPictures(interaction, [{ option: 'image', input: INPUT_NAMES.startImage }]);
    } catch (err) {
      return refuse(interaction, userMessage(err, ctx.log, NAMES));
    }
    await submitRender(interaction, ctx, 'vary', positive ? [positive] : [], readRenderOptions(interaction), NAMES, {
      params: { variation: shape },
      pictures,
    });
  },
};
