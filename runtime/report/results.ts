import type { SubtestResult } from "../driver/driver.js";

/** What the reports show: one entry per subtest, plus the script itself when it failed outside them. */
export interface TestCaseResult {
  name: string;
  start: number;
  seconds: number;
  error: unknown;
  frame: number | undefined;
}

export interface RunResult {
  name: string;
  /** Seconds. */
  duration: number;
  /** Set when the test failed; the error that ended it. */
  error: unknown;
  cases: TestCaseResult[];
}

/**
 * Subtests become cases (nested ones named `outer › inner`); a failure that
 * no subtest owns (an error between subtests, the global timeout) becomes a
 * case of its own, so a report never shows green for a failed run.
 */
export function collectCases(subtests: readonly SubtestResult[], error: unknown, duration: number): TestCaseResult[] {
  const cases: TestCaseResult[] = [...subtests]
    .sort((a, b) => a.start - b.start)
    .map((s) => ({ name: [...s.parents, s.name].join(" › "), start: s.start, seconds: s.seconds, error: s.error, frame: s.frame }));
  const owned = subtests.some((s) => s.error !== undefined && s.error === error);
  if (cases.length === 0 || (error !== undefined && !owned)) {
    cases.push({ name: "test script", start: 0, seconds: duration, error, frame: undefined });
  }
  return cases;
}

export function errorText(error: unknown): { type: string; message: string } {
  if (error instanceof Error) return { type: error.name, message: error.message };
  return { type: "Error", message: String(error) };
}
