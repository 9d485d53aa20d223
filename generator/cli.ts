#!/usr/bin/env node
/**
 * nixos-test-ts: generate typed bindings from a test's manifest, check a test
 * script against them (tsc + lint), and run it with the driver.
 *
 * `check` and `run` (which checks first) run in a Node started from the
 * check's startup snapshot when one is built for this Node and TypeScript
 * (snapshot.ts): the compiler and the declarations are then already in
 * memory. bin/nixos-test-ts starts Node from it directly; started otherwise
 * (`node cli.js check`), this process starts that Node, which saves more
 * than it costs, and then only passes signals on and leaves with the child's
 * status. Everything else, and any command without a snapshot, runs in this
 * process. Only node: modules are imported before that choice.
 */
import { fileURLToPath } from "node:url";
import { runNode } from "./child.js";
import { RELAUNCHED_ENV, currentSnapshot, startedFromCurrentSnapshot, usableSnapshot } from "./snapshot.js";

/** Runs this CLI again in a new Node (from `blob`, or plain); resolves to the exit code to leave with. */
async function relaunch(blob: string | undefined, argv: string[]): Promise<number> {
  const snapshot = blob === undefined ? [] : ["--snapshot-blob", blob];
  const { code, signal } = await runNode([...snapshot, fileURLToPath(import.meta.url), ...argv], { [RELAUNCHED_ENV]: "1" });
  if (signal !== null) process.kill(process.pid, signal);
  return code ?? 1;
}

/**
 * Node refuses a snapshot made under other V8 flags (exit 14: "built … with different V8 configurations"), and
 * flags may hide in NODE_OPTIONS: a Node started with any flags does the check itself.
 */
function plainNode(): boolean {
  return process.execArgv.length === 0 && (process.env.NODE_OPTIONS ?? "").trim() === "";
}

const argv = process.argv.slice(2);
const blob = (argv[0] === "check" || argv[0] === "run") && currentSnapshot() === undefined && plainNode() ? usableSnapshot() : undefined;
if (blob !== undefined) {
  process.exitCode = await relaunch(blob, argv);
} else if (currentSnapshot() !== undefined && !startedFromCurrentSnapshot()) {
  // Started by the launcher from a snapshot of another TypeScript (updated since the build): its compiler must
  // not check. A new Node picks the right snapshot, if there is one, or none.
  process.exitCode = await relaunch(undefined, argv);
} else {
  const { main } = await import("./commands.js");
  process.exitCode = await main(argv);
}
