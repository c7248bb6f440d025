// What the bot said privately in answer to a command it refused (through the fake Discord).
import { expect } from 'vitest';
import type { InteractionHandle } from '../fake-discord/index.ts';
import { until } from './until.ts';

/** The reason a refused command was sent privately (its public "thinking…" replaced): the first follow-up, which must be ephemeral. */
export async function privateReason(handle: InteractionHandle): Promise<string> {
  await until(() => handle.followUps().length > 0, 15_000, 'a private reason');
  const [reason] = handle.followUps();
  expect(reason.ephemeral).toBe(true);
  return reason.content ?? '';
}
