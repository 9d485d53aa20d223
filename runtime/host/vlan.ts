// node:child_process, not execa: vde_plug2tap runs detached in a group of its own that the reaper ends,
// and the synchronous calls (`ip`, `flock` around the bridge set-up) must finish before the vlan is used.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as pty from "node-pty";
import { MachineError } from "../errors.js";
import type { Logger } from "../log/logger.js";
import { killGroup, track } from "./reaper.js";

/** vde_switch answers `showinfo` with this line once it is ready. */
const READY = "1000 Success";
const HANDSHAKE_MS = 5000;
/** `<dir>/ctl` must fit into sun_path (108 bytes with its NUL). */
const MAX_CTL_PATH = 107;

/** How long vde_plug2tap gets to create its tap. */
const TAP_MS = 5000;

/**
 * One virtual network: a `vde_switch` in hub mode (hub, so 802.1Q-tagged
 * frames pass too), run on a pseudo-terminal as nixpkgs runs it, whose
 * control socket the start scripts get as `QEMU_VDE_SOCKET_<nr>`. When the
 * test has containers, the switch also gets a tap (`vde_plug2tap`, as
 * nixpkgs' VLan) on the bridge `br<nr>` that the containers' veths join
 * (their start scripts use the same bridge and lock), so VMs and containers
 * share the vlan.
 */
export class VLan {
  private stopped = false;

  private constructor(
    readonly nr: number,
    /** The switch's socket directory (what QEMU's `-netdev vde,sock=` wants). */
    readonly socket: string,
    private readonly term: pty.IPty,
    private readonly untrack: () => void,
    private readonly ownsFallback: string | undefined,
    private readonly exited: Promise<void>,
    private readonly tap: Tap | undefined,
  ) {}

  get pid(): number {
    return this.term.pid;
  }

  /** Starts the switch and waits for its handshake; `stateRoot` is where the socket directory goes if its path is short enough. */
  static async start(nr: number, stateRoot: string, logger: Logger, options: { tap?: boolean } = {}): Promise<VLan> {
    let socket = join(stateRoot, `vde${nr}.ctl`);
    let fallback: string | undefined;
    if (Buffer.byteLength(join(socket, "ctl")) > MAX_CTL_PATH) {
      fallback = mkdtempSync("/tmp/ntt-vde-");
      socket = join(fallback, `vde${nr}.ctl`);
    }
    rmSync(socket, { recursive: true, force: true });
    mkdirSync(join(socket, ".."), { recursive: true });
    let term: pty.IPty;
    try {
      term = pty.spawn("vde_switch", ["--sock", socket, "--dirmode", "0700", "--hub"], {
        name: "dumb",
        cols: 200,
        rows: 24,
        env: process.env as Record<string, string>,
      });
    } catch (error) {
      throw new MachineError(
        `vlan${nr}`,
        `cannot start vde_switch (${(error as Error).message}); install vde2 (Debian: apt-get install vde2; Nix: pkgs.vde2)`,
        { cause: error },
      );
    }
    const untrack = track(term.pid);
    let output = "";
    const exited = new Promise<void>((resolve) => term.onExit(() => resolve()));
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new MachineError(`vlan${nr}`, `vde_switch did not answer showinfo within ${HANDSHAKE_MS / 1000} s; its output:\n${output}`)),
        HANDSHAKE_MS,
      );
      term.onData((data) => {
        output += data;
        if (output.includes(READY)) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new MachineError(`vlan${nr}`, `vde_switch exited at once; its output:\n${output}`));
      });
    });
    term.write("showinfo\n");
    try {
      await ready;
    } catch (error) {
      killGroup(term.pid);
      untrack();
      if (fallback !== undefined) rmSync(fallback, { recursive: true, force: true });
      throw error;
    }
    logger.log(`vlan${nr}: vde_switch running (pid ${term.pid}, socket ${socket})`);
    let tap: Tap | undefined;
    if (options.tap === true) {
      try {
        tap = await Tap.start(nr, socket);
      } catch (error) {
        killGroup(term.pid);
        untrack();
        rmSync(socket, { recursive: true, force: true });
        if (fallback !== undefined) rmSync(fallback, { recursive: true, force: true });
        throw error;
      }
      logger.log(`vlan${nr}: tap ${tap.name} (vde_plug2tap pid ${tap.pid}) on bridge br${nr}`);
    }
    return new VLan(nr, socket, term, untrack, fallback, exited, tap);
  }

  /** Stops the switch (the VMs should be gone first) and removes its socket. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.tap?.stop();
    killGroup(this.term.pid, "SIGTERM");
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
    if (!done) killGroup(this.term.pid, "SIGKILL");
    this.untrack();
    rmSync(this.socket, { recursive: true, force: true });
    if (this.ownsFallback !== undefined) rmSync(this.ownsFallback, { recursive: true, force: true });
  }
}

/** vde_plug2tap on a switch, its tap `vde-tap<nr>` on the bridge `br<nr>` (created here if no container made it yet). */
class Tap {
  private constructor(
    readonly name: string,
    private readonly nr: number,
    private readonly child: ChildProcess,
    private readonly untrack: () => void,
    private readonly exited: Promise<void>,
  ) {}

  get pid(): number {
    return this.child.pid ?? -1;
  }

  static async start(nr: number, socket: string): Promise<Tap> {
    const name = `vde-tap${nr}`;
    const child = spawn("vde_plug2tap", ["-s", socket, name], { stdio: ["ignore", "ignore", "pipe"], detached: true });
    const untrack = track(child.pid ?? -1);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    child.once("error", () => undefined);
    const tap = new Tap(name, nr, child, untrack, exited);
    const until = Date.now() + TAP_MS;
    let gone = false;
    void exited.then(() => (gone = true));
    while (!linkExists(name)) {
      if (gone || Date.now() > until) {
        await tap.stop();
        throw new MachineError(`vlan${nr}`, `vde_plug2tap did not create the tap ${name}${stderr ? `: ${stderr.trim()}` : ""}; it needs root and /dev/net/tun`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    withVlanLock(
      nr,
      `ip link show br${nr} >/dev/null 2>&1 || { ip link add br${nr} type bridge && ip link set br${nr} up && ip addr add 192.168.${nr}.254/24 dev br${nr}; }; ip link set ${name} master br${nr} && ip link set ${name} up`,
    );
    return tap;
  }

  async stop(): Promise<void> {
    killGroup(this.pid, "SIGTERM");
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
    if (!done) killGroup(this.pid, "SIGKILL");
    this.untrack();
    // The bridge goes once nothing is plugged in (the containers' scripts do the same).
    try {
      withVlanLock(
        this.nr,
        `if ip link show br${this.nr} >/dev/null 2>&1 && [ -z "$(ip -o link show master br${this.nr})" ]; then ip link delete br${this.nr}; fi`,
      );
    } catch {
      // best effort: a container still on the bridge removes it when it goes
    }
  }
}

function linkExists(name: string): boolean {
  try {
    execFileSync("ip", ["link", "show", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Runs `script` holding the vlan's lock, the one nixpkgs' nspawn start scripts take around their bridge. */
function withVlanLock(nr: number, script: string): void {
  mkdirSync("/run/nixos-nspawn", { recursive: true });
  execFileSync("flock", [`/run/nixos-nspawn/vlan-${nr}.lock`, "sh", "-c", script], { stdio: ["ignore", "ignore", "pipe"] });
}
