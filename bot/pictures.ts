/**
 * Pictures members attach to slash commands (/blend from_image, to_image, image, mask; /vary
 * image): checked from Discord's metadata first (content type, size: the farm's
 * inputMetadataIssue), then downloaded from Discord's CDN, all before the interaction is answered.
 * The farm's checkJobInputs then reads each file's header (format from the content, pixels) in
 * submitRender; both refusals name the option and reach the member privately.
 */
import type { Attachment, ChatInputCommandInteraction } from 'discord.js';
import { IMAGE_LIMITS, inputMetadataIssue } from '../farm/index.ts';
import { UserInputError } from './errors.ts';

/** A picture option of a command and the farm input it becomes (job-params.ts INPUT_NAMES). */
export interface PictureOption {
  option: string;
  input: string;
}

/** How long a download from Discord's CDN may take (the interaction must be answered within 3 s). */
const DOWNLOAD_TIMEOUT_MS = 2000;

/**
 * The attached pictures among `wanted`, by farm input name (options left out are absent). Throws
 * UserInputError naming the option when a file is not a picture by its type, is too large, or
 * cannot be downloaded.
 */
export async function downloadPictures(interaction: Pick<ChatInputCommandInteraction, 'options'>, wanted: readonly PictureOption[]): Promise<Record<string, Uint8Array>> {
  const given = wanted.map((w) => ({ ...w, attachment: interaction.options.getAttachment(w.option) })).filter((w): w is PictureOption & { attachment: Attachment } => w.attachment !== null);
  // Metadata first, for all of them: nothing is downloaded when one is refused.
  for (const { option, attachment } of given) {
    const issue = inputMetadataIssue(`\`${option}\``, { size: attachment.size, contentType: attachment.contentType });
    if (issue) throw new UserInputError(`That picture can't be used: ${issue}.`);
  }
  const files = await Promise.all(given.map(async ({ option, input, attachment }) => [input, await download(option, attachment.url)] as const));
  return Object.fromEntries(files);
}

async function download(option: string, url: string): Promise<Uint8Array> {
  const failed = (why: string) => new UserInputError(`The \`${option}\` attachment could not be downloaded from Discord (${why}); attach it again.`);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
  } catch (err) {
    throw failed((err as Error).name === 'TimeoutError' ? 'it took too long' : 'the connection failed');
  }
  if (!response.ok) throw failed(`HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // The size Discord reported is checked before; the bytes themselves again (checkJobInputs does too).
  if (bytes.length > IMAGE_LIMITS.maxBytes) throw new UserInputError(`That picture can't be used: \`${option}\` is larger than ${IMAGE_LIMITS.maxBytes} bytes; attach a smaller picture.`);
  return bytes;
}
