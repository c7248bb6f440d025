/**
 * The Discord side: a discord.js client with only the intents the features need (slash commands
 * and buttons need none beyond Guilds; 🔍/🔁 need guild message reactions; no message content),
 * routing interactions to the handlers (commands/, one file per command, each answering its own
 * options' autocomplete; components/ for buttons, forms and reactions), and the messenger that keeps job messages up to date (delivery.ts).
 * The farm and the bot's settings are handed in by the entry point (apps/bot/main.ts).
 */
import {
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  Partials,
  type Interaction,
  type MessageReaction,
  type PartialMessageReaction,
  type PartialUser,
  type User,
} from 'discord.js';
import { loggableError, type FarmContext } from '../farm/index.ts';
import type { BotContext } from './context.ts';
import { commandsByName } from './commands/index.ts';
import { handleButton } from './components/buttons.ts';
import { handleForm } from './components/forms.ts';
import { handleReaction } from './components/reactions.ts';
import { JobMessenger, type MessengerOptions } from './delivery.ts';
import { userMessage } from './errors.ts';
import { DEFAULT_SUBMIT_CONCURRENCY, FollowUpsUnderWay, refuse, SubmissionQueue } from './submit.ts';

export const BOT_INTENTS = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions];

export interface BotOptions {
  token: string;
  /** REST base URL (e.g. http://127.0.0.1:PORT/api for a proxy or a test double). */
  apiBase?: string;
  farm: FarmContext;
  log?: (message: string) => void;
  /**
   * Progress edits and delivery: retries, the sweep for undelivered jobs, when to give up
   * (defaults DELIVERY_* in bot/delivery.ts; README "Running in production", Delivery).
   */
  messenger?: MessengerOptions;
  /**
   * How many deferred submissions run their database work at once (default
   * DEFAULT_SUBMIT_CONCURRENCY, 2); the rest wait after their acknowledgement, so a burst of
   * commands does not delay the acknowledgement of the next ones.
   */
  submitConcurrency?: number;
  /** For ShardingManager children: discord.js reads the shard from the environment when unset. */
  shards?: number | number[] | 'auto';
  /** Called with the client before it logs in, so listeners (REST metrics) also see the login's requests. */
  onClient?: (client: Client) => void;
}

export interface RunningBot {
  client: Client;
  messenger: JobMessenger;
  stop(): Promise<void>;
}

export function createClient(opts: Pick<BotOptions, 'apiBase' | 'shards'>): Client {
  return new Client({
    intents: BOT_INTENTS,
    // Reactions on messages sent before this process started arrive as partials.
    partials: [Partials.Message, Partials.Channel, Partials.Reaction, Partials.User],
    rest: opts.apiBase ? { api: opts.apiBase } : undefined,
    ...(opts.shards !== undefined ? { shards: opts.shards } : {}),
  });
}

export async function startBot(opts: BotOptions): Promise<RunningBot> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const client = createClient(opts);
  opts.onClient?.(client);
  const messenger = new JobMessenger(client, opts.farm, { log, ...opts.messenger });
  const ctx: BotContext = { farm: opts.farm, log, submissions: new SubmissionQueue(opts.submitConcurrency ?? DEFAULT_SUBMIT_CONCURRENCY), followUps: new FollowUpsUnderWay(),
    replySettled: (jobId) => messenger.replySettled(jobId),
  };

  const onInteraction = (interaction: Interaction) => void route(interaction, ctx);
  client.on(Events.InteractionCreate, onInteraction);
  const onReaction = (reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser) => {
    void handleReaction(reaction, user, ctx).catch((err) => log(`[bot] reaction failed: ${loggableError(err)}`));
  };
  client.on(Events.MessageReactionAdd, onReaction);
  client.on(Events.Error, (err) => log(`[bot] client error: ${err.message}`));

  const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
  await client.login(opts.token);
  await ready;
  try {
    await messenger.start();
  } catch (err) {
    // No bot without its deliveries: nothing left connected or ticking behind the error.
    await messenger.stop();
    await client.destroy();
    throw err;
  }
  log(`[bot] logged in as ${client.user?.tag} in ${client.guilds.cache.size} server(s)`);
  return {
    client,
    messenger,
    async stop() {
      // Nothing new is taken; submissions already acknowledged finish their database work first.
      client.off(Events.InteractionCreate, onInteraction);
      client.off(Events.MessageReactionAdd, onReaction);
      await ctx.submissions.onIdle();
      await messenger.stop();
      await client.destroy();
    },
  };
}

async function route(interaction: Interaction, ctx: BotContext): Promise<void> {
  // Queued submission work waits while this one is unanswered (acknowledgements first).
  const answered = interaction.isRepliable() ? ctx.submissions.received(interaction) : undefined;
  try {
    if (interaction.isChatInputCommand()) {
      const command = commandsByName.get(interaction.commandName);
      if (!command) {
        // The operator's line names the fix; the member's only who can make it.
        ctx.log(`[bot] /${interaction.commandName} is not one of this bot's commands: the commands Discord shows are out of date; run \`npm run deploy-commands\``);
        await interaction.reply({ content: "This command is not known to this version of the bot; tell the farm's operator, who can update the bot's commands.", flags: MessageFlags.Ephemeral });
        return;
      }
      await command.execute(interaction, ctx);
    } else if (interaction.isAutocomplete()) {
      // A command without suggestions (an out-of-date registration) gets none.
      const command = commandsByName.get(interaction.commandName);
      await (command?.autocomplete ? command.autocomplete(interaction, ctx) : interaction.respond([]));
    } else if (interaction.isButton()) {
      await handleButton(interaction, ctx);
    } else if (interaction.isModalSubmit()) {
      await handleForm(interaction, ctx);
    }
  } catch (err) {
    const text = userMessage(err, ctx.log);
    if (!interaction.isRepliable()) return;
    try {
      await refuse(interaction, text);
    } catch {
      // The interaction may have expired; the error is in the log.
    }
  } finally {
    answered?.();
  }
}
