import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as pty from "node-pty";
import { MachineError } from "./errors.js";
import type { Logger } from "./log/logger.js";
import { killGroup, track } from "./reaper.js";

/** vde_switch answers `showinfo` with this line once it is ready. */
const READY = "1000 Success";
const HANDSHAKE_MS = 5000;
/** `<dir>/ctl` must fit into sun_path (108 bytes with its NUL). */
const MAX_CTL_PATH = 107;

/**
 * One virtual network: a `vde_switch` in hub mode (hub, so 802.1Q-tagged
 * frames pass too), run on a pseudo-terminal as nixpkgs runs it, whose
 * control socket the start scripts get as `QEMU_VDE_SOCKET_<nr>`.
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
  ) {}

  get pid(): number {
    return this.term.pid;
  }

  /** Starts the switch and waits for its handshake; `stateRoot` is where the socket directory goes if its path is short enough. */
  static async start(nr: number, stateRoot: string, logger: Logger): Promise<VLan> {
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
      term = pty.spawn("vde_switch", ["--sock", socket, "--dirmode", "0700", "--hub"], { name: "dumb", cols: 200, rows: 24, env: process.env as Record<string, string> });
    } catch (error) {
      throw new MachineError(`vlan${nr}`, `cannot start vde_switch (${(error as Error).message}); install vde2 (Debian: apt-get install vde2; Nix: pkgs.vde2)`, { cause: error });
    }
    const untrack = track(term.pid);
    let output = "";
    const exited = new Promise<void>((resolve) => term.onExit(() => resolve()));
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new MachineError(`vlan${nr}`, `vde_switch did not answer showinfo within ${HANDSHAKE_MS / 1000} s; its output:\n${output}`)), HANDSHAKE_MS);
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
    return new VLan(nr, socket, term, untrack, fallback, exited);
  }

  /** Stops the switch (the VMs should be gone first) and removes its socket. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    killGroup(this.term.pid, "SIGTERM");
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
    if (!done) killGroup(this.term.pid, "SIGKILL");
    this.untrack();
    rmSync(this.socket, { recursive: true, force: true });
    if (this.ownsFallback !== undefined) rmSync(this.ownsFallback, { recursive: true, force: true });
  }
}
