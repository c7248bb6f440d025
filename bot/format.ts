/**
 * How a job looks in Discord at each stage: queued, rendering, finished, failed. The texts take the
 * job with the prompts of the whole movie it makes (withWholeMovie), which for an extension
 * includes the movie it continues.
 */
import { cancelledBy, DEFAULT_MODELS, failureForOwner, followUpsFor, isExpiredJob, isFarmSideFailure, modelAbilityFor, parentMovieParams, promptLengthNotices, resultWarnings, type FarmContext, type Job, type JobProgress } from '../farm/index.ts';
import { durationText, fileSize as fileSizeText } from '../farm/index.ts';

/** A length of time as every bot message shows it (farm durationText: the farm's own texts say it the same way). */
export const duration = durationText;

export const BAR_WIDTH = 16;

/** The most characters Discord takes in a message's content. */
export const MAX_MESSAGE_LENGTH = 2000;

/**
 * The room a job's text (queuedText, progressText, doneText, failedText) has: a job message not
 * made by a command starts with its owner's mention, "<@id> " (bot/job-message.ts editJobMessage; a
 * 🔍/🔁 reaction's reply), and the whole must still fit MAX_MESSAGE_LENGTH. A user id has at most
 * 20 digits.
 */
export const JOB_TEXT_LENGTH = MAX_MESSAGE_LENGTH - `<@${'0'.repeat(20)}> `.length;

/** How a line cut to fit a message ends: where it was cut, and that it was. */
export const CUT_MARK = '… (cut)';

/** Lines are cut no shorter than this; past it the message is cut at its end instead (fitLines). */
const SHORTEST_CUT_LINE = 40;

/**
 * The one rule for text longer than a message takes (`max`, MAX_MESSAGE_LENGTH by default): the
 * longest lines are cut, each to the same length and ending in CUT_MARK, until the whole fits, so
 * the short lines (a status, numbers, what to do) stay whole and the cut shows where it is. A long
 * prompt, a worker's progress message, a note: whatever made it long is what is cut. When that
 * would leave lines shorter than SHORTEST_CUT_LINE (a great many lines), the text is cut at its end
 * instead, with the same mark.
 */
export function fitMessage(text: string, max = MAX_MESSAGE_LENGTH): string {
  return fitLines(text.split('\n'), max).join('\n');
}

/** fitMessage on lines: the same lines, the longest cut, or fewer when the text is cut at its end. */
function fitLines(lines: readonly string[], max: number): string[] {
  if (lines.join('\n').length <= max) return [...lines];
  // The longest a line may be for all of them to fit: lines shorter than that stay whole.
  let room = max - (lines.length - 1);
  let cap = 0;
  const lengths = lines.map((l) => l.length).sort((a, b) => a - b);
  for (const [i, length] of lengths.entries()) {
    const left = lengths.length - i;
    if (length * left > room) {
      cap = Math.floor(room / left);
      break;
    }
    room -= length;
  }
  if (cap >= SHORTEST_CUT_LINE) return lines.map((l) => (l.length > cap ? cutLine(l, cap) : l));
  const text = cutLine(lines.join('\n'), Math.max(max, CUT_MARK.length));
  return text.split('\n');
}

/**
 * The first `length` UTF-16 units of `text`, less one where that would split a character of two
 * units (an emoji): half of one is not valid UTF-8, and Discord refuses the whole message.
 */
export function headOf(text: string, length: number): string {
  const kept = text.slice(0, length);
  return /[\uD800-\uDBFF]$/.test(kept) ? kept.slice(0, -1) : kept;
}

/**
 * `line` cut to `length` characters with CUT_MARK, not inside what Discord shows as one thing: an
 * escape ("\\*"), a mention, channel or timestamp ("<@…>", "<t:…>"), a character of two UTF-16 units.
 */
function cutLine(line: string, length: number): string {
  let kept = headOf(line, Math.max(0, length - CUT_MARK.length));
  kept = kept.replace(/<[^<>\s]*$/, ''); // a mention, channel or timestamp cut open
  if (/(^|[^\\])(\\\\)*\\$/.test(kept)) kept = kept.slice(0, -1); // an escape cut from what it escapes
  return `${kept}${CUT_MARK}`;
}

/**
 * One message of `head`, as many of `items` as fit, a line saying how many more there are, and
 * `tail`, within `max` (MAX_MESSAGE_LENGTH by default: a reply that lists jobs or workers would
 * otherwise be refused by Discord once there are many, and the member get an error instead). Head
 * and tail lines too long by themselves are cut by fitMessage's rule, leaving room for that line.
 */
export function listInMessage(parts: { head: readonly string[]; items: readonly string[]; tail?: readonly string[] }, max = MAX_MESSAGE_LENGTH): string {
  const { items } = parts;
  const more = (n: number) => `…and ${n} more.`;
  const all = [...parts.head, ...items, ...(parts.tail ?? [])].join('\n').length;
  // Fixed lines cut to fit leave room for the line saying how many items are left out.
  const fixed = fitLines([...parts.head, ...(parts.tail ?? [])], all > max && items.length > 0 ? max - 1 - more(items.length).length : max);
  const head = fixed.slice(0, parts.head.length);
  const tail = fixed.slice(parts.head.length);
  const shown: string[] = [];
  let length = fixed.join('\n').length;
  for (const [i, item] of items.entries()) {
    const left = items.length - i - 1;
    if (length + 1 + item.length + (left > 0 ? 1 + more(left).length : 0) > max) {
      shown.push(more(items.length - i));
      break;
    }
    shown.push(item);
    length += 1 + item.length;
  }
  return [...head, ...shown, ...tail].join('\n');
}

export function progressBar(fraction: number): string {
  const f = Math.max(0, Math.min(1, fraction));
  const filled = Math.round(f * BAR_WIDTH);
  return `${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)} ${Math.round(f * 100)}%`;
}


/** A size in bytes as every bot message shows it (farm fileSize: the farm's own texts, e.g. the picture allowance's, say it the same way). */
export const fileSize = fileSizeText;

/**
 * GPU-seconds as every bot message shows them: at most one decimal, the unit spelled out and in the
 * singular for exactly one ("1 GPU-second", "2.5 GPU-seconds", "0 GPU-seconds").
 */
export function gpuSeconds(seconds: number): string {
  const shown = Number(seconds.toFixed(1));
  return `${shown === 0 ? 0 : shown} GPU-second${shown === 1 ? '' : 's'}`;
}

/**
 * A moment as Discord shows it to each reader, in their own time zone and language: `<t:UNIX:R>`
 * ("in 3 hours"), `<t:UNIX:f>` ("3 December 2026 13:31"). Every time the bot shows goes through
 * this, never an ISO string.
 */
export function discordTime(at: Date, style: 'R' | 'f' | 'F' | 't' | 'T' | 'd' | 'D' = 'f'): string {
  return `<t:${Math.floor(at.getTime() / 1000)}:${style}>`;
}

/** "<t:…:R> (<t:…:f>)": how far off, and when. */
export function discordWhen(at: Date): string {
  return `${discordTime(at, 'R')} (${discordTime(at, 'f')})`;
}

/**
 * The job as its messages show it. An extension's parameters list only its new prompts and seeds
 * (it continues its parent's movie), so it is shown with those of the whole movie.
 */
export async function withWholeMovie(farm: FarmContext, job: Job): Promise<Job> {
  return job.kind === 'extend' ? { ...job, params: await parentMovieParams(farm, job) } : job;
}

const KIND_LABELS: Record<Job['kind'], string> = { blend: 'Blend', movie: 'Movie', upscale: 'Upscale', reroll: 'Re-roll', extend: 'Extension', vary: 'Variation' };

/** Prompts as a title, shortened so a 16-prompt movie still fits a message. */
export function title(job: Pick<Job, 'id' | 'kind' | 'params' | 'parentJobId'>): string {
  const shorten = (p: string) => (p.length > 80 ? `${headOf(p, 77)}…` : p);
  const prompts = job.params.prompts.map(shorten);
  const chain = prompts.length > 4 ? `${prompts.slice(0, 2).join(' → ')} → … → ${prompts.at(-1)}` : prompts.join(' → ');
  const of = (job.kind === 'extend' || job.kind === 'upscale') && job.parentJobId !== null ? ` of #${job.parentJobId}` : '';
  return `**${KIND_LABELS[job.kind]}** #${job.id}${of}: ${escapeMarkdown(chain)}`;
}

/**
 * Text a member typed, shown as typed: markdown (bold, code, spoilers, quotes, masked links
 * "[text](url)", which would put a link of theirs under the bot's name) escaped, @everyone/@here
 * broken, and a web address broken after its scheme ("https\u200b://"), so that it is neither a
 * link nor a preview in the bot's message.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/([\\*_~`|>[\]])/g, '\\$1')
    .replace(/@/g, '@\u200b')
    .replace(/\b([a-z][a-z0-9+.-]*):\/\//gi, '$1\u200b://');
}

/**
 * "model sdxl-turbo" for a job on another model than its kind renders on by default
 * (DEFAULT_MODELS: the farm's main model, or the inpainting or variation model); undefined for one
 * on that default, and for an upscale (it runs no diffusion model).
 */
export function modelText(job: Pick<Job, 'kind' | 'params'>): string | undefined {
  if (job.kind === 'upscale' || job.params.model === DEFAULT_MODELS[modelAbilityFor(job.kind, job.params)]) return undefined;
  return `model ${escapeMarkdown(job.params.model)}`;
}

export function queuedText(job: Job, position: number | undefined): string {
  const where = position === undefined ? 'in the queue' : position <= 1 ? 'next in the queue' : `number ${position} in the queue`;
  const model = modelText(job);
  const head = [title(job), `Queued: ${where}${model ? `, on ${model}` : ''}. Reserved ${gpuSeconds(job.reservedGpuSeconds)} from your budget.`];
  // A prompt certainly longer than the text encoder reads, said before it renders (Cancel refunds).
  return listInMessage({ head, items: promptLengthNotices(job.kind, job.params).map((n) => `⚠️ ${escapeMarkdown(n)}`) }, JOB_TEXT_LENGTH);
}

/** "attempt 2 of 3" on a job's second or later attempt (a retry after a failed one); undefined on its first. */
function retryAttempt(job: Pick<Job, 'attempts' | 'maxAttempts'>): string | undefined {
  return job.attempts > 1 ? `attempt ${job.attempts} of ${job.maxAttempts}` : undefined;
}

/**
 * What the progress counts (JobProgress): branchesDone/branchesTotal are the keyframes a transition,
 * movie or re-roll renders (latent-blend branches, or a walk's distinct frames: the video's frames
 * are made from them afterwards, and the done message counts them as keyframes); framesDone/
 * framesTotal are video frames (an upscale's, a variation animation's).
 */
export function progressText(job: Job, progress: Omit<JobProgress, 'preview'> | null | undefined): string {
  const retry = retryAttempt(job);
  if (!progress) return fitMessage(`${title(job)}\n${retry ? `Retrying on a render worker (${retry})…` : 'Starting on a render worker…'}`, JOB_TEXT_LENGTH);
  const parts = [progressBar(progress.fraction)];
  if (progress.branchesTotal) parts.push(`${progress.branchesDone ?? 0}/${progress.branchesTotal} keyframes`);
  else if (progress.framesTotal) parts.push(`${progress.framesDone ?? 0}/${progress.framesTotal} frames`);
  if (progress.message) parts.push(progress.message);
  if (progress.etaSeconds !== undefined && progress.etaSeconds !== null) parts.push(`about ${duration(progress.etaSeconds)} left`);
  if (retry) parts.push(retry);
  return fitMessage(`${title(job)}\n\`${parts[0]}\` ${parts.slice(1).join(' · ')}`, JOB_TEXT_LENGTH);
}

/**
 * The line saying what a 🔍/🔁 reaction on the finished video does (bot/components/reactions.ts),
 * for the follow-ups the job offers (followUpsFor, as its buttons); undefined when it offers neither,
 * or outside a server (reactions are read from servers only: the GuildMessageReactions intent).
 */
export function reactionsText(job: Pick<Job, 'kind' | 'params' | 'parentJobId' | 'guildId'>): string | undefined {
  if (job.guildId === null) return undefined;
  const kinds = followUpsFor(job);
  const offered = [kinds.includes('upscale') ? '🔍 to upscale it' : undefined, kinds.includes('reroll') ? '🔁 to re-roll it' : undefined].filter((t) => t !== undefined);
  if (offered.length === 0) return undefined;
  // Who may: the same rights as the buttons (bot/permissions.ts, rightsOf).
  return `Its maker (or a moderator) can also react with ${offered.join(' or ')}.`;
}

export function doneText(job: Job, meta: Record<string, unknown>, note?: string): string {
  const seeds = Array.isArray(meta.seeds) ? (meta.seeds as number[]).join(', ') : job.params.seeds.join(', ');
  const bits = [`seeds ${seeds}`];
  const model = modelText(job);
  if (model) bits.push(model);
  const upscaled = upscaleText(job, meta);
  if (upscaled) bits.unshift(upscaled);
  if (typeof meta.keyframes === 'number') bits.push(`${meta.keyframes} keyframes`);
  const took = job.startedAt && job.finishedAt ? (job.finishedAt.getTime() - job.startedAt.getTime()) / 1000 : undefined;
  if (took !== undefined) bits.push(`rendered in ${duration(took)}`);
  if (job.chargedGpuSeconds !== null) bits.push(`charged ${gpuSeconds(job.chargedGpuSeconds)}`);
  const reactions = reactionsText(job);
  const head = [title(job), bits.join(' · '), ...(note ? [note] : []), ...(reactions ? [reactions] : [])];
  // What the worker said about the result (a prompt cut short): one line each, as many as fit.
  return listInMessage({ head, items: resultWarnings(meta).map((w) => `⚠️ ${escapeMarkdown(w)}`) }, JOB_TEXT_LENGTH);
}

/** "1.5×", "3×": a scale as the messages show it. */
const times = (scale: number) => `${Number(scale.toFixed(2))}×`;

/**
 * What an upscale job delivered (its worker's metadata): "Upscaled 4× with esrgan-slim", or, when the
 * full size did not fit the upload limit even re-encoded, "Upscaled with esrgan-slim: 4× asked, only
 * 3× fits Discord's 10 MiB upload limit". Undefined for other jobs.
 */
export function upscaleText(job: Pick<Job, 'kind' | 'params'>, meta: Record<string, unknown>): string | undefined {
  if (job.kind !== 'upscale' || typeof meta.upscaler !== 'string' || typeof meta.scale !== 'number') return undefined;
  const upscaler = escapeMarkdown(meta.upscaler);
  if (typeof meta.reducedFrom !== 'number') return `Upscaled ${times(meta.scale)} with ${upscaler}`;
  const limit = job.params.maxBytes ? `Discord's ${fileSize(job.params.maxBytes)} upload limit` : 'the upload limit';
  return `Upscaled with ${upscaler}: ${times(meta.reducedFrom)} asked, only ${times(meta.scale)} fits ${limit}`;
}

/**
 * What the ledger did with a failed job's reservation, from the job row the farm settled: a job
 * stopped on its render time limit is charged for the time it ran (chargedGpuSeconds) and the rest
 * refunded; other failures are refunded in full.
 */
function failedSettlementText(job: Pick<Job, 'reservedGpuSeconds' | 'chargedGpuSeconds'>): string {
  const charged = job.chargedGpuSeconds ?? 0;
  if (charged <= 0) return 'Your reserved GPU-seconds were refunded.';
  const refunded = Math.max(0, job.reservedGpuSeconds - charged);
  return `It was charged ${gpuSeconds(charged)} for the time it ran; the other ${Number(refunded.toFixed(1))} of the ${Number(job.reservedGpuSeconds.toFixed(1))} reserved went back to your budget.`;
}

/** "Cancelled." by its owner; otherwise who did it, as far as the job's stored reason tells (farm: cancelledBy). */
function cancelledText(job: Pick<Job, 'userId' | 'error'>): string {
  const who = { 'someone-else': ' by a moderator', operator: " by the farm's operator", owner: '', unknown: '' }[cancelledBy(job)];
  return `Cancelled${who}. Unused GPU-seconds went back to your budget.`;
}

export function failedText(job: Job): string {
  if (job.status === 'cancelled') return fitMessage(`${title(job)}\n${cancelledText(job)}`, JOB_TEXT_LENGTH);
  const reason = escapeMarkdown(headOf(failureForOwner(job).split('\n')[0], 300));
  // Expired unclaimed (its userError says in how long): never rendered, refunded in full.
  if (isExpiredJob(job)) {
    const said = `${reason.charAt(0).toUpperCase()}${reason.slice(1)}`.replace(/[.\s]+$/, '');
    return fitMessage(`${title(job)}\n${said}; the GPU-seconds it held are back in your budget. Try again later.`, JOB_TEXT_LENGTH);
  }
  const next = isFarmSideFailure(job) ? 'Try again.' : 'Try again, or change the settings.';
  return fitMessage(
    `${title(job)}\nThe render failed after ${job.attempts} attempt${job.attempts === 1 ? '' : 's'}: ${reason}\n${failedSettlementText(job)} ${next}`,
    JOB_TEXT_LENGTH,
  );
}
