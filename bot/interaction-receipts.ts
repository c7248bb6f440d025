/**
 * When this process received each interaction (a command, a button, a modal), on its monotonic
 * clock: how long its token still works is measured from there (interactionTokenLeftMs), not by
 * comparing its expiry (Discord's snowflake time plus the token's lifetime, stored with the job)
 * with this machine's wall clock, which may be off by more than the margin an edit leaves. An
 * interaction received by another process, or before a restart, has no receipt here: its expiry
 * is then compared with the wall clock, as before.
 */
import { Events, type Client, type Interaction } from 'discord.js';

/**
 * How long a receipt is kept: longer than any interaction token lives (15 minutes,
 * INTERACTION_TOKEN_LIFETIME_MS in bot/submit.ts), so a token's receipt is there while it works.
 */
export const INTERACTION_RECEIPTS_KEPT_MS = 60 * 60 * 1000;

/** What is kept of one interaction: its creation on Discord's clock, its receipt on this process's monotonic clock. */
interface Receipt {
  createdTimestamp: number;
  receivedAt: number;
}

export class InteractionReceipts {
  /** By token, in the order received (the oldest first, so pruning stops at the first kept). */
  private readonly byToken = new Map<string, Receipt>();

  /** `now`: this process's monotonic clock in ms (default performance.now). */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** An interaction received now: its token and Discord's creation time (interaction.createdTimestamp). */
  received(interaction: { token: string; createdTimestamp: number }): void {
    const receivedAt = this.now();
    this.byToken.delete(interaction.token);
    this.byToken.set(interaction.token, { createdTimestamp: interaction.createdTimestamp, receivedAt });
    for (const [token, receipt] of this.byToken) {
      if (receivedAt - receipt.receivedAt <= INTERACTION_RECEIPTS_KEPT_MS) break;
      this.byToken.delete(token);
    }
  }

  /** Records every interaction with a token `client` receives from now on; returns what stops it. */
  track(client: Client): () => void {
    const onInteraction = (interaction: Interaction) => {
      if (interaction.isRepliable()) this.received(interaction);
    };
    client.on(Events.InteractionCreate, onInteraction);
    return () => void client.off(Events.InteractionCreate, onInteraction);
  }

  /**
   * How long the job's interaction token still works, in ms: from its receipt here on the monotonic
   * clock (its lifetime is its expiry minus its creation, both Discord's times), else its expiry
   * against this machine's clock. Undefined: no token, or no expiry recorded.
   */
  tokenLeftMs(job: { interactionToken: string | null; interactionExpiresAt: Date | null }): number | undefined {
    if (!job.interactionToken || !job.interactionExpiresAt) return undefined;
    const receipt = this.byToken.get(job.interactionToken);
    if (receipt) return receipt.receivedAt + (job.interactionExpiresAt.getTime() - receipt.createdTimestamp) - this.now();
    return job.interactionExpiresAt.getTime() - Date.now();
  }
}

/** This process's receipts (JobMessenger tracks its client's interactions here). */
export const interactionReceipts = new InteractionReceipts();
