/**
 * Upscale, Re-roll and Extend: new jobs made from a finished one. Whoever asks pays: a moderator
 * acting on someone else's video spends their own budget, never the owner's.
 */
import type { JobKind } from '../db/schema.ts';
import type { JobParams } from '../farm/job-params.ts';
import type { Job } from '../farm/types.ts';

export type FollowUp = 'upscale' | 'reroll' | 'extend';

export function followUpParams(kind: FollowUp, parent: Job, newPrompts: string[] = []): { kind: JobKind; params: Record<string, unknown> } {
  const { upscaleFactor: _drop, ...base } = parent.params as JobParams & { upscaleFactor?: number };
  switch (kind) {
    case 'upscale':
      // 2x each side: a 4x-pixel re-render of the same transition (same prompts and seeds).
      return { kind: 'upscale', params: { ...base, upscaleFactor: 2 } };
    case 'reroll':
      return { kind: 'reroll', params: { ...base, seeds: undefined } };
    case 'extend':
      return {
        kind: 'extend',
        params: { ...base, prompts: [...base.prompts, ...newPrompts], seeds: [...base.seeds, ...newPrompts.map(() => null)] },
      };
  }
}
