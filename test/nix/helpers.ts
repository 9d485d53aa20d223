// Running real nix from the tests: Debian's nix-bin (2.8), single-user (as
// root, no daemon), offline. Every nix process is tracked and ended by PID
// (SIGTERM first: nix then ends its builder and the build user's processes,
// QEMUs included).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout (this file is dist/test/nix/helpers.js). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const NIX_LIB = resolve(REPO, "nix", "lib");
export const SHIM = resolve(REPO, "test", "nix", "pkgs-shim.nix");

/** Options every nix command gets: no binary cache (unreachable here; nix would retry for seconds), flakes on. */
export const NIX_OPTIONS = [
  "--extra-experimental-features",
  "nix-command flakes",
  "--option",
  "substituters",
  "",
  // QEMU runs under TCG here; the test derivations still require these features, as nixpkgs' do.
  "--option",
  "system-features",
  "nixos-test kvm benchmark big-parallel",
];

/** Fails with what to do when nix cannot build here. */
export function requireNix(): void {
  const found = spawnSync("nix", ["--version"], { encoding: "utf8" });
  if (found.error !== undefined || found.status !== 0) {
    throw new Error("nix is not installed: run scripts/setup.sh (it installs Debian's nix-bin), or apt-get install nix-bin");
  }
  if (process.getuid?.() !== 0 && process.env.NIX_REMOTE === undefined) {
    throw new Error("test/nix builds with single-user nix, which needs root (or set NIX_REMOTE=daemon with a running nix-daemon)");
  }
}

export interface NixResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock seconds. */
  seconds: number;
}

const running = new Set<ChildProcess>();

/** Runs a nix command; resolves with its output whatever its status. */
export function nix(
  command: string,
  args: string[],
  options: {
    cwd?: string;
    timeout?: number;
    input?: string;
    /** Sees stderr as it grows; `interrupt` ends the command as stopAll would. */
    onStderr?: (stderr: string, interrupt: () => Promise<void>) => void;
  } = {},
): Promise<NixResult> {
  const began = performance.now();
  const child = spawn(command, args, { cwd: options.cwd ?? REPO, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  running.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
    options.onStderr?.(stderr, () => stop(child));
  });
  child.stdin?.end(options.input ?? "");
  const limit = setTimeout(() => void stop(child), (options.timeout ?? 300) * 1000);
  return new Promise((resolvePromise, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(limit);
      running.delete(child);
      resolvePromise({ code, signal, stdout, stderr, seconds: (performance.now() - began) / 1000 });
    });
  });
}

/**
 * SIGTERM (nix then interrupts its build: the driver ends its VMs), then
 * waits for nix and for every process that was below it (the builder, the
 * driver, QEMUs, vde_switch); whatever is left after 20 s gets SIGKILL.
 */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  const below = descendants(pid);
  child.kill("SIGTERM");
  const deadline = Date.now() + 20_000;
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return !/^\S+\s+\(.*\)\s+Z/.test(readFileSync(`/proc/${p}/stat`, "utf8"));
    } catch {
      return false;
    }
  };
  while (Date.now() < deadline && [pid, ...below].some(alive)) await new Promise((r) => setTimeout(r, 200));
  for (const p of [...below, ...descendants(pid), pid]) {
    if (!alive(p)) continue;
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Ends every nix process these tests started and that still runs (for `after`). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => stop(c)));
}

function parentOf(pid: string): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const parent = parentOf(entry);
    if (parent === undefined) continue;
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift() as number) ?? []) {
      found.push(c);
      queue.push(c);
    }
  }
  return found;
}

/** `nix-instantiate --eval --strict --json` of an expression; throws with nix's message when it fails. */
export async function evalJson(expr: string): Promise<unknown> {
  const r = await nix("nix-instantiate", ["--eval", "--strict", "--json", "--read-write-mode", "--expr", expr], { timeout: 60 });
  if (r.code !== 0) throw new Error(`nix-instantiate failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The error nix prints for an expression that must not evaluate. */
export async function evalError(expr: string): Promise<string> {
  const r = await nix("nix-instantiate", ["--eval", "--strict", "--json", "--read-write-mode", "--expr", expr], { timeout: 60 });
  if (r.code === 0) throw new Error(`expected an evaluation error, got ${r.stdout}`);
  return r.stderr;
}

/** A Nix string literal. */
export function nixString(s: string): string {
  return JSON.stringify(s).replace(/\$\{/g, "\\${");
}

let sandbox: string[] | undefined;

/**
 * Build options for the sandbox. Nix's sandbox works on this Debian host (as
 * root); the shim's builds need the host's tools and this checkout's
 * node_modules inside it. Where it does not work (a container without
 * namespaces), builds run with `sandbox = false`, Debian's default.
 */
export async function sandboxOptions(): Promise<string[]> {
  if (sandbox !== undefined) return sandbox;
  if (process.env.NTT_NIX_SANDBOX === "0") return (sandbox = ["--option", "sandbox", "false"]);
  const paths = ["/bin", "/usr", "/lib", "/lib64", resolve(REPO, "node_modules")].filter((p) => existsSync(p));
  const on = ["--option", "sandbox", "true", "--option", "extra-sandbox-paths", paths.join(" ")];
  const probe =
    `builtins.derivation { name = "ntt-sandbox-probe"; system = builtins.currentSystem; builder = "/bin/sh"; ` +
    `args = [ "-c" "PATH=/usr/bin:/bin; test -x ${resolve(REPO, "node_modules")} && echo ok > $out" ]; salt = "${process.pid}-${Date.now()}"; }`;
  const r = await nix("nix-build", [...NIX_OPTIONS, ...on, "--no-out-link", "--expr", probe], { timeout: 60 });
  sandbox = r.code === 0 ? on : ["--option", "sandbox", "false"];
  if (r.code !== 0) process.stderr.write(`test/nix: nix's sandbox does not work here, building with sandbox = false:\n${r.stderr.slice(-1000)}\n`);
  return sandbox;
}

/** Processes of nix's build users still running QEMU or vde_switch (none may outlive a build). */
export function buildUserLeftovers(): string[] {
  const members = new Set(
    readFileSync("/etc/group", "utf8")
      .split("\n")
      .find((l) => l.startsWith("nixbld:"))
      ?.split(":")[3]
      ?.split(",") ?? [],
  );
  const uids = new Set(
    readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .map((l) => l.split(":"))
      .filter((f) => members.has(f[0] ?? ""))
      .map((f) => Number(f[2])),
  );
  const left: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "";
      // A zombie has ended; only its parent (here often init, which reaps lazily) has yet to collect it.
      if (/^State:\s+Z/m.test(status)) continue;
      if (uids.has(uid) && /^(qemu-system|vde_switch)/.test(name)) left.push(`${entry} ${name} (uid ${uid})`);
    } catch {
      // ended while we looked
    }
  }
  return left;
}

const temporary: string[] = [];

/** A fresh directory under the system's temporary directory, removed by removeTempDirs(). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(temporary.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}
