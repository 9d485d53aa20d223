// Shared by the generator's tests: temporary tests (manifest + script), the check in process and the CLI.
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ManifestJson } from "../../lib/manifest.js";
import { formatFindings, type Finding } from "../../generator/diagnostics.js";
import { check, type CheckRequest } from "../../generator/pipeline.js";

/** The repository (this file is dist/test/generator/helpers.js). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const CLI = join(ROOT, "dist", "generator", "cli.js");
/** The installed command (package.json's bin): a shell script that starts Node from the check's snapshot itself. */
export const LAUNCHER = join(ROOT, "bin", "nixos-test-ts");

const node = (units: string[], tcp: number[], extra: Record<string, unknown> = {}) => ({
  vlans: [1],
  units,
  ports: { tcp, udp: [] as number[] },
  ...extra,
});

/** Two nodes like examples/two-nodes, written inline so a test shows what it relies on. */
export const TWO_NODES: ManifestJson = {
  name: "two-nodes",
  vlans: [1],
  nodes: {
    server: node(["multi-user.target", "sshd.service", "nginx.service", "getty@.service"], [22, 80], { addresses: { "1": "192.168.1.2" } }),
    client: node(["multi-user.target", "sshd.service", "getty@.service"], [22], { addresses: { "1": "192.168.1.1" } }),
  },
};

export const ONE_NODE: ManifestJson = {
  name: "one-node",
  vlans: [1],
  nodes: { webserver: node(["multi-user.target", "nginx.service"], [80]) },
};

export interface TestDir {
  dir: string;
  manifest: string;
  script: string;
  out: string;
}

/** A directory with manifest.json and test.ts (lines joined with \n, so line N is lines[N-1]). */
export async function testDir(manifest: ManifestJson | Record<string, unknown>, lines: string[]): Promise<TestDir> {
  const dir = await mkdtemp(join(tmpdir(), "ntt-gen-"));
  const paths = { dir, manifest: join(dir, "manifest.json"), script: join(dir, "test.ts"), out: join(dir, "out") };
  await writeFile(paths.manifest, JSON.stringify(manifest, null, 2));
  await writeFile(paths.script, `${lines.join("\n")}\n`);
  return paths;
}

export interface Checked {
  findings: Finding[];
  errors: number;
  warnings: number;
  emitted: string | undefined;
  /** The findings as the CLI prints them, paths relative to the test's directory (`test.ts:3:7 …`). */
  printed: string;
  dir: TestDir;
}

/** generate + check + emit in this process. */
export async function checkScript(
  manifest: ManifestJson | Record<string, unknown>,
  lines: string[],
  options: Partial<Pick<CheckRequest, "strictPorts" | "skipLint" | "skipTypeCheck" | "nodeTypes">> = {},
): Promise<Checked> {
  const dir = await testDir(manifest, lines);
  const { result } = await check({ manifestPath: dir.manifest, outDir: dir.out, script: dir.script, command: "nixos-test-ts generate", ...options });
  return { ...result, printed: formatFindings(result.findings, dir.dir), dir };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr as they came. */
  output: string;
  pid: number | undefined;
}

/**
 * Runs the nixos-test-ts CLI (`node dist/generator/cli.js`, or with `launcher` bin/nixos-test-ts). After `limit`
 * seconds it is sent SIGTERM (it forwards that to a driver it started, which ends its VMs), and SIGKILL 20 s later.
 */
export async function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; limit?: number; launcher?: boolean; onOutput?: (output: string, pid: number) => void } = {},
): Promise<CliRun> {
  const [file, ...before] = options.launcher ? [LAUNCHER] : [process.execPath, CLI];
  const child = spawn(file as string, [...before, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...(options.env ?? process.env), NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
    if (child.pid !== undefined) options.onOutput?.(output, child.pid);
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    output += chunk.toString();
    if (child.pid !== undefined) options.onOutput?.(output, child.pid);
  });
  const limit = (options.limit ?? 60) * 1000;
  let kill: NodeJS.Timeout | undefined;
  const term = setTimeout(() => {
    if (child.pid !== undefined) process.kill(child.pid, "SIGTERM");
    kill = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), 20_000);
  }, limit);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
  clearTimeout(term);
  clearTimeout(kill);
  return { code, signal, stdout, stderr, output, pid: child.pid };
}
