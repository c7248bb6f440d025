/**
 * Pictures members attach to slash commands (/blend from_image, to_image, image, mask; /vary
 * image), in two halves around the interaction's answer:
 *
 * 1. Before answering, only what needs no download: attachedPictures checks Discord's metadata of
 *    each (content type, size, and the width/height Discord reports) with the farm's
 *    inputMetadataIssue; a refusal is a private reply, and nothing is downloaded.
 * 2. After the deferral, and only once the farm's checkSubmission has found nothing that refuses
 *    the job without them (budget, active jobs, a capable worker: submitRender),
 *    AttachedPictures.download fetches them from Discord's CDN, with DOWNLOAD_TIMEOUT_MS to spare
 *    instead of Discord's 3 s, and the farm's checkJobInputs reads each file's header (format from
 *    the content, pixels); those refusals go through refuse() (the public "thinking…" is
 *    replaced, the reason sent privately).
 *
 * Every refusal names the option.
 */
import type { Attachment, ChatInputCommandInteraction } from 'discord.js';
import { inputMetadataIssue } from '../farm/index.ts';
import { UserInputError } from './errors.ts';

/** A picture option of a command and the farm input it becomes (job-params.ts INPUT_NAMES). */
export interface PictureOption {
  option: string;
  input: string;
}

/**
 * How long the download of one picture from Discord's CDN may take. It runs after the interaction
 * is deferred, whose token lives 15 minutes (INTERACTION_TOKEN_LIFETIME_MS), so it can wait for a
 * slow CDN; this only stops a download that hangs.
 */
export const DOWNLOAD_TIMEOUT_MS = 30_000;

/** A command's attached pictures: checked from Discord's metadata, not yet downloaded. */
export interface AttachedPictures {
  /** The farm input names of the pictures attached (options left out are absent). */
  readonly inputs: readonly string[];
  /**
   * The files by farm input name. Throws UserInputError naming the option when one cannot be
   * downloaded (saying why and what to do) or is larger than it was said to be.
   */
  download(): Promise<Record<string, Uint8Array>>;
}

/**
 * The attached pictures among `wanted`. Throws UserInputError naming the option when Discord's
 * metadata of one already breaks the farm's limits (not a picture by its type, too many bytes or
 * pixels); nothing is downloaded here.
 */
export function attachedPictures(interaction: Pick<ChatInputCommandInteraction, 'options'>, wanted: readonly PictureOption[]): AttachedPictures {
  const given = wanted.map((w) => ({ ...w, attachment: interaction.options.getAttachment(w.option) })).filter((w): w is PictureOption & { attachment: Attachment } => w.attachment !== null);
  for (const { option, attachment } of given) {
    const { size, contentType, width, height } = attachment;
    const issue = inputMetadataIssue(`\`${option}\``, { size, contentType, width, height });
    if (issue) throw new UserInputError(`That picture can't be used: ${issue}.`);
  }
  return {
    inputs: given.map((g) => g.input),
    download: async () => {
      // One failure ends the others' downloads too: the command is refused either way.
      const together = new AbortController();
      try {
        return Object.fromEntries(await Promise.all(given.map(async ({ option, input, attachment }) => [input, await download(option, attachment.url, attachment.size, together.signal)] as const)));
      } finally {
        together.abort();
      }
    },
  };
}

/**
 * Downloads one attachment, reading at most what its metadata declared (`declared` bytes, itself
 * within IMAGE_LIMITS): a body longer than that is not read on, and the command is refused.
 */
async function download(option: string, url: string, declared: number, others: AbortSignal): Promise<Uint8Array> {
  const failed = (why: string) => new UserInputError(`The \`${option}\` attachment could not be downloaded from Discord (${why}), so nothing was queued; run the command again with the picture attached.`);
  let bytes: Uint8Array;
  try {
    const response = await fetch(url, { signal: AbortSignal.any([AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS), others]) });
    if (!response.ok) throw failed(`Discord's CDN answered HTTP ${response.status}`);
    bytes = await readAtMost(response, declared, () => failed(`it was larger than the ${declared} bytes Discord said it has`));
  } catch (err) {
    if (err instanceof UserInputError) throw err;
    throw failed((err as Error).name === 'TimeoutError' ? `no complete answer within ${DOWNLOAD_TIMEOUT_MS / 1000} s` : 'the connection failed');
  }
  // The bytes themselves (size, format, pixels) are checked next, by the farm's checkJobInputs.
  return bytes;
}

/** The body of `response`, or `tooLong()` thrown (the rest unread, the stream cancelled) once it passes `max` bytes. */
async function readAtMost(response: Response, max: number, tooLong: () => Error): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body?.getReader();
  if (!reader) return new Uint8Array(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLong();
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}
