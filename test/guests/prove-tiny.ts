// Hand-run proof that the tiny guest and its start scripts work the way the
// driver will use them (not part of the automated test suite: it boots three
// VMs under TCG and takes about a minute).
//
//   npx tsc -p . && node dist/test/guests/prove-tiny.js [--iterations 50]
//
// It starts its own vde_switch and QEMUs, talks to the backdoor over the
// -chardev socket exactly like the driver (marker line, then raw commands),
// prints timings, and kills by PID whatever it started, even on failure.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { writeStartScripts } from "./start-scripts.js";

const MARKER = "Spawning backdoor root shell...\n";
const started: ChildProcess[] = [];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function ms(t: number): string {
  return `${t.toFixed(1)} ms`;
}

async function withTimeout<T>(what: string, seconds: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${seconds}s: ${what}`)), seconds * 1000);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once("exit", (code) => r(code)));
}

/** The backdoor as the driver sees it: a byte stream, no framing. */
class Shell {
  private buffer = "";
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => undefined);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves with everything up to and including `token`, consuming it. */
  async readUntil(token: string): Promise<string> {
    for (;;) {
      const at = this.buffer.indexOf(token);
      if (at >= 0) {
        const out = this.buffer.slice(0, at + token.length);
        this.buffer = this.buffer.slice(at + token.length);
        return out;
      }
      if (this.closed) throw new Error(`shell closed while waiting for ${JSON.stringify(token)}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  send(text: string): void {
    this.socket.write(text);
  }

  async untilClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
  }
}

interface Vm {
  name: string;
  qemu: ChildProcess;
  serial: string[];
  shell: Shell;
  startedAt: number;
  markerAfterMs: number;
}

async function startVm(
  name: string,
  script: string,
  base: string,
  env: Record<string, string>,
  extraArgs: string[] = [],
): Promise<Vm> {
  const state = join(base, `${name}-state`);
  const shared = join(base, `${name}-shared`);
  await mkdir(state, { recursive: true });
  await mkdir(shared, { recursive: true });
  await writeFile(join(shared, "from-host.txt"), `hello ${name}\n`);
  const socketPath = join(state, "shell");
  const startedAt = performance.now();
  const qemu = spawn(
    script,
    [
      "-chardev", `socket,id=shell,path=${socketPath},server=on,wait=on`,
      "-device", "virtio-serial",
      "-device", "virtconsole,chardev=shell",
      "-serial", "stdio",
      "-no-reboot",
      "-nographic",
      ...(extraArgs.length > 0 ? extraArgs : ["-monitor", "none"]),
    ],
    {
      cwd: "/",
      env: { ...process.env, TMPDIR: state, USE_TMPDIR: "1", SHARED_DIR: shared, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  started.push(qemu);
  const serial: string[] = [];
  const onOutput = (chunk: Buffer): void => {
    serial.push(chunk.toString("utf8"));
  };
  qemu.stdout?.on("data", onOutput);
  qemu.stderr?.on("data", onOutput);

  // QEMU creates the socket and then blocks until we connect (wait=on).
  await withTimeout(`${name}: shell socket`, 30, (async () => {
    while (!existsSync(socketPath)) {
      if (qemu.exitCode !== null) throw new Error(`${name}: QEMU exited early:\n${serial.join("")}`);
      await sleep(10);
    }
  })());
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(socketPath, () => resolve(s));
    s.once("error", reject);
  });
  const shell = new Shell(socket);
  await withTimeout(`${name}: backdoor marker`, 300, shell.readUntil(MARKER));
  return { name, qemu, serial, shell, startedAt, markerAfterMs: performance.now() - startedAt };
}

let sequence = 0;
/** Runs a command the way the driver does and returns its output (stdout only). */
async function run(vm: Vm, command: string, seconds = 60): Promise<string> {
  const end = `__PROVE_END_${++sequence}__`;
  // A separate line, so commands ending in '&' stay valid.
  vm.shell.send(`${command}\necho ${end}\n`);
  const out = await withTimeout(`${vm.name}: ${command}`, seconds, vm.shell.readUntil(`${end}\n`));
  return out.slice(0, -(end.length + 1));
}

async function poweroff(vm: Vm): Promise<number> {
  const t = performance.now();
  vm.shell.send("poweroff\n");
  const code = await withTimeout(`${vm.name}: QEMU exit after poweroff`, 60, exited(vm.qemu));
  const took = performance.now() - t;
  console.log(`${vm.name}: poweroff -> QEMU exited with ${code} after ${ms(took)}`);
  return took;
}

async function benchmark(vm: Vm, iterations: number): Promise<void> {
  const measure = async (label: string, line: string, expect: string): Promise<void> => {
    const times: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const t = performance.now();
      vm.shell.send(line);
      const got = await withTimeout(label, 30, vm.shell.readUntil("\n"));
      times.push(performance.now() - t);
      if (got !== expect) throw new Error(`${label}: got ${JSON.stringify(got)}`);
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    const median = times[Math.floor(times.length / 2)] ?? NaN;
    const p90 = times[Math.floor(times.length * 0.9)] ?? NaN;
    console.log(`  ${label}: mean ${ms(mean)}, median ${ms(median)}, p90 ${ms(p90)} over ${iterations}`);
  };
  console.log(`${vm.name}: per-command cost over the backdoor (TCG):`);
  await measure("echo x", "echo x\n", "x\n");
  // The driver's framing: the output travels base64-encoded on one line.
  await measure(
    "( set -euo pipefail; true ) | (base64 -w 0; echo)",
    "( set -euo pipefail; true ) | (base64 -w 0; echo)\n",
    "\n",
  );
  await measure(
    "( set -euo pipefail; echo x ) | (base64 -w 0; echo)",
    "( set -euo pipefail; echo x ) | (base64 -w 0; echo)\n",
    "eAo=\n",
  );
}

async function startVdeSwitch(dir: string): Promise<ChildProcess> {
  // Like nixpkgs' vlan.py: foreground, commands on stdin (EOF would stop it).
  const vde = spawn("vde_switch", ["--sock", dir, "--dirmode", "0700", "--hub"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  started.push(vde);
  vde.stdin?.write("version\n");
  await withTimeout("vde_switch ctl socket", 10, (async () => {
    while (!existsSync(join(dir, "ctl"))) {
      if (vde.exitCode !== null) throw new Error("vde_switch exited");
      await sleep(10);
    }
  })());
  console.log(`vde_switch pid ${vde.pid} on ${dir}`);
  return vde;
}

async function expectScriptFailure(script: string): Promise<void> {
  const env = { ...process.env };
  delete env.QEMU_VDE_SOCKET_1;
  const child = spawn(script, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await exited(child);
  console.log(`without QEMU_VDE_SOCKET_1: exit ${code}, stderr: ${stderr.trim()}`);
  if (code !== 1) throw new Error("expected exit code 1");
}

async function panicExits(script: string, base: string, vdeSocket: string): Promise<void> {
  // rdinit pointing nowhere: the kernel cannot run init and panics; panic=1
  // plus -no-reboot must turn that into QEMU exiting on its own.
  await mkdir(join(base, "panic-state"), { recursive: true });
  const t = performance.now();
  const qemu = spawn(script, ["-serial", "stdio", "-no-reboot", "-nographic", "-monitor", "none"], {
    env: {
      ...process.env,
      TMPDIR: join(base, "panic-state"),
      USE_TMPDIR: "1",
      QEMU_VDE_SOCKET_1: vdeSocket,
      QEMU_KERNEL_PARAMS: "rdinit=/nonexistent",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(qemu);
  let serial = "";
  qemu.stdout?.on("data", (c: Buffer) => (serial += c.toString()));
  qemu.stderr?.on("data", (c: Buffer) => (serial += c.toString()));
  const code = await withTimeout("QEMU exit after panic", 120, exited(qemu));
  const panicLine = serial.split("\n").find((l) => l.includes("Kernel panic")) ?? "(no panic line)";
  console.log(`panic: QEMU exited with ${code} after ${ms(performance.now() - t)}; ${panicLine.trim()}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { iterations: { type: "string", default: "50" } } });
  const iterations = Number(values.iterations);
  const base = await mkdtemp(join(tmpdir(), "prove-tiny-"));
  console.log(`work dir ${base}`);

  const t = performance.now();
  const scripts = await writeStartScripts(join(base, "scripts"), [
    { name: "machine1", vlans: [1] },
    { name: "machine2", vlans: [1] },
  ]);
  console.log(`buildGuest + writeStartScripts: ${ms(performance.now() - t)}`);
  const script1 = scripts["machine1"];
  const script2 = scripts["machine2"];
  if (script1 === undefined || script2 === undefined) throw new Error("scripts missing");

  await expectScriptFailure(script1);

  const vdeDir = join(base, "vde1.ctl");
  const vde = await startVdeSwitch(vdeDir);
  const env = { QEMU_VDE_SOCKET_1: vdeDir };

  // --- one VM: the brief's command, benchmark, poweroff
  const vm1 = await startVm("machine1", script1, base, env);
  console.log(`machine1: QEMU start -> marker: ${ms(vm1.markerAfterMs)}`);
  const answer = await run(
    vm1,
    "echo hi; hostname; cat /etc/hosts; ls /tmp/shared; base64 --version | head -1; type timeout",
  );
  console.log(`machine1 answered:\n${answer.replace(/^/gm, "  | ")}`);
  console.log(
    (await run(vm1, "echo uname: $(uname -r); nc -h 2>&1 | head -1; readlink -f $(command -v nc); " +
      "echo PATH=$PATH; ls -l /dev/hvc0; echo xchg: $(ls /tmp/xchg); grep 9p /proc/mounts"))
      .replace(/^/gm, "  | "),
  );
  await benchmark(vm1, iterations);
  await poweroff(vm1);
  console.log(`machine1 serial log:\n${vm1.serial.join("").replace(/\r/g, "").replace(/^/gm, "  > ")}`);

  // --- two VMs on vlan 1
  const [a, b] = await Promise.all([
    startVm("machine1", script1, base, env),
    startVm("machine2", script2, base, env),
  ]);
  console.log(`two VMs in parallel: marker after ${ms(a.markerAfterMs)} / ${ms(b.markerAfterMs)}`);
  console.log((await run(a, "ip addr show eth1 | grep -E 'ether|inet '; ping -c1 -W 10 machine2; echo ping exit $?"))
    .replace(/^/gm, "  machine1| "));
  console.log((await run(b, "ping -c1 -W 10 machine1 >/dev/null; echo ping exit $?"))
    .replace(/^/gm, "  machine2| "));
  // The driver's waitForOpenPort runs `nc -z <addr> <port>`.
  await run(b, "nc -l 1234 </dev/null >/dev/null 2>&1 &");
  await sleep(500);
  console.log((await run(a, "nc -z machine2 1234; echo nc -z open port exit $?; nc -z -w 2 machine2 1235; echo nc -z closed port exit $?"))
    .replace(/^/gm, "  machine1| "));
  await Promise.all([poweroff(a), poweroff(b)]);

  // --- the other ways out: `reboot` in the shell, and ctrl-alt-del from the
  // host (busybox init's ::ctrlaltdel:), must both end QEMU under -no-reboot.
  const monitorPath = join(base, "monitor");
  const [r, c] = await Promise.all([
    startVm("machine1", script1, base, env),
    startVm("machine2", script2, base, env, ["-monitor", `unix:${monitorPath},server=on,wait=off`]),
  ]);
  let t0 = performance.now();
  r.shell.send("reboot\n");
  let code = await withTimeout("QEMU exit after reboot", 60, exited(r.qemu));
  console.log(`machine1: reboot -> QEMU exited with ${code} after ${ms(performance.now() - t0)}`);
  t0 = performance.now();
  const monitor = await new Promise<Socket>((resolve, reject) => {
    const s = connect(monitorPath, () => resolve(s));
    s.once("error", reject);
  });
  monitor.on("error", () => undefined);
  monitor.write("sendkey ctrl-alt-delete\n");
  code = await withTimeout("QEMU exit after ctrl-alt-delete", 60, exited(c.qemu));
  monitor.destroy();
  console.log(`machine2: ctrl-alt-delete -> QEMU exited with ${code} after ${ms(performance.now() - t0)}`);

  await panicExits(script1, base, vdeDir);

  vde.kill("SIGTERM");
  await withTimeout("vde_switch exit", 10, exited(vde));
  console.log(`vde_switch ${vde.pid} stopped`);
  await rm(base, { recursive: true, force: true });
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack ?? error.message : String(error));
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const child of started) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        console.error(`killing leftover pid ${child.pid}`);
        child.kill("SIGKILL");
      }
    }
  });
