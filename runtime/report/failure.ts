import { readFileSync } from "node:fs";
import { scriptLocation } from "../async/callsite.js";
import { NixosTestError } from "../errors.js";

/**
 * The text printed when a test fails: the error's message (machine, command,
 * exit code, output tail), where in the test script it happened, and that
 * line of the script.
 */
export function describeFailure(error: unknown): string {
  const parts: string[] = [];
  if (error instanceof AggregateError) {
    parts.push(error.message);
    for (const e of error.errors) parts.push(`- ${describeFailure(e).replace(/\n/g, "\n  ")}`);
  } else if (error instanceof NixosTestError) {
    parts.push(`${error.name}: ${error.message}`);
  } else if (error instanceof Error) {
    // Not ours: the stack is the most useful thing we can show (a bug in the script, usually).
    parts.push(error.stack ?? `${error.name}: ${error.message}`);
  } else {
    parts.push(`the test script threw a non-Error value: ${String(error)}`);
  }
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && !(error instanceof AggregateError)) parts.push(`  caused by: ${cause.message.split("\n")[0]}`);
  const location = error instanceof AggregateError ? undefined : scriptLocation(error);
  if (location !== undefined) parts.push(`at ${location}${codeFrame(location)}`);
  return parts.join("\n");
}

function codeFrame(location: string): string {
  const m = /^(.*):(\d+):(\d+)$/.exec(location);
  if (m === null) return "";
  try {
    const line = readFileSync(m[1] as string, "utf8").split("\n")[Number(m[2]) - 1];
    if (line === undefined) return "";
    const column = Number(m[3]);
    return `\n  ${m[2]} | ${line}\n  ${" ".repeat(String(m[2]).length)} | ${" ".repeat(Math.max(0, column - 1))}^`;
  } catch {
    return "";
  }
}
