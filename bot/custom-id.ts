/**
 * Component custom ids carry only an action and a job id ("bf:<action>:<job>"); everything else is
 * looked up in the database when the button is pressed, so buttons keep working after a restart and
 * cannot be forged into acting on someone else's behalf.
 */
export const BUTTON_ACTIONS = ['upscale', 'reroll', 'extend', 'cancel'] as const;
export type ButtonAction = (typeof BUTTON_ACTIONS)[number];

const PREFIX = 'bf';

export function buttonId(action: ButtonAction, jobId: number): string {
  return `${PREFIX}:${action}:${jobId}`;
}

export function parseButtonId(customId: string): { action: ButtonAction; jobId: number } | undefined {
  const m = /^bf:([a-z]+):(\d{1,15})$/.exec(customId);
  if (!m || !(BUTTON_ACTIONS as readonly string[]).includes(m[1])) return undefined;
  return { action: m[1] as ButtonAction, jobId: Number(m[2]) };
}

/** Modal ids: the extend form names its parent job; the movie form carries the command's options. */
export function extendModalId(jobId: number): string {
  return `${PREFIX}:extend-form:${jobId}`;
}

export function movieModalId(options: Record<string, string | number>): string {
  const id = `${PREFIX}:movie-form:${Buffer.from(JSON.stringify(options)).toString('base64url')}`;
  if (id.length > 100) throw new RangeError('movie form options do not fit in a custom id');
  return id;
}

export type ModalRoute = { kind: 'extend'; jobId: number } | { kind: 'movie'; options: Record<string, string | number> };

export function parseModalId(customId: string): ModalRoute | undefined {
  const ext = /^bf:extend-form:(\d{1,15})$/.exec(customId);
  if (ext) return { kind: 'extend', jobId: Number(ext[1]) };
  const movie = /^bf:movie-form:([A-Za-z0-9_-]*)$/.exec(customId);
  if (movie) {
    try {
      const options = JSON.parse(Buffer.from(movie[1], 'base64url').toString('utf8'));
      if (options && typeof options === 'object' && !Array.isArray(options)) return { kind: 'movie', options };
    } catch {
      return undefined;
    }
  }
  return undefined;
}
