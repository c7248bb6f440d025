import { ConfigError, loadConfig, loadDotEnv, type Config } from '../../config/index.ts';

/** What to tell someone who starts the bot without a token. */
export function missingTokenHelp(): string {
  return `DISCORD_TOKEN is not set, so the bot cannot log in.

To create a bot and get a token:
  1. Open https://discord.com/developers/applications and click "New Application".
  2. On the "Bot" page click "Reset Token", copy it, and put it in .env:  DISCORD_TOKEN=...
  3. On the "OAuth2" page pick the scopes "bot" and "applications.commands", the bot permissions
     "Send Messages", "Attach Files", "Embed Links" and "Add Reactions", and open the generated
     URL to invite the bot to your server.
  4. Optionally set DISCORD_GUILD_ID to your server's id for instant command registration, then run
     npm run deploy-commands
  5. Start again with: npm start

Without a bot you can still render: npm run blend -- "prompt A" "prompt B" --out transition.mp4
`;
}

/**
 * Configuration for the bot's entry points (npm start, deploy-commands, start:sharded): every
 * setting checked, and a missing token explained, before anything connects. Exits on a problem.
 */
export function loadBotConfig(): Config & { discordToken: string } {
  loadDotEnv();
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`error: ${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(1);
  }
  if (!config.discordToken) {
    process.stderr.write(missingTokenHelp());
    process.exit(1);
  }
  return config as Config & { discordToken: string };
}
