import { setTimeout as delay } from "node:timers/promises";
import { TestAbortedError, TimeoutError } from "../errors.js";

/** Seconds → milliseconds, accepting `Infinity`/`null` as "no limit". */
export function toMs(seconds: number | null | undefined): number | undefined {
  if (seconds === null || seconds === undefined || seconds === Infinity) return undefined;
  if (!(seconds >= 0)) throw new RangeError(`a timeout must be a number of seconds ≥ 0, got ${String(seconds)}`);
  return seconds * 1000;
}

/** The reason an aborted signal carries, as an Error (AbortSignal allows anything). */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new TestAbortedError(reason === undefined ? "aborted" : String(reason));
}

/** Sleeps, but wakes with the signal's reason as soon as it aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (error) {
    if (signal?.aborted) throw abortReason(signal);
    throw error;
  }
}

/**
 * The runtime's one abort-listener idiom: calls `fn` with the signal's reason
 * when it aborts — in a microtask if it already has, so a promise executor
 * that calls this first and sets up its waiter next still sees `fn` last.
 * Returns the function that stops listening (call it when the work is done).
 */
export function onAbort(signal: AbortSignal | undefined, fn: (reason: Error) => void): () => void {
  if (signal === undefined) return () => undefined;
  let active = true;
  const listener = (): void => {
    if (active) fn(abortReason(signal));
    active = false;
  };
  if (signal.aborted) queueMicrotask(listener);
  else signal.addEventListener("abort", listener, { once: true });
  return () => {
    active = false;
    signal.removeEventListener("abort", listener);
  };
}

/** Resolves or rejects with `promise`, or rejects with the signal's reason first. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const stop = onAbort(signal, reject);
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error);
      },
    );
  });
}

/**
 * One budget for one operation: the caller's signals plus an optional
 * deadline whose expiry aborts with a TimeoutError naming the operation.
 * `dispose()` clears the timer once the operation is over.
 */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Milliseconds left, or Infinity without a deadline. */
  remaining(): number;
  dispose(): void;
}

export function deadline(
  signals: ReadonlyArray<AbortSignal | undefined>,
  timeoutSeconds: number | null | undefined,
  makeError: (seconds: number) => Error,
): Deadline {
  const controller = new AbortController();
  const ms = toMs(timeoutSeconds);
  const end = ms === undefined ? Infinity : Date.now() + ms;
  const timer = ms === undefined ? undefined : setTimeout(() => controller.abort(makeError(timeoutSeconds as number)), ms);
  const all = AbortSignal.any([controller.signal, ...signals.filter((s): s is AbortSignal => s !== undefined)]);
  return {
    signal: all,
    remaining: () => Math.max(0, end - Date.now()),
    dispose: () => clearTimeout(timer),
  };
}

export function timeoutError(what: string, machine?: string, detail?: () => string | undefined) {
  return (seconds: number): TimeoutError => new TimeoutError(what, seconds, machine, detail?.());
}
