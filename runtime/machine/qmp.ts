import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import { onAbort } from "../async/abort.js";
import { QmpError } from "../errors.js";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Waiting {
  command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/**
 * A QEMU Machine Protocol client: greeting and capabilities handshake,
 * commands matched to answers by id, and events kept for `waitForEvent`.
 */
export class QmpClient {
  private readonly events = new EventEmitter();
  private readonly waiting = new Map<string, Waiting>();
  private buffered = "";
  private nextId = 1;
  private closedError: Error | undefined;
  /** Events seen since connecting, newest last; bounded so a chatty guest cannot grow it forever. */
  readonly history: QmpEvent[] = [];
  /**
   * Events no `waitForEvent` has consumed yet, oldest first: nixpkgs queues
   * them, so a wait also finds an event that came before it was called.
   * Bounded like `history`.
   */
  private readonly unconsumed: QmpEvent[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => this.onData(text));
    socket.on("error", () => undefined);
    socket.on("close", () => this.fail(new Error("the QMP connection closed")));
  }

  static async connect(path: string, signal?: AbortSignal): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const client = new QmpClient(socket);
    await client.greeting(signal);
    await client.execute("qmp_capabilities", undefined, signal);
    return client;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, signal?: AbortSignal): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `ntt-${this.nextId++}`;
    const message = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    return new Promise<T>((resolve, reject) => {
      const stop = onAbort(signal, (reason) => {
        this.waiting.delete(id);
        reject(reason);
      });
      this.waiting.set(id, {
        command,
        resolve: (v) => {
          stop();
          resolve(v as T);
        },
        reject: (e) => {
          stop();
          reject(e);
        },
      });
      this.socket.write(`${message}\n`);
    });
  }

  /** The first event, from now on, that `filter` accepts. */
  waitForEvent(filter: (event: QmpEvent) => boolean, signal?: AbortSignal): Promise<QmpEvent> {
    // As nixpkgs: queued events first, each consumed whether it matches or not (non-matching ones are skipped).
    while (this.unconsumed.length > 0) {
      const event = this.unconsumed.shift() as QmpEvent;
      if (filter(event)) return Promise.resolve(event);
    }
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<QmpEvent>((resolve, reject) => {
      const cleanup = (): void => {
        this.events.off("event", onEvent);
        this.events.off("closed", onClosed);
        stop();
      };
      const onEvent = (event: QmpEvent): void => {
        // Consumed by this wait, matching or not.
        const at = this.unconsumed.indexOf(event);
        if (at !== -1) this.unconsumed.splice(at, 1);
        if (!filter(event)) return;
        cleanup();
        resolve(event);
      };
      const onClosed = (error: Error): void => {
        cleanup();
        reject(error);
      };
      this.events.on("event", onEvent);
      this.events.on("closed", onClosed);
      const stop = onAbort(signal, (reason) => {
        cleanup();
        reject(reason);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private greetingWaiter: { resolve(): void; reject(e: Error): void } | undefined;

  private greeting(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const stop = onAbort(signal, reject);
      this.greetingWaiter = {
        resolve: () => {
          stop();
          resolve();
        },
        reject,
      };
    });
  }

  private onData(text: string): void {
    this.buffered += text;
    let nl: number;
    while ((nl = this.buffered.indexOf("\n")) !== -1) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line !== "") this.onMessage(JSON.parse(line) as Record<string, unknown>);
    }
  }

  private onMessage(message: Record<string, unknown>): void {
    if ("QMP" in message) {
      this.greetingWaiter?.resolve();
      this.greetingWaiter = undefined;
    } else if ("event" in message) {
      const event = message as unknown as QmpEvent;
      this.history.push(event);
      if (this.history.length > 1000) this.history.shift();
      this.unconsumed.push(event);
      if (this.unconsumed.length > 1000) this.unconsumed.shift();
      this.events.emit("event", event);
    } else if (typeof message.id === "string") {
      const waiter = this.waiting.get(message.id);
      if (waiter === undefined) return;
      this.waiting.delete(message.id);
      if ("error" in message) {
        const error = message.error as { class?: string; desc?: string };
        waiter.reject(new QmpError(waiter.command, error.class ?? "GenericError", error.desc ?? ""));
      } else {
        waiter.resolve(message.return);
      }
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    this.greetingWaiter?.reject(error);
    for (const w of this.waiting.values()) w.reject(error);
    this.waiting.clear();
    this.events.emit("closed", error);
  }
}
