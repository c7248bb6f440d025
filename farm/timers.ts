// Timers for delays that come from settings or are computed (a render's time limit, intervals,
// grace periods): Node's setTimeout and setInterval take at most MAX_TIMER_MS (2^31 - 1 ms, about
// 24.8 days) and fire a longer delay after 1 ms instead, with a TimeoutOverflowWarning — a render
// limit of 35 days would stop every render at once, a monthly retention would run back to back.
// These wait the whole delay, however long, by chaining timers of at most MAX_TIMER_MS; every timer
// the farm arms from a setting or a computed value goes through here (the settings themselves have
// upper bounds too: config/settings.ts MAX_WAIT_SECONDS).

/** The longest delay one Node timer takes: 2^31 - 1 ms (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A delay as a timer takes it: NaN and negative delays are 0 (as Node treats them), the rest unchanged. */
function delayOf(ms: number): number {
  return Number.isNaN(ms) || ms < 0 ? 0 : ms;
}

export interface Timer {
  /** Stops it; nothing fires afterwards. Safe to call more than once. */
  clear(): void;
}

export interface TimerOptions {
  /** false: the timer does not keep the process alive (Node's unref). Default true. */
  ref?: boolean;
}

/** Calls `callback` once after `ms` milliseconds, however long that is (chained past MAX_TIMER_MS; Infinity: never). */
export function startTimeout(callback: () => void, ms: number, options: TimerOptions = {}): Timer {
  let remaining = delayOf(ms);
  let handle: NodeJS.Timeout | undefined;
  let cleared = false;
  const arm = () => {
    if (cleared || remaining === Infinity) return;
    const step = Math.min(remaining, MAX_TIMER_MS);
    handle = setTimeout(() => {
      remaining -= step;
      if (remaining > 0) arm();
      else callback();
    }, step);
    if (options.ref === false) handle.unref();
  };
  arm();
  return {
    clear() {
      cleared = true;
      if (handle) clearTimeout(handle);
    },
  };
}

/** Calls `callback` every `ms` milliseconds, however long that is (each period chained past MAX_TIMER_MS). */
export function startInterval(callback: () => void, ms: number, options: TimerOptions = {}): Timer {
  const period = delayOf(ms);
  if (period <= MAX_TIMER_MS) {
    // Node runs a 0 ms interval every 1 ms, as it does for setInterval(fn, 0).
    const handle = setInterval(callback, period);
    if (options.ref === false) handle.unref();
    return { clear: () => clearInterval(handle) };
  }
  let current: Timer | undefined;
  let cleared = false;
  const next = () => {
    current = startTimeout(() => {
      if (cleared) return;
      next();
      callback();
    }, period, options);
  };
  next();
  return {
    clear() {
      cleared = true;
      current?.clear();
    },
  };
}

/** Resolves after `ms` milliseconds, however long that is (see startTimeout). */
export function delay(ms: number, options: TimerOptions = {}): Promise<void> {
  return new Promise((resolve) => startTimeout(resolve, ms, options));
}

/**
 * This process's monotonic clock in milliseconds (performance.now()): what elapsed local time
 * (throttles, pauses, retry waits, caches) is measured on. Date.now() is the wall clock, which NTP
 * or an operator can step — an hour back would freeze such a wait for an hour; it stays for real
 * dates (timestamps shown or stored).
 */
export function monotonicNow(): number {
  return performance.now();
}
