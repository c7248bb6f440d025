import type { ChatInputCommandInteraction, SlashCommandBuilder, SlashCommandOptionsOnlyBuilder, SlashCommandSubcommandsOnlyBuilder } from 'discord.js';
import type { FarmContext } from '../farm/index.ts';
import type { SubmissionQueue } from './submit.ts';

export interface BotContext {
  farm: FarmContext;
  log: (message: string) => void;
  /** Where deferred submissions wait for their database work (startBot makes one). */
  submissions?: SubmissionQueue;
}

/** One slash command, as in the discord.js guide: its definition and its handler. */
export interface Command {
  data: SlashCommandBuilder | SlashCommandOptionsOnlyBuilder | SlashCommandSubcommandsOnlyBuilder;
  execute(interaction: ChatInputCommandInteraction, ctx: BotContext): Promise<void>;
}
