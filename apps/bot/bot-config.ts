import { loadConfig, loadDotEnv, type Config } from '../../config/index.ts';
import { INVITE_PERMISSIONS, listOfNames, permissionsInteger } from '../../bot/permissions.ts';

/** The bot's invite URL: its scopes and INVITE_PERMISSIONS, with APPLICATION_ID for the application's id to fill in. */
export function inviteUrl(): string {
  return `https://discord.com/oauth2/authorize?client_id=APPLICATION_ID&scope=bot+applications.commands&permissions=${permissionsInteger(INVITE_PERMISSIONS)}`;
}

/** What to tell someone who starts the bot without a token. */
export function missingTokenHelp(): string {
  const permissions = listOfNames(INVITE_PERMISSIONS.map((p) => `"${p.name}"`));
  return `DISCORD_TOKEN is not set, so the bot cannot log in.

To create a bot and get a token:
  1. Open https://discord.com/developers/applications and click "New Application".
  2. On the "Bot" page click "Reset Token", copy it, and put it in .env:  DISCORD_TOKEN=...
  3. Invite the bot to your server: on the "OAuth2" page pick the scopes "bot" and
     "applications.commands" and the bot permissions
       ${permissions}
     (to post renders and answer 🔍/🔁 reactions), and open the generated URL; or open this one
     with your Application ID (on the "General Information" page) in place of APPLICATION_ID:
       ${inviteUrl()}
  4. Optionally set DISCORD_GUILD_ID to your server's id for instant command registration, then run
     npm run deploy-commands
  5. Start again with: npm start

Without a bot you can still render: npm run blend -- "prompt A" "prompt B" --out transition.mp4
`;
}

/** What to say when Discord refuses the bot's token (npm start, start:sharded): where, and what to do. */
export function tokenRefusedText(apiBase: string | undefined): string {
  return `the Discord API at ${apiBase ?? 'discord.com'} refused DISCORD_TOKEN (401 Unauthorized): copy the bot's token again from the developer portal ("Bot" page) into DISCORD_TOKEN.`;
}

/**
 * The one line for a bot that could not log in to Discord: a refused token or an API it cannot
 * reach says where and what to do (discord.js says only "An invalid token was provided." or
 * "connect ECONNREFUSED 127.0.0.1:443"); anything else keeps its own message.
 */
export function loginFailureText(error: unknown, apiBase: string | undefined): string {
  const e = (error ?? {}) as { code?: unknown; name?: unknown; status?: unknown; message?: unknown; cause?: { code?: unknown } };
  if (e.code === 'TokenInvalid' || e.status === 401) return tokenRefusedText(apiBase);
  // A socket error (ECONNREFUSED, ENOTFOUND, ETIMEDOUT, ...) or undici's own (UND_ERR_CONNECT_TIMEOUT,
  // UND_ERR_SOCKET, ...), thrown as it is or as a fetch failure's cause; or a request that connected
  // and got no answer in time (discord.js's REST timeout aborts it: AbortError, or TimeoutError).
  const network = [e.code, e.cause?.code].find((code): code is string => typeof code === 'string' && /^(E[A-Z_]+|UND_ERR_[A-Z_]+)$/.test(code));
  const reason = network ?? (e.name === 'AbortError' || e.name === 'TimeoutError' ? 'no answer in time' : undefined);
  if (reason) return `could not reach the Discord API at ${apiBase ?? 'discord.com'} (${reason}): check DISCORD_API_BASE (unset = Discord's own) and that the API is reachable from here.`;
  return typeof e.message === 'string' && e.message ? e.message : String(error);
}

/**
 * Configuration for the bot's entry points (npm start, deploy-commands, start:sharded): every
 * setting checked, and a missing token explained, before anything connects. Exits on a problem.
 */
export function loadBotConfig(): Config & { discordToken: string } {
  let config: Config;
  try {
    loadDotEnv();
    config = loadConfig();
  } catch (err) {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  if (!config.discordToken) {
    process.stderr.write(missingTokenHelp());
    process.exit(1);
  }
  return config as Config & { discordToken: string };
}
