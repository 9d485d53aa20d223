/** What a person decided about a failed step while the test was paused on failure. */
export type FailureDecision = "retry" | "continue" | "throw";

/**
 * Runs `step`. When it fails, `ask` may offer the failure to a person (pause
 * on failure; undefined when it is not offered): "retry" runs the step again,
 * "continue" returns undefined as if it had passed, "throw" lets the error go.
 * Used by the machine's methods and by subtests alike.
 */
export async function stepWithPause<T>(step: () => Promise<T>, ask: (error: unknown) => Promise<FailureDecision> | undefined): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (error) {
      const decision = await ask(error);
      if (decision === "retry") continue;
      if (decision === "continue") return undefined as T;
      throw error;
    }
  }
}
