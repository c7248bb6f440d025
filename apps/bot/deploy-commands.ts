/**
 * npm run deploy-commands: registers the slash commands with Discord. Guild-scoped when
 * DISCORD_GUILD_ID is set (instant, for testing), else global (can take up to an hour to appear).
 */
import { REST, Routes } from 'discord.js';
import { commands } from '../../bot/commands/index.ts';
import { loadBotConfig } from './bot-config.ts';
import { SETTINGS_DOCS, settingLines, settingsOnlyArguments } from '../cli-kit.ts';

export async function deployCommands(opts: { token: string; guildId?: string; apiBase?: string }): Promise<{ scope: string; count: number }> {
  const rest = new REST(opts.apiBase ? { api: opts.apiBase } : {}).setToken(opts.token);
  const app = (await rest.get(Routes.currentApplication())) as { id: string };
  const body = commands.map((c) => c.data.toJSON());
  const route = opts.guildId ? Routes.applicationGuildCommands(app.id, opts.guildId) : Routes.applicationCommands(app.id);
  const result = (await rest.put(route, { body })) as unknown[];
  return { scope: opts.guildId ? `server ${opts.guildId}` : 'global', count: result.length };
}

if (process.argv[1]?.endsWith('deploy-commands.ts')) {
  settingsOnlyArguments(
    'npm run deploy-commands',
    `Usage: npm run deploy-commands

Registers the bot's slash commands with Discord. It takes no arguments; the settings it reads:

${settingLines(['discordToken', 'discordGuildId', 'discordApiBase'])}

${SETTINGS_DOCS}
`,
  );
  const config = loadBotConfig();
  try {
    const r = await deployCommands({ token: config.discordToken, guildId: config.discordGuildId, apiBase: config.discordApiBase });
    console.log(`Registered ${r.count} commands (${r.scope}).`);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
