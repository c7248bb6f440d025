/** failNext(): answer the next matching request with a rate limit, a 413, a 5xx... instead of the route. */
import { ApiError } from './errors.ts';

export interface FailNextOptions {
  /** A RegExp tested against the path below /api/v10, or a path template where ":name" matches one segment. */
  route: RegExp | string;
  /** Only this HTTP method (any when left out). */
  method?: string;
  status: number;
  /** 429 only: seconds to wait (Retry-After and retry_after); 1 by default. */
  retryAfter?: number;
  /** 429 only: a global rate limit (X-RateLimit-Global). */
  global?: boolean;
  /** 429 only: X-RateLimit-Scope, "user" by default. */
  scope?: 'user' | 'shared' | 'global';
  /** How many matching requests fail; 1 by default. */
  times?: number;
  /** Overrides the Discord error code / message of the body. */
  code?: number;
  message?: string;
}

interface PendingFault {
  matches(method: string, path: string): boolean;
  opts: FailNextOptions;
  left: number;
}

const DEFAULTS: Record<number, { code: number; message: string }> = {
  400: { code: 50035, message: 'Invalid Form Body' },
  401: { code: 0, message: '401: Unauthorized' },
  403: { code: 50013, message: 'Missing Permissions' },
  404: { code: 0, message: '404: Not Found' },
  413: { code: 40005, message: 'Request entity too large' },
  500: { code: 0, message: '500: Internal Server Error' },
  502: { code: 0, message: '502: Bad Gateway' },
  503: { code: 0, message: '503: Service Unavailable' },
};

export class FaultInjector {
  private readonly pending: PendingFault[] = [];

  add(opts: FailNextOptions): void {
    if (!Number.isInteger(opts.status) || opts.status < 400 || opts.status > 599) throw new Error(`failNext status must be an HTTP error status, got ${opts.status}`);
    const method = opts.method?.toUpperCase();
    const test = typeof opts.route === 'string' ? templateRegExp(opts.route) : opts.route;
    this.pending.push({ opts, left: opts.times ?? 1, matches: (m, path) => (method === undefined || method === m) && test.test(path) });
  }

  /** Consumes and returns the error for this request, if a pending fault matches it. */
  take(method: string, path: string): ApiError | null {
    const fault = this.pending.find((f) => f.matches(method, path));
    if (!fault) return null;
    if (--fault.left === 0) this.pending.splice(this.pending.indexOf(fault), 1);
    return fault.opts.status === 429 ? rateLimit(fault.opts, path) : plainError(fault.opts);
  }

  /** Drops every pending fault (an outage ends). */
  clear(): void {
    this.pending.length = 0;
  }

  get pendingCount(): number {
    return this.pending.length;
  }
}

function templateRegExp(template: string): RegExp {
  const path = template.replace(/^\/api\/v\d+/, '').replace(/\?.*$/, '');
  const pattern = path
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${pattern}$`);
}

function rateLimit(opts: FailNextOptions, path: string): ApiError {
  const retryAfter = opts.retryAfter ?? 1;
  const scope = opts.global ? 'global' : (opts.scope ?? 'user');
  const headers: Record<string, string> = {
    'Retry-After': String(retryAfter),
    'X-RateLimit-Scope': scope,
  };
  if (opts.global) headers['X-RateLimit-Global'] = 'true';
  else {
    Object.assign(headers, {
      'X-RateLimit-Limit': '5',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': ((Date.now() + retryAfter * 1000) / 1000).toFixed(3),
      'X-RateLimit-Reset-After': String(retryAfter),
      'X-RateLimit-Bucket': `fake-${Buffer.from(path.replace(/\d{17,20}/g, ':id')).toString('hex').slice(0, 24)}`,
    });
  }
  const message = opts.message ?? 'You are being rate limited.';
  return new ApiError(429, opts.code ?? 0, message, { headers, body: { message, retry_after: retryAfter, global: opts.global === true, ...(opts.code !== undefined ? { code: opts.code } : {}) } });
}

function plainError(opts: FailNextOptions): ApiError {
  const fallback = DEFAULTS[opts.status] ?? { code: 0, message: `${opts.status}: Injected failure` };
  return new ApiError(opts.status, opts.code ?? fallback.code, opts.message ?? fallback.message);
}
