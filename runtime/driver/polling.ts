import { abortReason, deadline, sleep } from "../async/abort.js";
import { TimeoutError } from "../errors.js";

/**
 * Pause between tries. A condition usually becomes true a few seconds after
 * whatever caused it, and a command costs ~10 ms on a TCG guest, so polling
 * stays quick (≤ 200 ms, ~5 % of a guest CPU) for the first 30 s; only a long
 * wait backs off to 500 ms and then 1 s so it does not load a slow guest.
 * (nixpkgs sleeps a fixed 1 s: ~0.5 s of latency on average.)
 */
export function backoff(attempt: number, elapsedMs: number): number {
  if (elapsedMs >= 120_000) return 1000;
  if (elapsedMs >= 30_000) return 500;
  return Math.min(200, 50 * 2 ** attempt);
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
export async function retry(fn: (lastTry: boolean, signal: AbortSignal | undefined) => boolean | Promise<boolean>, options: RetryOptions = {}): Promise<void> {
  const timeout = options.timeout === undefined ? DEFAULT_WAIT_TIMEOUT : options.timeout;
  const what = options.what ?? "retry";
  const outer = options.signal;
  const budget = deadline([outer], timeout, (s) => new TimeoutError(what, s, options.machine));
  const began = performance.now();
  try {
    for (let attempt = 0; !budget.signal.aborted; attempt++) {
      try {
        if (await fn(false, budget.signal)) return;
      } catch (error) {
        // A try cut short by the deadline is not a failure of the condition.
        if (budget.signal.aborted && !outer?.aborted) break;
        throw error;
      }
      const pause = Math.min(backoff(attempt, performance.now() - began), budget.remaining());
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
