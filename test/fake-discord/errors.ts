/**
 * Discord's JSON error bodies. discord.js turns them into DiscordAPIError with `.code`, and
 * flattens `errors` into its message, so a malformed request shows what was wrong.
 */

export interface FieldIssue {
  path: (string | number)[];
  code: string;
  message: string;
}

type ErrorTree = { _errors?: { code: string; message: string }[]; [key: string]: unknown };

export class ApiError extends Error {
  readonly status: number;
  readonly code: number;
  readonly errors: ErrorTree | undefined;
  readonly headers: Record<string, string>;
  /** Replaces the usual {message, code} body (rate limits answer {message, retry_after, global}). */
  readonly customBody: Record<string, unknown> | undefined;

  constructor(
    status: number,
    code: number,
    message: string,
    opts: { errors?: ErrorTree; headers?: Record<string, string>; body?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = opts.errors;
    this.headers = opts.headers ?? {};
    this.customBody = opts.body;
  }

  body(): Record<string, unknown> {
    if (this.customBody) return this.customBody;
    return this.errors ? { message: this.message, code: this.code, errors: this.errors } : { message: this.message, code: this.code };
  }
}

/** 400 Invalid Form Body (50035) with Discord's nested `errors` tree. */
export function invalidFormBody(issues: FieldIssue[]): ApiError {
  const tree: ErrorTree = {};
  for (const issue of issues) {
    let node: ErrorTree = tree;
    for (const key of issue.path) {
      const k = String(key);
      node[k] ??= {};
      node = node[k] as ErrorTree;
    }
    (node._errors ??= []).push({ code: issue.code, message: issue.message });
  }
  return new ApiError(400, 50035, 'Invalid Form Body', { errors: tree });
}

export const Errors = {
  unknownApplication: () => new ApiError(404, 10002, 'Unknown Application'),
  unknownChannel: () => new ApiError(404, 10003, 'Unknown Channel'),
  unknownGuild: () => new ApiError(404, 10004, 'Unknown Guild'),
  unknownMember: () => new ApiError(404, 10007, 'Unknown Member'),
  unknownMessage: () => new ApiError(404, 10008, 'Unknown Message'),
  unknownRole: () => new ApiError(404, 10011, 'Unknown Role'),
  unknownUser: () => new ApiError(404, 10013, 'Unknown User'),
  unknownEmoji: () => new ApiError(400, 10014, 'Unknown Emoji'),
  unknownWebhook: () => new ApiError(404, 10015, 'Unknown Webhook'),
  unknownInteraction: () => new ApiError(404, 10062, 'Unknown interaction'),
  unknownCommand: () => new ApiError(404, 10063, 'Unknown application command'),
  notAuthorizedForApplication: () => new ApiError(403, 20012, 'You are not authorized to perform this action on this application'),
  unauthorized: () => new ApiError(401, 0, '401: Unauthorized'),
  notFound: () => new ApiError(404, 0, '404: Not Found'),
  methodNotAllowed: () => new ApiError(405, 0, '405: Method Not Allowed'),
  entityTooLarge: () => new ApiError(413, 40005, 'Request entity too large'),
  alreadyAcknowledged: () => new ApiError(400, 40060, 'Interaction has already been acknowledged.'),
  missingAccess: () => new ApiError(403, 50001, 'Missing Access'),
  cannotEditOthersMessage: () => new ApiError(403, 50005, 'Cannot edit a message authored by another user'),
  missingPermissions: () => new ApiError(403, 50013, 'Missing Permissions'),
  emptyMessage: () => new ApiError(400, 50006, 'Cannot send an empty message'),
  nonTextChannel: () => new ApiError(400, 50008, 'Cannot send messages in a non-text channel'),
  invalidWebhookToken: () => new ApiError(401, 50027, 'Invalid Webhook Token'),
  invalidApiVersion: () => new ApiError(400, 50041, 'Invalid API version provided'),
  threadArchived: () => new ApiError(400, 50083, 'Thread is archived'),
  invalidJson: (detail: string) => new ApiError(400, 50109, `The request body contains invalid JSON. (${detail})`),
  threadLocked: () => new ApiError(400, 160005, 'Thread is locked'),
  badRequest: (message: string) => new ApiError(400, 0, message),
};
