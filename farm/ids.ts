/**
 * The one rule for the ids the farm stores and hands around: user, guild, channel, role and
 * message ids. Discord's are snowflakes (17 to 20 digits); the operator CLI and other front ends
 * may use names such as "me" or "web:alice". An id is 1 to 64 characters of letters, digits and
 * _ . : - (no spaces, no control characters). Longer or odder ids are refused at the API with a
 * message that says so, before they reach the database (a 7,852-character id once made every
 * event of the farm too large to publish).
 */
import { FarmError } from './errors.ts';

export const MAX_ID_LENGTH = 64;
const ID = /^[A-Za-z0-9_.:-]+$/;

export class InvalidIdError extends FarmError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('invalid_params', message);
  }

  override details(): Record<string, unknown> {
    return { field: this.field };
  }
}

/** Throws InvalidIdError unless `value` is a valid id; `field` names it in the message ("user id"). */
export function checkId(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidIdError(field, `The ${field} is missing: give 1 to ${MAX_ID_LENGTH} characters.`);
  if (value.length > MAX_ID_LENGTH) {
    throw new InvalidIdError(field, `The ${field} is ${value.length} characters long; ids have at most ${MAX_ID_LENGTH} (a Discord id has 17 to 20 digits).`);
  }
  if (!ID.test(value)) {
    throw new InvalidIdError(field, `The ${field} ${JSON.stringify(value)} has characters ids may not have; use letters, digits and _ . : - only.`);
  }
  return value;
}

/** Like checkId, for optional ids (null and undefined pass). */
export function checkOptionalId(field: string, value: string | null | undefined): void {
  if (value !== null && value !== undefined) checkId(field, value);
}

/** Checks the ids of a request: user, guild, channel, message and role ids, whichever are present. */
export function checkRequestIds(ids: { userId?: unknown; guildId?: string | null; channelId?: string | null; messageId?: string | null; roleIds?: readonly string[] | null }): void {
  if ('userId' in ids) checkId('user id', ids.userId);
  checkOptionalId('guild id', ids.guildId);
  checkOptionalId('channel id', ids.channelId);
  checkOptionalId('message id', ids.messageId);
  for (const role of ids.roleIds ?? []) checkId('role id', role);
}

/**
 * Job ids are positive whole numbers up to Number.MAX_SAFE_INTEGER (jobs.id is a bigint, read as
 * a JavaScript number). Anything else names no job: lookups answer "no such job" instead of
 * sending a value the database would refuse (or round).
 */
export function isJobId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}

/** A job id typed by someone: decimal digits only, 1 to Number.MAX_SAFE_INTEGER; undefined otherwise. */
export function parseJobId(raw: string): number | undefined {
  if (!/^\d{1,16}$/.test(raw)) return undefined;
  const id = Number(raw);
  return isJobId(id) ? id : undefined;
}
