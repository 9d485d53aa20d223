import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface SocketPaths {
  monitor: string;
  shell: string;
  qmp: string;
  /** The data port's socket (large answers, see DataChannel). */
  data: string;
  /** A directory we created only because the state directory's path was too long; removed at the end. */
  fallbackDir: string | undefined;
}

/**
 * QEMU's sockets live in the state directory, as in nixpkgs, unless that path
 * is too long for AF_UNIX (deep build directories, long test names): then in a
 * short private directory under /tmp, so long paths never break a test.
 */
export function socketPaths(stateDir: string): SocketPaths {
  if (Buffer.byteLength(join(stateDir, "monitor")) <= MAX_SOCKET_PATH) {
    return { ...inDir(stateDir), fallbackDir: undefined };
  }
  const dir = mkdtempSync("/tmp/ntt-");
  return { ...inDir(dir), fallbackDir: dir };
}

function inDir(dir: string): Omit<SocketPaths, "fallbackDir"> {
  return { monitor: join(dir, "monitor"), shell: join(dir, "shell"), qmp: join(dir, "qmp"), data: join(dir, "ntt-data") };
}

/** A listening socket that QEMU connects to (as nixpkgs does for `-monitor` and the shell chardev). */
export class Listener {
  private readonly server: Server;
  private readonly connection: Promise<Socket>;

  private constructor(
    server: Server,
    readonly path: string,
  ) {
    this.server = server;
    this.connection = new Promise<Socket>((resolve) => server.once("connection", resolve));
  }

  static async listen(path: string): Promise<Listener> {
    rmSync(path, { force: true });
    const server = createServer({ pauseOnConnect: false });
    const listener = new Listener(server, path);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    return listener;
  }

  accepted(): Promise<Socket> {
    return this.connection;
  }

  close(): void {
    this.server.close();
    rmSync(this.path, { force: true });
  }
}
