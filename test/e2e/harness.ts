import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFakeStartScripts } from "../fake-guest/start-scripts.js";
import { writeStartScripts, type GuestName, type GuestNode } from "../guests/start-scripts.js";

/** dist/runtime/cli.js, i.e. the real CLI as users run it. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "runtime", "cli.js");

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stderr and stdout, interleaved as they came. */
  output: string;
  dir: string;
  outDir: string;
  /** PIDs the driver reported for its QEMUs ("QEMU running (pid N)"). */
  qemuPids: number[];
  xml(): Promise<string>;
}

export interface RunOptions {
  nodes?: GuestNode[];
  args?: string[];
  env?: Record<string, string>;
  /** Called once the driver printed `text`; used to interrupt it at a known moment. */
  onOutput?: (text: string, child: import("node:child_process").ChildProcess) => void;
  /** Seconds before the harness kills the driver itself (a test that hangs must still end). */
  limit?: number;
  /** Which Debian guest the start scripts boot; default the tiny one. "fake": a local bash (test/fake-guest), for the fast tier. */
  guest?: GuestName | "fake";
  /** The tiny guest's VGA text console on the screen (see StartScriptOptions.vgaText). */
  vgaText?: boolean;
}

/** A fresh directory with start scripts for `nodes` and the test script. */
export async function prepare(
  script: string,
  nodes: GuestNode[] = [{ name: "machine", vlans: [] }],
  guest: GuestName | "fake" = "tiny",
  boot: { vgaText?: boolean } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), "ntt-e2e-"));
  // NTT_TEST_ASLR=1: the guests keep address randomisation, as NixOS guests do (slower under TCG).
  const scripts =
    guest === "fake"
      ? await writeFakeStartScripts(
          dir,
          nodes.map((n) => n.name),
        )
      : await writeStartScripts(dir, nodes, { guest, aslr: process.env.NTT_TEST_ASLR === "1", vgaText: boot.vgaText === true });
  const scriptPath = join(dir, "test.mjs");
  await writeFile(scriptPath, script);
  return { dir, scripts: Object.values(scripts), scriptPath };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stderr and stdout, interleaved as they came. */
  output: string;
  /** performance.now() when the CLI exited. */
  endedAt: number;
}

/** Runs the driver CLI with `args`, collecting its output; kills it by PID if it outlives `limit` seconds. */
export async function runCli(
  args: string[],
  options: { cwd: string; env?: Record<string, string>; limit: number; onOutput?: RunOptions["onOutput"] },
): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const onData = (chunk: Buffer): void => {
    output += chunk.toString();
    options.onOutput?.(output, child);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const limit = setTimeout(() => {
    output += `\n[harness: the CLI outlived its ${options.limit} s limit; killing pid ${child.pid}]\n`;
    child.kill("SIGKILL");
  }, options.limit * 1000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
  const endedAt = performance.now();
  clearTimeout(limit);
  return { code, signal, output, endedAt };
}

/** Runs the CLI on a test script against guests (tiny by default) and collects everything a test may assert on. */
export async function runDriver(script: string, options: RunOptions = {}): Promise<Run> {
  const { dir, scripts, scriptPath } = await prepare(script, options.nodes, options.guest, { vgaText: options.vgaText === true });
  const outDir = join(dir, "out");
  const { code, signal, output } = await runCli(["--start-scripts", ...scripts, "-o", outDir, ...(options.args ?? []), scriptPath], {
    cwd: dir,
    ...(options.env ? { env: options.env } : {}),
    limit: options.limit ?? 300,
    ...(options.onOutput ? { onOutput: options.onOutput } : {}),
  });
  const qemuPids = [...output.matchAll(/QEMU running \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  // The backdoor protocol must never garble a command line (a stolen byte shows up as this in the serial log).
  assert.doesNotMatch(output, /_ntt_\w*: command not found/, "the guest shell received a damaged command line");
  return { code, signal, output, dir, outDir, qemuPids, xml: () => readFile(join(outDir, "log.xml"), "utf8") };
}

/** Every live process whose process group is one of `groups` (a start script's QEMU included). */
export async function survivors(groups: number[]): Promise<string[]> {
  const left: string[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Fields after the parenthesised command: state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") continue;
      if (groups.includes(Number(fields[2]))) left.push(`${entry} ${stat.slice(0, stat.lastIndexOf(")") + 1)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return left;
}

/** A strict check without a dependency: the declaration is there and every tag closes in order. */
export function assertWellFormed(xml: string): void {
  assert.ok(xml.startsWith("<?xml"), "XML declaration");
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z]+)[^>]*?(\/?)>/g)) {
    if (m[3] === "/") continue;
    if (m[1] === "/") assert.equal(stack.pop(), m[2], "tags close in order");
    else stack.push(m[2] as string);
  }
  assert.deepEqual(stack, [], "every element is closed");
}
