// A fake QEMU for the fast test tier: started by a `run-<name>-vm` start
// script with the arguments the driver appends (-qmp, -monitor, -chardev
// socket,id=shell, -serial stdio), it plays the guest's side of each socket
// on the host:
//
// - the backdoor: a local bash reading commands from the shell socket, after
//   nixpkgs' `Spawning backdoor root shell...` marker, stderr on the serial
//   console (stdout), exactly as backdoor.service wires it;
// - QMP: a server with the greeting, `qmp_capabilities`, `query-status`,
//   `quit`, `system_powerdown` and the SHUTDOWN event;
// - the HMP monitor: `(qemu) ` prompts, `quit`, `info status`, `sendkey`,
//   anything else answered with QEMU's "unknown command".
//
// The bash runs on the host as the test's user, so commands that would touch
// the host's power state are shadowed: `poweroff`/`halt`/`reboot` end this
// fake as a guest's poweroff ends QEMU. FAKE_GUEST_BOOT_MS delays the marker
// (a slow boot); FAKE_GUEST_NO_SHELL never sends it (a hung boot).
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";

function argAfter(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i < 0 ? undefined : process.argv[i + 1];
}

function required(value: string | undefined, what: string): string {
  if (value === undefined) {
    process.stderr.write(`fake-qemu: ${what} missing from the arguments: ${process.argv.slice(2).join(" ")}\n`);
    process.exit(1);
  }
  return value;
}

const qmpPath = required(/^unix:([^,]+)/.exec(argAfter("-qmp") ?? "")?.[1], "-qmp unix:PATH");
const monitorPath = required(/^unix:(.+)$/.exec(argAfter("-monitor") ?? "")?.[1], "-monitor unix:PATH");
const shellPath = required(/(?:^|,)path=([^,]+)/.exec(argAfter("-chardev") ?? "")?.[1], "-chardev socket,id=shell,path=PATH");
const noReboot = process.argv.includes("-no-reboot");
/** The machine's name, for its hostname (the start script sets it, as a NixOS VM has its node's name). */
const name = process.env.FAKE_GUEST_NAME ?? "machine";

const serial = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

let bash: ChildProcess | undefined;
let qmpServer: Server | undefined;
const qmpClients = new Set<Socket>();

/**
 * Everything else in our process group: the guest's processes. The driver starts each start script in a
 * group of its own, so when this fake "powers off", the guest's processes (background jobs included) end
 * with it, as they do with a VM.
 */
function killGuestProcesses(): void {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp === process.pid) process.kill(Number(entry), "SIGKILL");
    } catch {
      // It ended while we looked.
    }
  }
}

function powerOff(event: string, code = 0): never {
  for (const c of qmpClients) c.write(`${JSON.stringify({ event, timestamp: { seconds: 0, microseconds: 0 }, data: { guest: true } })}\r\n`);
  bash?.kill("SIGKILL");
  killGuestProcesses();
  qmpServer?.close();
  serial(`fake-qemu: ${event.toLowerCase()}`);
  process.exit(code);
}

process.on("SIGTERM", () => powerOff("SHUTDOWN"));
process.on("SIGHUP", () => powerOff("SHUTDOWN"));

function serveQmp(): Server {
  const server = createServer((socket) => {
    qmpClients.add(socket);
    socket.on("close", () => qmpClients.delete(socket));
    socket.on("error", () => undefined);
    socket.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 8, minor: 0, micro: 0 }, package: "fake" }, capabilities: [] } })}\r\n`);
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk.toString();
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line === "") continue;
        const { execute, id } = JSON.parse(line) as { execute: string; id?: unknown };
        const reply = (body: object): void => {
          socket.write(`${JSON.stringify({ ...body, ...(id === undefined ? {} : { id }) })}\r\n`);
        };
        if (execute === "qmp_capabilities") reply({ return: {} });
        else if (execute === "query-status") reply({ return: { status: "running", running: true } });
        else if (execute === "quit" || execute === "system_powerdown") {
          reply({ return: {} });
          powerOff("SHUTDOWN");
        } else reply({ error: { class: "CommandNotFound", desc: `The command ${execute} has not been found` } });
      }
    });
  });
  server.listen(qmpPath);
  return server;
}

function serveMonitor(socket: Socket): void {
  socket.write("QEMU 8.0.0 monitor - type 'help' for more information\r\n(qemu) ");
  let buffer = "";
  socket.on("error", () => undefined);
  socket.on("data", (chunk) => {
    buffer += chunk.toString();
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const command = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      // HMP echoes what it reads, then answers, then prompts.
      let answer = "";
      if (command === "quit") powerOff("SHUTDOWN", 0);
      else if (command === "info status") answer = "VM status: running\r\n";
      else if (command.startsWith("sendkey ")) answer = "";
      else if (command !== "") answer = `unknown command: '${command.split(" ")[0]}'\r\n`;
      socket.write(`${command}\r\n${answer}(qemu) `);
    }
  });
}

function startShell(socket: Socket): void {
  serial("connecting to host...");
  // Relayed through pipes, as QEMU relays /dev/hvc0 to its chardev (but without the console's losses).
  // A mount and UTS namespace of its own gives each fake guest what a VM has and the framing relies
  // on: a private /tmp and /dev/shm, the shared directory at /tmp/shared, its own hostname.
  const unshare = process.getuid?.() === 0 ? ["--mount", "--uts"] : ["--user", "--map-root-user", "--mount", "--uts"];
  const sharedDir = process.env.SHARED_DIR;
  // The shared directory usually lives under the host's /tmp: held on /dev/shm while /tmp is covered.
  const setup = [
    "mount -t tmpfs fake-shm /dev/shm",
    ...(sharedDir === undefined ? [] : ['mkdir /dev/shm/shared && mount --bind "$SHARED_DIR" /dev/shm/shared']),
    "mount -t tmpfs fake-tmp /tmp",
    ...(sharedDir === undefined ? [] : ["mkdir /tmp/shared && mount --move /dev/shm/shared /tmp/shared && rmdir /dev/shm/shared"]),
    // Power commands end this fake, as a guest's poweroff ends QEMU, and never reach the host's init.
    // Written into the private /tmp, which is why they come after the mounts; a failure stops here, before the marker.
    "mkdir /tmp/.fake-bin",
    ...["poweroff", "halt", "reboot", "shutdown"].map(
      (cmd) =>
        `printf '#!/bin/sh\\nkill -${cmd === "reboot" && !noReboot ? "HUP" : "TERM"} ${process.pid}\\n' > /tmp/.fake-bin/${cmd} && chmod 755 /tmp/.fake-bin/${cmd}`,
    ),
    // systemctl, as far as switchRoot needs it: an initrd whose initrd.target is active, and the switch
    // itself (SIGUSR1: this fake prints systemd's line and starts a new backdoor shell). Nothing else.
    `printf '%s\\n' ${shellWords(SYSTEMCTL)} > /tmp/.fake-bin/systemctl && chmod 755 /tmp/.fake-bin/systemctl`,
    `hostname ${JSON.stringify(name)}`,
    "cd /tmp",
    "echo 'Spawning backdoor root shell...'",
    "exec bash --norc",
  ].join(" && ");
  bash = spawn("unshare", [...unshare, "--propagation", "private", "--", "bash", "-c", setup], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, PATH: `/tmp/.fake-bin:${process.env.PATH ?? "/usr/bin:/bin"}`, PS1: "", USER: "root", HOME: "/root" },
  });
  const current = bash;
  current.stdin?.on("error", () => undefined);
  socket.pipe(current.stdin!);
  current.stdout?.pipe(socket, { end: false });
  current.stderr?.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line !== "") serial(line);
  });
  // A guest whose backdoor died is useless to the driver: end like a crashed QEMU, so tests fail loudly.
  current.on("exit", (code, signal) => {
    if (current !== bash) return; // replaced on purpose (the switch of root)
    serial(`fake-qemu: backdoor shell exited (${signal ?? code})`);
    powerOff("GUEST_PANICKED", 1);
  });
}

/** What the fake's `systemctl` does (see startShell). */
const SYSTEMCTL = [
  "#!/bin/sh",
  'case "$*" in',
  '  *"show initrd.target --property=ActiveState"*) echo ActiveState=active ;;',
  '  *"show initrd.target"*) printf "Id=initrd.target\\nActiveState=active\\nSubState=active\\nLoadState=loaded\\n" ;;',
  `  *"isolate --no-block initrd-switch-root.target"*) kill -USR1 ${process.pid} ;;`,
  '  *) echo "fake guest: systemctl $* is not simulated" >&2; exit 1 ;;',
  "esac",
];

function shellWords(lines: string[]): string {
  return lines.map((l) => `'${l.replace(/'/g, "'\\''")}'`).join(" ");
}

/** The initrd's systemd switches root: the old backdoor shell dies, stage 2's announces itself. */
function switchRoot(socket: Socket): void {
  const old = bash;
  serial("systemd[1]: Switching root.");
  if (old !== undefined) {
    old.stdout?.unpipe(socket);
    if (old.stdin) socket.unpipe(old.stdin);
    bash = undefined;
    old.kill("SIGKILL");
  }
  startShell(socket);
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

async function main(): Promise<void> {
  serial("fake-qemu: SeaBIOS (version fake)");
  qmpServer = serveQmp();
  const monitor = await connectTo(monitorPath);
  serveMonitor(monitor);
  const shell = await connectTo(shellPath);
  shell.on("error", () => undefined);
  shell.on("close", () => powerOff("SHUTDOWN"));
  monitor.on("close", () => powerOff("SHUTDOWN"));
  serial("Linux version 6.1.0-fake (fake-qemu)");
  if (process.env.FAKE_GUEST_NO_SHELL === "1") return;
  const delay = Number(process.env.FAKE_GUEST_BOOT_MS ?? 0);
  setTimeout(() => startShell(shell), delay);
  process.on("SIGUSR1", () => switchRoot(shell));
}

main().catch((error: unknown) => {
  process.stderr.write(`fake-qemu: ${String(error)}\n`);
  process.exit(1);
});
