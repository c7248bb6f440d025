/** What a test holds after a simulated user action: the interaction, and what the bot answered. */
import type { InteractionCallbackRecord, InteractionKind, InteractionState, StoredMessage } from './model.ts';
import type { Json } from './serialize.ts';
import type { FakeState } from './state.ts';

export class InteractionHandle {
  constructor(
    private readonly store: FakeState,
    readonly state: InteractionState,
  ) {}

  get id(): string {
    return this.state.id;
  }
  get token(): string {
    return this.state.token;
  }
  get kind(): InteractionKind {
    return this.state.kind;
  }
  get payload(): Json {
    return this.state.payload;
  }
  get dispatchedAt(): number {
    return this.state.dispatchedAt;
  }
  get response(): InteractionCallbackRecord | null {
    return this.state.response;
  }
  get expired(): boolean {
    return this.state.expired || Date.now() > this.state.expiresAt;
  }

  /** Resolves with the bot's callback (type 4 reply, 5 deferred, 6 deferred update, 7 update, 8 autocomplete result, 9 modal). */
  waitForResponse(timeoutMs = 5000): Promise<InteractionCallbackRecord> {
    return this.store.waitFor(() => this.state.response, timeoutMs, `a callback to interaction ${this.id} (${this.describe()})`);
  }

  /** Resolves with the choices of the bot's autocomplete result (callback type 8); fails on any other answer. */
  async waitForChoices(timeoutMs = 5000): Promise<Array<{ name: string; value: string | number }>> {
    const response = await this.waitForResponse(timeoutMs);
    if (response.type !== 8) throw new Error(`interaction ${this.id} (${this.describe()}) was answered with callback type ${response.type}, not an autocomplete result (8)`);
    return (response.data?.choices ?? []) as Array<{ name: string; value: string | number }>;
  }

  /** The message @original points at (the reply, or for buttons the message that carried it). */
  original(): StoredMessage | null {
    return this.state.originalMessageId ? (this.store.messages.get(this.state.originalMessageId) ?? null) : null;
  }

  /** Waits until @original exists and satisfies `predicate` (checked after every change). */
  waitForOriginal(predicate: (m: StoredMessage) => boolean = () => true, timeoutMs = 5000): Promise<StoredMessage> {
    return this.store.waitFor(
      () => {
        const m = this.original();
        return m && predicate(m) ? m : undefined;
      },
      timeoutMs,
      `@original of interaction ${this.id} (${this.describe()}) to match`,
    );
  }

  followUps(): StoredMessage[] {
    return this.state.followUpIds.map((id) => this.store.messages.get(id)).filter((m): m is StoredMessage => m !== undefined);
  }

  private describe(): string {
    const data = this.state.payload.data as Json;
    if (this.state.kind === 'command') return `/${String(data.name)}`;
    if (this.state.kind === 'autocomplete') return `autocomplete in /${String(data.name)}`;
    return `${this.state.kind} ${String(data.custom_id)}`;
  }
}

