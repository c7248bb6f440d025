/**
 * Every refusal a user can see, in words that say what was wrong and what to do. Stack traces and
 * internal messages stay in the log; the user gets a short reference to quote instead.
 */
import { randomBytes } from 'node:crypto';
import { DEFAULT_MODELS, INPUT_NAMES, isConnectionError, loggableError } from '../farm/index.ts';
import { BudgetExceededError, FarmError, JobParamsError, NoCapableWorkerError } from '../farm/index.ts';
import { discordWhen, gpuSeconds } from './format.ts';
import { SMALLEST_SIZE_PIXELS } from './sizes.ts';

/** Input the bot itself cannot map onto a request (e.g. a size choice it does not know). */
export class UserInputError extends Error {
  override name = 'UserInputError';
}

/**
 * The farm did not answer a lookup made before an interaction's first answer in time for Discord's
 * 3 s (beforeAnswer in submit.ts): the member is told so, and nothing was done.
 */
export class FarmTooSlowError extends UserInputError {
  override name = 'FarmTooSlowError';
  constructor() {
    super("The render farm is slow to answer right now, so nothing was done; try again in a moment. If it keeps happening, tell the farm's operator.");
  }
}

/**
 * Whether a moderator may act on a job could not be checked with Discord in time (are they in the
 * private thread it was made in? rightsOf in permissions.ts): nothing was done. It names neither the
 * job nor where it is.
 */
export class AccessUncheckedError extends UserInputError {
  override name = 'AccessUncheckedError';
  constructor() {
    super("I couldn't check with Discord just now whether you may act on that job, so nothing was done; try again in a moment.");
  }
}

/** The farm's database could not be reached (the database handle logs the outage once, with its cause). */
const DATABASE_UNREACHABLE = "The render farm's database isn't answering right now; try again in a minute. If it keeps happening, tell the farm's operator.";

/**
 * The message for `err`. `optionNames` maps the farm's field names (the first words of a
 * JobParamsError issue, e.g. "durationSeconds" or "prompt 1") to the Discord option a member
 * typed, so a refusal names what they can fix.
 */
export function userMessage(err: unknown, log: (msg: string) => void = console.error, optionNames: Readonly<Record<string, string>> = {}): string {
  if (err instanceof UserInputError) return err.message;
  if (isConnectionError(err)) return DATABASE_UNREACHABLE;
  if (err instanceof BudgetExceededError) return budgetText(err);
  if (err instanceof JobParamsError) return `That request can't be rendered: ${err.issues.map((issue) => nameOption(issue, optionNames)).join('; ')}.`;
  if (err instanceof FarmError) {
    switch (err.code) {
      case 'no_capable_worker':
        // The farm's message is the operator's (worker counts, model ids, settings): logs and the CLI keep it.
        if (err instanceof NoCapableWorkerError) return noWorkerText(err, optionNames);
        return /No render worker is online/.test(err.message) ? NO_WORKER_ONLINE : NO_WORKER_CAN;
      case 'budget_exceeded':
      case 'too_many_active_jobs':
      case 'not_found':
      case 'invalid_state':
      case 'invalid_params':
      case 'too_many_pictures':
        return err.message;
    }
  }
  const ref = randomBytes(4).toString('hex');
  log(`[bot] unexpected error (ref ${ref}): ${loggableError(err)}`);
  return `Something went wrong on our side (reference \`${ref}\`). Please try again; if it keeps happening, tell the farm's operator the reference.`;
}

/** The farm's budget refusal with its refill time as a Discord timestamp (each reader's own clock), not an ISO string. */
function budgetText(err: BudgetExceededError): string {
  return (
    `This job needs about ${gpuSeconds(err.costGpuSeconds)} but you have ${gpuSeconds(err.balanceGpuSeconds)} left; ` +
    `your budget tops up to ${gpuSeconds(err.refillGpuSeconds)} ${discordWhen(err.nextRefillAt)}; or ask for a smaller, shorter or lower-quality render.`
  );
}

/** "durationSeconds must be …" -> "`duration` must be …" when the field has an option name. */
function nameOption(issue: string, optionNames: Readonly<Record<string, string>>): string {
  const field = Object.keys(optionNames)
    .sort((a, b) => b.length - a.length)
    .find((f) => issue.startsWith(`${f} `));
  return field === undefined ? issue : `\`${optionNames[field]}\`${issue.slice(field.length)}`;
}

/** Refusals of a job no worker can take, in the command's own terms: no setting names, model ids, pixel counts or worker counts. */
export const NO_WORKER_ONLINE = "No render worker is online right now, so nothing would start. Try again in a few minutes, or tell the farm's operator if it lasts.";
const NO_WORKER_CAN = "No render worker online can take this job right now. Try again later, or ask the farm's operator.";
const ASK = "Try again later, or ask the farm's operator.";

/** What a model must do, as a member would say it: "This farm can't {what} right now". */
const ABILITY_WHAT: Readonly<Record<NonNullable<NoCapableWorkerError['ability']>, string>> = {
  text: 'render transitions from text',
  picture: 'start or end a video at a picture',
  inpaint: 'inpaint pictures',
  variation: 'make image variations',
};

/** "`from_image` and `to_image`" for the inputs that have an option name, or undefined when none has. */
function optionList(inputs: readonly string[], optionNames: Readonly<Record<string, string>>): string | undefined {
  const names = inputs.flatMap((input) => (optionNames[input] ? [`\`${optionNames[input]}\``] : []));
  return names.length === 0 ? undefined : names.join(' and ');
}

/**
 * A model the job names in place of the default (DEFAULT_MODELS) — picked by the member, or by the
 * server's defaults — where the command has a model option: no online worker has it (shortfall
 * `model`), or those that have it cannot use it for this job (`ability`: a variation model for text,
 * a text-only model for pictures or inpainting). Which model, and what to do. Undefined otherwise
 * (the default model's texts stand: it is the farm that cannot, not the model picked). The id
 * passed parseJobParams, so it holds no markdown.
 */
function chosenModelText(err: NoCapableWorkerError, optionNames: Readonly<Record<string, string>>): string | undefined {
  const option = optionNames.model;
  const ability = err.ability ?? 'text';
  if (!option || err.model === DEFAULT_MODELS[ability]) return undefined;
  if (err.shortfall === 'model') return `No render worker online has the model \`${err.model}\` right now, so nothing was queued: pick one from the list the \`${option}\` option offers, or ask the farm's operator.`;
  if (err.shortfall === 'ability') return `The model \`${err.model}\` can't ${ABILITY_WHAT[ability]}: pick another from the list the \`${option}\` option offers, or leave \`${option}\` out.`;
  return undefined;
}

function noWorkerText(err: NoCapableWorkerError, optionNames: Readonly<Record<string, string>>): string {
  switch (err.shortfall) {
    case 'no_worker':
      return NO_WORKER_ONLINE;
    case 'no_upscaler':
      return `Upscaling isn't available on this farm right now: no render worker online can upscale. ${ASK}`;
    case 'upscaler':
      return `This farm can't upscale this video${err.upscaleFactor ? ` ${err.upscaleFactor}×` : ''} right now: no render worker online can. ${ASK}`;
    case 'size': {
      const size = optionNames.width;
      return size && err.pixels > SMALLEST_SIZE_PIXELS
        ? `No render worker online can render this size right now: pick a smaller \`${size}\`, or ask the farm's operator.`
        : `No render worker online can render a video this size right now. ${ASK}`;
    }
    case 'model':
    case 'ability': {
      const ability = err.ability ?? 'text';
      const chosen = chosenModelText(err, optionNames);
      if (chosen) return chosen;
      // No worker has the main model at all (a text job would be refused too): leaving pictures out
      // or making a new /movie would not help. Inpainting and variations have models of their own.
      if (err.shortfall === 'model' && (ability === 'text' || ability === 'picture')) return `This farm can't render this right now: no render worker online has its model. ${ASK}`;
      if (err.kind === 'extend' && ability === 'picture') {
        return `This farm can't extend this video right now: it starts or ends at a picture, and no render worker online has a model that can continue from one. Make a new /movie instead, or ask the farm's operator.`;
      }
      const leaveOut =
        ability === 'picture' ? optionList([INPUT_NAMES.image(0), INPUT_NAMES.image(1)], optionNames) : ability === 'inpaint' ? optionList([INPUT_NAMES.inpaintImage, INPUT_NAMES.inpaintMask], optionNames) : undefined;
      return `This farm can't ${ABILITY_WHAT[ability]} right now: no render worker online has a model that can. ${leaveOut ? `Leave ${leaveOut} out, or ask the farm's operator.` : ASK}`;
    }
  }
}
