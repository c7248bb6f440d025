import type { AutocompleteInteraction, ChatInputCommandInteraction, SlashCommandBuilder, SlashCommandOptionsOnlyBuilder, SlashCommandSubcommandsOnlyBuilder } from 'discord.js';
import type { FarmContext, FollowUpKind } from '../farm/index.ts';

export interface BotContext {
  farm: FarmContext;
  log: (message: string) => void;
  /** Where deferred submissions wait for their database work (startBot makes a SubmissionQueue, submit.ts). */
  submissions: SubmissionGate;
  /** Follow-up submissions under way (startBot makes a FollowUpsUnderWay, submit.ts), so a double press makes one job. */
  followUps: FollowUpGuard;
  /**
   * A job's reply (its message: a command's or button's "queued" reply, a 🔍/🔁 reaction's reply) is
   * shown and recorded, or could not be, so delivery need not wait for it (startBot:
   * JobMessenger.replySettled).
   */
  replySettled?: (jobId: number) => void;
}

/** One follow-up submission per (user, parent job, kind) at a time (FollowUpsUnderWay in submit.ts). */
export interface FollowUpGuard {
  /** Reserves the submission; the returned function releases it, undefined when one is already under way. */
  begin(userId: string, parentJobId: number, kind: FollowUpKind): (() => void) | undefined;
}

/**
 * Acknowledgements first: database steps run in turn, after received interactions are answered.
 * (SubmissionQueue in submit.ts; the interface keeps this module free of an import of it.)
 */
export interface SubmissionGate {
  /** An interaction arrived; steps wait until it is answered or the returned function is called. */
  received(interaction: { deferred: boolean; replied: boolean }): () => void;
  run<T>(step: () => Promise<T>): Promise<T>;
  /** Settles once no step waits or runs (the bot waits for it when it stops). */
  onIdle(): Promise<void>;
}

/** One slash command, as in the discord.js guide: its definition and its handler. */
export interface Command {
  data: SlashCommandBuilder | SlashCommandOptionsOnlyBuilder | SlashCommandSubcommandsOnlyBuilder;
  execute(interaction: ChatInputCommandInteraction, ctx: BotContext): Promise<void>;
  /** Suggestions while a member types into one of its autocomplete options (bot/autocomplete.ts); answers within 3 s and never throws. */
  autocomplete?(interaction: AutocompleteInteraction, ctx: BotContext): Promise<void>;
}
