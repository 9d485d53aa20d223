#!/usr/bin/env node
/**
 * nixos-test-ts: generate typed bindings from a test's manifest, check a test
 * script against them (tsc + lint), and run it with the driver.
 *
 * `check` and `run` (which checks first) run in a Node started from the
 * check's startup snapshot when one is built for this Node and TypeScript
 * (snapshot.ts): the compiler and the declarations are then already in
 * memory, which saves more than starting a second Node costs. This process
 * then only passes signals on and leaves with the child's status. Everything
 * else, and any command without a snapshot, runs in this process. Only node:
 * modules are imported before that choice.
 */
import { fileURLToPath } from "node:url";
import { runNode } from "./child.js";
import { currentSnapshot, usableSnapshot } from "./snapshot.js";

/** Runs this CLI again in a Node started from `blob`; resolves to the exit code to leave with. */
async function relaunch(blob: string, argv: string[]): Promise<number> {
  const { code, signal } = await runNode(["--snapshot-blob", blob, fileURLToPath(import.meta.url), ...argv]);
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
} else {
  const { main } = await import("./commands.js");
  process.exitCode = await main(argv);
}
