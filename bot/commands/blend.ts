import { SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { INPUT_NAMES, LIMITS, DEFAULT_IMAGE_STRENGTH, MASK_PRESETS, type JobParamsInput } from '../../farm/index.ts';
import { autocompleteModel } from '../autocomplete.ts';
import type { BotContext, Command } from '../context.ts';
import { UserInputError, userMessage } from '../errors.ts';
import { attachedPictures } from '../pictures.ts';
import { addRenderOptions, promptOption, readRenderOptions } from '../render-options.ts';
import { refuse, submitRender, type RenderExtras } from '../submit.ts';

const PICTURES = [
  { option: 'from_image', input: INPUT_NAMES.image(0) },
  { option: 'to_image', input: INPUT_NAMES.image(1) },
  { option: 'image', input: INPUT_NAMES.inpaintImage },
  { option: 'mask', input: INPUT_NAMES.inpaintMask },
] as const;

/** The farm's field and input names -> this command's options, for refusals. */
const NAMES = { 'prompt 1': 'from', 'prompt 2': 'to', strength: 'strength', ...Object.fromEntries(PICTURES.map((p) => [p.input, p.option])) };

export const blend: Command = {
  data: addRenderOptions(
    new SlashCommandBuilder()
      .setName('blend')
      .setDescription('Make a video that turns one prompt into another')
      .addStringOption((o) => promptOption(o, 'from', 'Where the video starts, e.g. "a lighthouse at dusk"').setRequired(true))
      .addStringOption((o) => promptOption(o, 'to', 'Where it ends, e.g. "a city of glass at noon"').setRequired(true)),
  )
    .addAttachmentOption((o) => o.setName('from_image').setDescription('Start at this picture (PNG, JPEG or WebP), re-rendered under the from prompt'))
    .addAttachmentOption((o) => o.setName('to_image').setDescription('End at this picture (PNG, JPEG or WebP), re-rendered under the to prompt'))
    .addNumberOption((o) =>
      o
        .setName('strength')
        // The engine's own scale (EndpointImage.strength in engine/blend/transition.ts): the share of
        // the diffusion redone, so 0.2 keeps the picture, 0.8 keeps only its layout, 1 redoes it all.
        .setDescription(`How much of each picture is redone: 0.2 keeps it, 0.8 only its layout, ${LIMITS.imageStrength.max} all of it (default ${DEFAULT_IMAGE_STRENGTH})`)
        .setMinValue(LIMITS.imageStrength.min)
        .setMaxValue(LIMITS.imageStrength.max),
    )
    .addAttachmentOption((o) => o.setName('image').setDescription('Inpainting: keep this picture, and change only the masked part from prompt to prompt'))
    .addAttachmentOption((o) => o.setName('mask').setDescription('Inpainting: mask picture for image, white = change, black = keep'))
    .addStringOption((o) =>
      o
        .setName('mask_preset')
        .setDescription('Inpainting: the part of image to change, instead of a mask picture')
        .addChoices(...MASK_PRESETS.map((m) => ({ name: m, value: m }))),
    ),
  autocomplete: autocompleteModel,
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    const prompts = [interaction.options.getString('from', true), interaction.options.getString('to', true)];
    let extra: RenderExtras;
    try {
      extra = pictureExtras(interaction);
    } catch (err) {
      return refuse(interaction, userMessage(err, ctx.log, NAMES));
    }
    await submitRender(interaction, ctx, 'blend', prompts, readRenderOptions(interaction), NAMES, extra);
  },
};

/**
 * The picture options as job parameters and attached pictures (checked from Discord's metadata,
 * downloaded after the deferral): from_image / to_image are the transition's ends (at `strength`);
 * image with mask or mask_preset makes an inpainting transition.
 */
function pictureExtras(interaction: ChatInputCommandInteraction): RenderExtras {
  const o = interaction.options;
  const inpainting = o.getAttachment('image') !== null;
  const maskPreset = o.getString('mask_preset');
  const hasMask = o.getAttachment('mask') !== null;
  if (inpainting && !hasMask && maskPreset === null) throw new UserInputError('`image` makes an inpainting transition and needs a mask: attach `mask` (white = change, black = keep) or pick `mask_preset`.');
  if (inpainting && hasMask && maskPreset !== null) throw new UserInputError('Give either `mask` or `mask_preset`, not both.');
  if (!inpainting && (hasMask || maskPreset !== null)) throw new UserInputError('`mask` and `mask_preset` belong to an inpainting picture: attach it as `image`.');
  const pictures = attachedPictures(interaction, PICTURES);
  const strength = o.getNumber('strength') ?? undefined;
  const ends = [0, 1].filter((i) => pictures.inputs.includes(INPUT_NAMES.image(i)));
  if (strength !== undefined && !ends.length) throw new UserInputError('`strength` applies to `from_image` and `to_image`; attach one of them, or leave `strength` out.');
  const params: Pick<JobParamsInput, 'images' | 'inpaint'> = {};
  const images = ends.map((index) => ({ index, ...(strength !== undefined ? { strength } : {}) }));
  if (images.length) params.images = images;
  if (inpainting) params.inpaint = { mask: hasMask ? 'picture' : (maskPreset as (typeof MASK_PRESETS)[number]) };
  return { params, pictures };
}
