// /settings defaults (bot/commands/settings.ts) on a real farm database, without Discord: the
// warnings about a default model are read after the default is stored, so a failure to read them
// drops only the warnings, never the answer that it was saved. Through Discord: models.e2e.test.ts.
import type { ChatInputCommandInteraction } from 'discord.js';
import { describe, expect, it, vi } from 'vitest';

vi.mock('../../farm/index.ts', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../farm/index.ts')>();
  return { ...actual, offeredModels: vi.fn(actual.offeredModels) };
});

import { getGuildSettings, offeredModels, type FarmContext } from '../../farm/index.ts';
import { settings } from '../../bot/commands/settings.ts';
import type { BotContext } from '../../bot/context.ts';
import { useTestFarm } from '../helpers/farm.ts';

/** Just enough of a /settings defaults interaction by a member with Manage Server: what it was answered. */
function defaultsCommand(guildId: string, values: Record<string, string | number | boolean>) {
  const replies: string[] = [];
  const get = (name: string) => values[name] ?? null;
  const interaction = {
    guildId,
    memberPermissions: { has: () => true },
    deferReply: async () => {},
    editReply: async (reply: string | { content: string }) => void replies.push(typeof reply === 'string' ? reply : reply.content),
    options: { getSubcommand: () => 'defaults', getString: get, getNumber: get, getInteger: get, getBoolean: get },
  };
  return { interaction: interaction as unknown as ChatInputCommandInteraction, replies };
}

describe('/settings defaults model', () => {
  let farm: FarmContext;
  useTestFarm('pglite', {}, (t) => ({ farm } = t));

  it('says the default was saved when the models on offer cannot be read for its warnings (logged)', async () => {
    const logs: string[] = [];
    const ctx = { farm, log: (line: string) => void logs.push(line) } as unknown as BotContext;
    vi.mocked(offeredModels).mockRejectedValueOnce(new Error('connection reset'));
    const { interaction, replies } = defaultsCommand('g-saved', { model: 'sdxl-turbo' });
    await settings.execute(interaction, ctx);
    expect((await getGuildSettings(farm, 'g-saved')).defaults).toEqual({ model: 'sdxl-turbo' });
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatch(/^Render defaults: model sdxl-turbo\.\n/);
    expect(replies[0]).not.toMatch(/went wrong|try again/i);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(/\/settings defaults: model sdxl-turbo saved for server g-saved, but the models on offer could not be read .*connection reset/);

    // When they can be read, the warning is there as before (no worker online offers it).
    const again = defaultsCommand('g-saved', { model: 'sdxl-turbo' });
    await settings.execute(again.interaction, ctx);
    expect(again.replies[0]).toMatch(/^⚠️ No render worker online offers the model `sdxl-turbo` right now: .*\nRender defaults: model sdxl-turbo\./);
  });
});
