/**
 * One line when the database becomes unreachable (with the cause: code and message) and one
 * when it answers again, instead of a line per failed call. Every query and connection of a
 * Postgres handle reports here (db/client.ts); callers that retry stay quiet about connection
 * errors (dbFailureLine in db/errors.ts).
 */
import { describeDbError } from './errors.ts';

export type LogLine = (line: string) => void;

export class OutageLog {
  private outage: { since: number; failures: number } | undefined;

  constructor(
    /** Where the database is (already redacted), for the log lines. */
    private readonly where: string,
    private readonly log: LogLine = (line) => console.error(line),
    /** Where the line saying it answers again goes: a recovery, not a fault (default: `log`). */
    private readonly recovered: LogLine = log,
  ) {}

  get down(): boolean {
    return this.outage !== undefined;
  }

  /** A connection or query failed because the database could not be reached. */
  failed(error: unknown): void {
    if (this.outage) {
      this.outage.failures++;
      return;
    }
    this.outage = { since: performance.now(), failures: 1 };
    // Neutral on what comes next: a worker or the bot retries, a CLI command ends with its error.
    this.log(`[db] cannot reach the database at ${this.where} (${describeDbError(error)}); a line here says when it answers again, if this process keeps running`);
  }

  /** A query succeeded (or the server answered, even with an error). */
  ok(): void {
    const outage = this.outage;
    if (!outage) return;
    this.outage = undefined;
    const seconds = ((performance.now() - outage.since) / 1000).toFixed(1);
    this.recovered(`[db] the database at ${this.where} answers again, after ${seconds} s and ${outage.failures} failed operation(s)`);
  }
}
