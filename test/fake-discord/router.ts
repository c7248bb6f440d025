/** Matching requests to route templates like "/channels/:channelId/messages", and small reply helpers. */
import type { IncomingHttpHeaders } from 'node:http';
import { invalidFormBody } from './errors.ts';

export interface RestContext {
  method: string;
  /** Path below /api/v10, decoded segment by segment. */
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The matched template, e.g. "/channels/:channelId/messages". */
  route: string;
}

export interface RestResult {
  status: number;
  body?: unknown;
}

export type Handler = (ctx: RestContext) => RestResult;

export interface Route {
  method: string;
  template: string;
  segments: string[];
  /** Needs "Authorization: Bot <token>" (interaction callbacks and webhooks do not). */
  auth: boolean;
  handler: Handler;
}

export const ok = (body: unknown, status = 200): RestResult => ({ status, body });
export const noContent: RestResult = { status: 204 };

export class Router {
  private readonly routes: Route[] = [];

  /** Routes are tried in the order added, so literal segments ("@me") go before ":params". */
  add(method: string, template: string, handler: Handler, auth = true): void {
    this.routes.push({ method, template, segments: template.split('/'), auth, handler });
  }

  /** The route for a request, or why there is none (404 unknown path / 405 wrong method). */
  match(method: string, rawPath: string): { route: Route; params: Record<string, string> } | { status: 404 | 405 } {
    // Compare decoded segments: discord.js percent-encodes "@original" and emoji, a decoded "/" stays inside its segment.
    const segments = rawPath.split('/').map(decodeSegment);
    let pathMatched = false;
    for (const route of this.routes) {
      if (route.segments.length !== segments.length) continue;
      const params: Record<string, string> = {};
      const fits = route.segments.every((want, i) => {
        if (want.startsWith(':')) {
          params[want.slice(1)] = segments[i];
          return segments[i] !== '';
        }
        return want === segments[i];
      });
      if (!fits) continue;
      pathMatched = true;
      if (route.method === method) return { route, params };
    }
    return { status: pathMatched ? 405 : 404 };
  }
}

export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function intParam(c: RestContext, key: string, min: number, max: number): number | null {
  const raw = c.query.get(key);
  if (raw === null) return null;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw invalidFormBody([{ path: [key], code: 'NUMBER_TYPE_MAX', message: `${key} must be an integer from ${min} to ${max}.` }]);
  return n;
}

export function boolParam(c: RestContext, key: string): boolean | null {
  const raw = c.query.get(key);
  if (raw === null) return null;
  if (raw !== 'true' && raw !== 'false') throw invalidFormBody([{ path: [key], code: 'BASE_TYPE_BAD_BOOLEAN', message: `${key} must be true or false, got "${raw}".` }]);
  return raw === 'true';
}
