/**
 * What a database error may say in a log: its code and message, never the query's parameters
 * (drizzle's DrizzleQueryError puts them, interaction tokens included, into its message) and
 * never a row's values (Postgres' `detail`), with any connection string password hidden.
 * Also: which errors mean "the database cannot be reached" (an outage) rather than "this
 * statement was refused".
 */
import { redactConnectionString } from '../config/redact.ts';

interface ErrorLike {
  name?: string;
  code?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
  params?: unknown;
}

/** Node socket errors that mean the server is unreachable. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN']);
/**
 * Postgres SQLSTATEs for the same: class 08 (connection exception); the server cannot take the
 * session now: 57P01 admin_shutdown (also a terminated backend), 57P02 crash_shutdown, 57P03
 * cannot_connect_now ("the database system is starting up / shutting down / not accepting
 * connections"); and 53300 too_many_connections ("sorry, too many clients already").
 */
const OUTAGE_SQLSTATES = /^(08...|57P01|57P02|57P03|53300)$/;
/**
 * 55000 (object_not_in_prerequisite_state) means "cannot connect now" only when a database has
 * allow_connections = false ('database "x" is not currently accepting connections'); statements
 * refused with 55000 for other reasons (e.g. currval before nextval) are no outage.
 */
const NOT_ACCEPTING_CONNECTIONS = { code: '55000', message: /is not currently accepting connections/i };
/** node-postgres' own messages for connections that died or timed out (it gives them no code). */
const OUTAGE_MESSAGES = /Connection terminated|connection timeout|^timeout expired$|timeout exceeded when trying to connect|Query read timeout|not queryable|Client was closed/i;

/** The chain from a wrapper (drizzle's query error) down to the driver's error. */
function chain(error: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  let current: unknown = error;
  while (current && typeof current === 'object' && out.length < 10) {
    out.push(current as ErrorLike);
    current = (current as ErrorLike).cause;
  }
  return out;
}

/** The innermost error that says anything: a driver error below drizzle's wrapper. */
function rootCause(error: unknown): ErrorLike | undefined {
  const links = chain(error);
  // Skip wrappers that carry the query (their message holds the parameters).
  const meaningful = links.filter((e) => !('params' in e) && e.name !== 'DrizzleQueryError');
  return meaningful[meaningful.length - 1] ?? links[links.length - 1];
}

function messageOf(e: ErrorLike): string {
  const own = typeof e.message === 'string' ? e.message : '';
  if (own) return own;
  // Node's AggregateError (one attempt per address) has an empty message; its parts say why.
  if (Array.isArray(e.errors)) {
    const parts = e.errors.map((x) => (x && typeof x === 'object' ? messageOf(x as ErrorLike) : String(x))).filter(Boolean);
    if (parts.length) return [...new Set(parts)].join('; ');
  }
  return 'no message';
}

/** String parameters of the failed query (some Postgres messages quote the value they refused). */
function paramValues(error: unknown): string[] {
  return chain(error)
    .flatMap((e) => (Array.isArray(e.params) ? e.params : []))
    .map((p) => (typeof p === 'string' ? p : Buffer.isBuffer(p) ? '' : JSON.stringify(p) ?? ''))
    .filter((p) => p.length >= 4)
    .sort((a, b) => b.length - a.length);
}

/** "CODE: message" of the error's cause, safe to log; for any error, database or not. */
export function describeDbError(error: unknown): string {
  if (!(error && typeof error === 'object')) return redactConnectionString(String(error));
  const cause = rootCause(error) ?? (error as ErrorLike);
  const code = typeof cause.code === 'string' || typeof cause.code === 'number' ? String(cause.code) : undefined;
  let message = redactConnectionString(messageOf(cause));
  for (const value of paramValues(error)) message = message.split(value).join('***');
  return code && !message.startsWith(code) ? `${code}: ${message}` : message;
}

/** True when the error means the database could not be reached (not that it refused a statement). */
export function isConnectionError(error: unknown): boolean {
  return chain(error).some((e) => {
    const code = typeof e.code === 'string' ? e.code : '';
    if (NETWORK_CODES.has(code) || OUTAGE_SQLSTATES.test(code)) return true;
    if (code === NOT_ACCEPTING_CONNECTIONS.code && typeof e.message === 'string' && NOT_ACCEPTING_CONNECTIONS.message.test(e.message)) return true;
    if (Array.isArray(e.errors) && e.errors.some((x) => isConnectionError(x))) return true;
    return typeof e.message === 'string' && OUTAGE_MESSAGES.test(e.message) && !('params' in e);
  });
}

/**
 * The line to log for a failed database operation, or undefined when it failed because the
 * database is unreachable: the database handle logs each outage once (db/outage.ts), so loops
 * that retry do not repeat it.
 */
export function dbFailureLine(error: unknown): string | undefined {
  return isConnectionError(error) ? undefined : describeDbError(error);
}

/**
 * An error for the log of unexpected failures: a database error as its cause's code and message
 * (describeDbError), anything else with its stack; connection string passwords hidden either way.
 */
export function loggableError(error: unknown): string {
  const fromDatabase = chain(error).some((e) => 'params' in e || e.name === 'DrizzleQueryError' || (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && 'severity' in e));
  if (fromDatabase || !(error instanceof Error)) return describeDbError(error);
  return redactConnectionString(error.stack ?? error.message);
}
