/** A one-line terminal progress bar (stderr, so --json output on stdout stays clean). */
export class ProgressBar {
  private last = 0;
  private readonly started = performance.now();
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string) {}

  update(done: number, total: number, detail = ''): void {
    const now = performance.now();
    // Redraw at most ~10 times a second on a terminal; print a line every few seconds in logs.
    if (done < total && now - this.last < (this.tty ? 100 : 5000)) return;
    this.last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 28;
    const filled = Math.round(frac * width);
    const elapsed = (now - this.started) / 1000;
    const eta = frac > 0 && frac < 1 ? ` eta ${((elapsed / frac) * (1 - frac)).toFixed(1)}s` : '';
    const line = `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${elapsed.toFixed(1)}s${eta}${detail ? ` ${detail}` : ''}`;
    if (this.tty) process.stderr.write(`\r${line}\x1b[K`);
    else process.stderr.write(`${line}\n`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
