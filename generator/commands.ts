/**
 * The commands of nixos-test-ts: generate typed bindings from a test's
 * manifest, check a test script against them (tsc + lint), and run it with
 * the driver. (cli.ts, the executable, decides in which process they run.)
 */
// node:child_process, not execa: `run` hands the terminal and the signals to the driver as they are (stdio
// inherited, SIGINT/SIGTERM forwarded), and exits with its status.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { ConfigError } from "../lib/errors.js";
import { shellQuote } from "../lib/shell.js";
import type { Manifest } from "../lib/manifest.js";
import { tsconfigOptions } from "./compiler-options.js";
import { displayPath, formatFindings, summary } from "./diagnostics.js";
import { check, generate, typings, type CheckRequest, type Timings } from "./pipeline.js";
import { runNode } from "./child.js";
import { currentSnapshot, relaunched } from "./snapshot.js";

const EXIT_CHECK_FAILED = 1;
const EXIT_USAGE = 2;
const RUNTIME_CLI = join(dirname(dirname(fileURLToPath(import.meta.url))), "runtime", "cli.js");

interface CheckFlags {
  manifest: string;
  out?: string;
  skipTypeCheck?: boolean;
  skipLint?: boolean;
  strictPorts?: boolean;
  nodeTypes?: boolean;
  timings?: boolean;
}

function checkOptions(command: Command): Command {
  return command
    .addOption(new Option("--skip-type-check", "do not type-check (syntax errors still fail), as nixpkgs' skipTypeCheck"))
    .addOption(new Option("--skip-lint", "do not lint (floating promises, ports), as nixpkgs' skipLint"))
    .addOption(new Option("--strict-ports", "a port the node does not declare is an error, not a warning (also: strictPorts in the manifest)"))
    .addOption(new Option("--node-types", "type Node's globals and node:* modules with @types/node (slower; default: a small built-in set, node:* untyped)"))
    .addOption(new Option("--timings", "print where the time went"));
}

/** The command line as typed, for the generated file's header. */
function regenerateCommand(args: string[]): string {
  return ["nixos-test-ts", ...args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : shellQuote(a)))].join(" ");
}

function formatTimings(t: Timings, reusedDeclarations: number): string {
  const ms = (n: number | undefined): string => `${Math.round(n ?? 0)} ms`;
  return [
    `timings: manifest ${ms(t.manifest)}, load ts-morph ${ms(t.importGenerator)}, generate ${ms(t.generate)}, load typescript ${ms(t.importCompiler)},`,
    `  program ${ms(t.program)}, type check ${ms(t.typeCheck)}, lint ${ms(t.lint)}, emit ${ms(t.emit)}; process ${ms(performance.now())}`,
    `  declaration files already parsed (startup snapshot: ${currentSnapshot() === undefined ? "no" : "yes"}): ${reusedDeclarations}` +
      (currentSnapshot() === undefined ? "" : `; Node started ${relaunched() ? "by a first Node (node cli.js)" : "directly (bin/nixos-test-ts)"}`),
  ].join("\n");
}

/** Runs the check and prints its findings; `emitted` is undefined when it failed. */
async function runCheck(script: string, flags: CheckFlags, outDir: string, command: string): Promise<{ emitted: string | undefined; manifest: Manifest }> {
  const request: CheckRequest = {
    manifestPath: flags.manifest,
    outDir,
    script,
    command,
    ...(flags.strictPorts ? { strictPorts: true } : {}),
    ...(flags.skipTypeCheck ? { skipTypeCheck: true } : {}),
    ...(flags.skipLint ? { skipLint: true } : {}),
    ...(flags.nodeTypes ? { nodeTypes: true } : {}),
  };
  const { result, timings, manifest } = await check(request);
  if (result.findings.length > 0) process.stderr.write(`${formatFindings(result.findings)}\n`);
  const tail = result.emitted === undefined ? "" : `; wrote ${displayPath(result.emitted)}`;
  process.stderr.write(`nixos-test-ts: ${displayPath(script)}: ${summary(result.findings)}${tail}\n`);
  if (flags.timings) process.stderr.write(`${formatTimings(timings, result.reusedDeclarations)}\n`);
  return { emitted: result.errors > 0 ? undefined : result.emitted, manifest };
}

function program(argv: string[]): Command {
  const root = new Command("nixos-test-ts")
    .description("Typed NixOS test scripts: generate bindings from a test's manifest, check a script against them, run it.")
    .showHelpAfterError();

  root
    .command("generate")
    .description("write test.generated.ts (typed bindings), its env declarations and a tsconfig.json into the out dir")
    .requiredOption("--manifest <file>", "the test's manifest.json")
    .requiredOption("--out <dir>", "where to write")
    .option("--node-types", "the tsconfig loads @types/node")
    .argument("[script]", "the test script the tsconfig should check")
    .action(async (script: string | undefined, flags: { manifest: string; out: string; nodeTypes?: boolean }) => {
      const generated = await generate({
        manifestPath: flags.manifest,
        outDir: flags.out,
        command: regenerateCommand(argv),
        ...(script === undefined ? {} : { script }),
        ...(flags.nodeTypes ? { nodeTypes: true } : {}),
      });
      process.stderr.write(`nixos-test-ts: wrote ${displayPath(generated.file)}\n`);
    });

  checkOptions(
    root
      .command("check")
      .description("generate, type-check and lint the test script, and emit it as JavaScript (never starts a VM)")
      .requiredOption("--manifest <file>", "the test's manifest.json")
      .requiredOption("--out <dir>", "where the generated module and the JavaScript go")
      .argument("<script>", "the test script (test.ts)"),
  ).action(async (script: string, flags: CheckFlags & { out: string }) => {
    const { emitted } = await runCheck(script, flags, flags.out, regenerateCommand(["generate", "--manifest", flags.manifest, "--out", flags.out, script]));
    if (emitted === undefined) process.exitCode = EXIT_CHECK_FAILED;
  });

  root
    .command("typings")
    .description("write the typed bindings next to the test script (plus a tsconfig.json unless you have one) for your editor")
    .requiredOption("--manifest <file>", "the test's manifest.json")
    .option("--node-types", "the tsconfig loads @types/node")
    .argument("<script>", "the test script (test.ts)")
    .action(async (script: string, flags: { manifest: string; nodeTypes?: boolean }) => {
      const written = await typings({
        manifestPath: flags.manifest,
        outDir: dirname(script),
        script,
        command: regenerateCommand(argv),
        ...(flags.nodeTypes ? { nodeTypes: true } : {}),
      });
      for (const f of written.files) process.stderr.write(`nixos-test-ts: wrote ${displayPath(f)}\n`);
      if (written.tsconfigKept) {
        const needed = { compilerOptions: tsconfigOptions(flags.nodeTypes ? { nodeTypes: true } : {}), files: written.files.map((f) => basename(f)) };
        process.stderr.write(`nixos-test-ts: kept your tsconfig.json; for the bindings it needs these settings:\n${JSON.stringify(needed, null, 2)}\n`);
      }
    });

  checkOptions(
    root
      .command("run")
      .description("check the test script, then run it with the driver: nixos-test-ts run --manifest m.json test.ts -- --start-scripts …")
      .requiredOption("--manifest <file>", "the test's manifest.json")
      .option("--out <dir>", "where the JavaScript goes (default: a temporary directory, removed afterwards)")
      .argument("<script>", "the test script (test.ts)")
      .argument("[driverArgs...]", "flags for the driver (nixos-test-driver), after --"),
  ).action(async (script: string, driverArgs: string[], flags: CheckFlags) => {
    const outDir = flags.out ?? mkdtempSync(join(tmpdir(), "nixos-test-ts-"));
    try {
      const { emitted, manifest } = await runCheck(
        script,
        flags,
        outDir,
        regenerateCommand(["generate", "--manifest", flags.manifest, "--out", outDir, script]),
      );
      if (emitted === undefined) {
        process.exitCode = EXIT_CHECK_FAILED;
        return;
      }
      const args = [...driverArgs];
      if (manifest.globalTimeout !== undefined && !args.some((a) => a === "--global-timeout" || a.startsWith("--global-timeout="))) {
        args.push("--global-timeout", String(manifest.globalTimeout));
      }
      const { code, signal } = await runNode([RUNTIME_CLI, ...args, emitted]);
      if (signal !== null) {
        if (flags.out === undefined) rmSync(outDir, { recursive: true, force: true });
        process.kill(process.pid, signal);
        return;
      }
      process.exitCode = code ?? EXIT_CHECK_FAILED;
    } finally {
      if (flags.out === undefined) rmSync(outDir, { recursive: true, force: true });
    }
  });
  return root;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program(argv).parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`nixos-test-ts: ${error.message}\n`);
      return EXIT_USAGE;
    }
    throw error;
  }
}
