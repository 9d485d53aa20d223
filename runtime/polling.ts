import { abortReason, deadline, sleep } from "./abort.js";
import { TimeoutError } from "./errors.js";

/**
 * Back-off between tries: quick at first, because most conditions a test waits
 * for become true soon after the command that caused them, then settling at 1 s
 * so that a long wait does not flood a slow (TCG) guest with commands.
 */
export const BACKOFF_MS: readonly number[] = [50, 100, 250, 500, 1000];

export function backoff(attempt: number): number {
  return BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] as number;
}

export interface RetryOptions {
  /** Seconds; default 900 (nixpkgs' default for every wait). */
  timeout?: number | null;
  signal?: AbortSignal;
  /** What is being waited for, for the TimeoutError's message. */
  what?: string;
  machine?: string;
}

export const DEFAULT_WAIT_TIMEOUT = 900;

/**
 * nixpkgs' `retry`: call `fn(false)` until it returns true, then, once the
 * time is up, `fn(true)` a last time (so it can log why it keeps failing) and
 * fail if that is false too. The tries back off instead of sleeping a fixed 1 s.
 */
export async function retry(
  fn: (lastTry: boolean, signal: AbortSignal | undefined) => boolean | Promise<boolean>,
  options: RetryOptions = {},
): Promise<void> {
  const timeout = options.timeout === undefined ? DEFAULT_WAIT_TIMEOUT : options.timeout;
  const what = options.what ?? "retry";
  const outer = options.signal;
  const budget = deadline([outer], timeout, (s) => new TimeoutError(what, s, options.machine));
  try {
    for (let attempt = 0; !budget.signal.aborted; attempt++) {
      try {
        if (await fn(false, budget.signal)) return;
      } catch (error) {
        // A try cut short by the deadline is not a failure of the condition.
        if (budget.signal.aborted && !outer?.aborted) break;
        throw error;
      }
      const pause = Math.min(backoff(attempt), budget.remaining());
      if (pause <= 0) break;
      try {
        await sleep(pause, budget.signal);
      } catch {
        break;
      }
    }
    // Only the deadline earns a last try; an outside abort (global timeout, Ctrl-C) ends at once.
    if (outer?.aborted) throw abortReason(outer);
    if (await fn(true, outer)) return;
    throw new TimeoutError(what, timeout ?? 0, options.machine);
  } finally {
    budget.dispose();
  }
}
