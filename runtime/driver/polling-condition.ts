import { PollingConditionFailedError } from "../errors.js";
import { retry, type RetryOptions } from "./polling.js";
import { AsyncLocalStorage } from "node:async_hooks";

export interface PollingConditionOptions {
  /** Seconds between checks; default 2, as nixpkgs. */
  interval?: number;
  /** For the error message; default: the function's name. */
  description?: string;
}

/** Commands run by a condition's own check must not trigger the check again. */
const insideCheck = new AsyncLocalStorage<boolean>();

/**
 * nixpkgs' `polling_condition`: while active, it is checked before every
 * command (at most once per interval), and a failed check fails the test.
 */
export class PollingCondition {
  readonly description: string;
  private readonly intervalMs: number;
  private lastCheck = 0;

  constructor(
    private readonly condition: () => unknown,
    private readonly registry: Set<PollingCondition>,
    options: PollingConditionOptions = {},
  ) {
    this.description = options.description ?? (condition.name || "anonymous polling condition");
    this.intervalMs = (options.interval ?? 2) * 1000;
  }

  /** Activates the condition for the duration of `fn`. */
  async during<T>(fn: () => Promise<T>): Promise<T> {
    using _active = this.enter();
    return await fn();
  }

  /** Activates the condition until the returned handle is disposed (`using c = cond.enter()`). */
  enter(): Disposable {
    this.registry.add(this);
    // As nixpkgs: the first command inside the block checks it at once.
    this.lastCheck = -Infinity;
    return { [Symbol.dispose]: () => void this.registry.delete(this) };
  }

  /** Waits until the condition holds (default timeout 900 s). */
  async wait(options: Omit<RetryOptions, "what"> = {}): Promise<void> {
    await retry(async () => (await this.evaluate()).ok, { ...options, what: `waiting for polling condition "${this.description}"` });
  }

  /** Runs the check if it is due; throws PollingConditionFailedError if it fails. */
  async maybeCheck(force = false): Promise<void> {
    if (insideCheck.getStore() === true) return;
    if (!force && Date.now() - this.lastCheck < this.intervalMs) return;
    this.lastCheck = Date.now();
    const { ok, error } = await this.evaluate();
    if (!ok) throw new PollingConditionFailedError(this.description, { cause: error });
  }

  /** As nixpkgs: an exception or `false` is a failure; anything else (`undefined` too) holds. */
  private evaluate(): Promise<{ ok: boolean; error?: unknown }> {
    return insideCheck.run(true, async () => {
      try {
        const r = await this.condition();
        return { ok: r !== false };
      } catch (error) {
        return { ok: false, error };
      }
    });
  }
}
