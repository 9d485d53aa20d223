import type { Socket } from "node:net";
import { onAbort } from "../async/abort.js";
import { SerialQueue } from "../async/queue.js";

const PROMPT = "(qemu) ";

/**
 * QEMU's human monitor (HMP) on the socket QEMU connected to. Each command's
 * answer is everything up to the next `(qemu) ` prompt.
 */
export class Monitor {
  private text = "";
  private waiter: { resolve(text: string): void; reject(e: Error): void } | undefined;
  private readonly queue = new SerialQueue();
  private closedError: Error | undefined;
  private readonly ready: Promise<string>;

  constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => this.onData(text));
    socket.on("error", () => undefined);
    socket.on("close", () => this.fail(new Error("the monitor connection closed")));
    this.ready = this.nextPrompt();
    this.ready.catch(() => undefined);
  }

  /** Sends one HMP command and returns QEMU's answer (without the echo and the prompt). */
  send(command: string, signal?: AbortSignal): Promise<string> {
    return this.queue.run(async () => {
      await this.ready;
      if (this.closedError) throw this.closedError;
      const answer = this.nextPrompt(signal);
      this.socket.write(`${command}\n`);
      return clean(await answer, command);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private nextPrompt(signal?: AbortSignal): Promise<string> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<string>((resolve, reject) => {
      const stop = onAbort(signal, (reason) => {
        this.waiter = undefined;
        reject(reason);
      });
      this.waiter = {
        resolve: (t) => {
          stop();
          resolve(t);
        },
        reject: (e) => {
          stop();
          reject(e);
        },
      };
      this.check();
    });
  }

  private onData(text: string): void {
    this.text += text;
    this.check();
  }

  private check(): void {
    const at = this.text.indexOf(PROMPT);
    if (at === -1 || this.waiter === undefined) return;
    const answer = this.text.slice(0, at);
    this.text = this.text.slice(at + PROMPT.length);
    const w = this.waiter;
    this.waiter = undefined;
    w.resolve(answer);
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    this.waiter?.reject(error);
    this.waiter = undefined;
  }
}

/**
 * HMP echoes the command as typed, redrawing the line after each character
 * with terminal escapes; users want only QEMU's reply, after that line.
 */
function clean(answer: string, command: string): string {
  // eslint-disable-next-line no-control-regex
  const text = answer.replace(/\x1b\[[0-9;]*[A-Za-z]|\x1b[()][A-Z0-9]/g, "").replace(/\r/g, "");
  const lines = text.split("\n");
  if (lines.length > 1 && lines[0]?.trimEnd().endsWith(command.trim())) lines.shift();
  return lines.join("\n");
}
