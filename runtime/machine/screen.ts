import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, extname, isAbsolute, join } from "node:path";
import { sleep } from "../async/abort.js";
import { MachineError, TimeoutError, UsageError } from "../errors.js";
import { retry } from "../driver/polling.js";
import { keyForChar } from "./keys.js";
import type { Machine } from "./machine.js";
import { PROBE_TIMEOUT } from "./options.js";
import { readScreen } from "./ocr.js";
import type { WaitOptions } from "./options.js";

export interface KeyOptions {
  /** Seconds to wait after each key; default 0.01, as nixpkgs. */
  delay?: number;
}

/** The screen: screenshots, keys, OCR, X11 windows and virtual consoles. */
export class Screen {
  constructor(private readonly m: Machine) {}

  /**
   * Saves a PNG of the VGA screen (QMP `screendump`). A name without an
   * extension gets `.png`; a relative name lands in the output directory.
   * Returns the file's path.
   */
  async screenshot(name: string): Promise<string> {
    return this.m.api(async () => {
      const file = extname(name) === "" ? `${name}.png` : name;
      const path = isAbsolute(file) ? file : join(this.m.config.outDir, file);
      await mkdir(dirname(path), { recursive: true });
      // QEMU writes the file itself; a private temporary name, then a rename, so a reader never sees half a PNG.
      const dir = await mkdtemp(join(tmpdir(), "ntt-shot-"));
      try {
        const tmp = join(dir, "screen.png");
        await this.m.qmp.execute("screendump", { filename: tmp, format: "png" }, this.m.signal).catch((error: Error) => {
          throw new MachineError(this.m.name, `screendump failed (${error.message}); does the VM have a display device?`, { cause: error });
        });
        await rename(tmp, path).catch(async () => {
          const { copyFile } = await import("node:fs/promises");
          await copyFile(tmp, path);
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      this.m.log(`screenshot saved to ${path}`);
      return path;
    });
  }

  /** Types text key by key (a US keyboard); newlines press return. */
  async sendChars(text: string, options: KeyOptions = {}): Promise<void> {
    await this.m.api(() =>
      this.m.logger.nested(`sending keys ${JSON.stringify(text)}`, { machine: this.m.name }, async () => {
        for (const char of text) {
          const key = keyForChar(char);
          if (key === undefined) throw new UsageError(`${this.m.name}: sendChars cannot type ${JSON.stringify(char)}: a US keyboard has no key for it`);
          const answer = await this.m.sendMonitorCommand(`sendkey ${key}`);
          if (answer.trim() !== "") throw new UsageError(`${this.m.name}: sendkey ${key} failed: ${answer.trim()}`);
          await sleep((options.delay ?? 0.01) * 1000, this.m.signal);
        }
      }),
    );
  }

  /** The screen's text by OCR (tesseract) of one screenshot, without preprocessing. */
  async getScreenText(): Promise<string> {
    return this.m.api(async () => (await this.ocr(false))[0] ?? "");
  }

  /** OCR of the raw screenshot and of nixpkgs' two preprocessed variants (more robust, slower). */
  async getScreenTextVariants(): Promise<string[]> {
    return this.m.api(() => this.ocr(true));
  }

  /** Waits until OCR of the screen finds `pattern` (any variant). Default timeout 900 s. */
  async waitForText(pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    const regex = typeof pattern === "string" ? new RegExp(pattern) : pattern;
    await this.m.api(() =>
      this.m.logger.nested(`waiting for ${String(regex)} to appear on the screen`, { machine: this.m.name }, async () => {
        let last: string[] = [];
        try {
          await retry(
            async () => {
              // The raw screenshot reads in ~0.2 s, the preprocessed variants in ~4 s: try the cheap one first.
              last = await this.ocr(false);
              if (regex.test(last[0] ?? "")) return true;
              last = await this.ocr(true);
              return last.some((text) => regex.test(text));
            },
            { ...options, what: `waiting for ${String(regex)} on the screen`, machine: this.m.name },
          );
        } catch (error) {
          if (error instanceof TimeoutError) {
            throw new TimeoutError(error.what, error.timeout, this.m.name, `  the screen last read:\n${(last[0] ?? "").replace(/^/gm, "    ")}`);
          }
          throw error;
        }
      }),
    );
  }

  /** Text on virtual console `tty` (as nixpkgs: `/dev/vcs<tty>` folded to the console's width). */
  async getTtyText(tty: number | string): Promise<string> {
    const n = String(tty);
    return this.m.api(async () => {
      const r = await this.m.execute(`fold -w "$(stty -F /dev/tty${n} size | cut -d' ' -f2)" /dev/vcs${n}`, { timeout: PROBE_TIMEOUT });
      if (r.exitCode !== 0) throw new MachineError(this.m.name, `cannot read virtual console ${n} (exit code ${r.exitCode}): ${r.output}`);
      return r.output;
    });
  }

  /** Waits until the text of virtual console `tty` matches `pattern`. */
  async waitUntilTtyMatches(tty: number | string, pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    const regex = typeof pattern === "string" ? new RegExp(pattern, "m") : pattern;
    await this.m.api(() =>
      this.m.logger.nested(`waiting for ${String(regex)} on tty${tty}`, { machine: this.m.name }, () =>
        retry(async () => regex.test(await this.getTtyText(tty)), { ...options, what: `waiting for ${String(regex)} on tty${tty}`, machine: this.m.name }),
      ),
    );
  }

  /** Logs the text of virtual console `tty` into the journal (nixpkgs' dump_tty_contents). */
  async dumpTtyContents(tty: number | string): Promise<void> {
    await this.m.api(async () => {
      await this.m.mustSucceed(`fold -w 80 /dev/vcs${String(tty)} | systemd-cat`, { timeout: PROBE_TIMEOUT });
    });
  }

  /** Waits for the X server (graphical target reached and its socket present). */
  async waitForX(options: WaitOptions = {}): Promise<void> {
    await this.m.api(() =>
      this.m.logger.nested("waiting for the X11 server", { machine: this.m.name }, () =>
        retry(
          async () => {
            const r = await this.m.execute("journalctl -b SYSLOG_IDENTIFIER=systemd | grep -q 'Reached target Current graphical' && [ -e /tmp/.X11-unix/X0 ]", {
              timeout: PROBE_TIMEOUT,
            });
            return r.exitCode === 0;
          },
          { ...options, what: "waiting for the X11 server", machine: this.m.name },
        ),
      ),
    );
  }

  /** The titles of the X11 windows (`xwininfo -root -tree`). */
  async getWindowNames(): Promise<string[]> {
    return this.m.api(async () => {
      const r = await this.m.execute("xwininfo -root -tree", { timeout: PROBE_TIMEOUT });
      if (r.exitCode !== 0) throw new MachineError(this.m.name, `xwininfo failed (exit code ${r.exitCode}); is X running?`);
      return parseWindowNames(r.output);
    });
  }

  /** Waits until a window title matches `pattern`. */
  async waitForWindow(pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    const regex = typeof pattern === "string" ? new RegExp(pattern) : pattern;
    await this.m.api(() =>
      this.m.logger.nested(`waiting for a window matching ${String(regex)}`, { machine: this.m.name }, () =>
        retry(
          async (lastTry) => {
            const names = await this.getWindowNames();
            if (lastTry) this.m.log(`window names: ${names.join(", ")}`);
            return names.some((n) => regex.test(n));
          },
          { ...options, what: `waiting for a window matching ${String(regex)}`, machine: this.m.name },
        ),
      ),
    );
  }

  private async ocr(variants: boolean): Promise<string[]> {
    const dir = await mkdtemp(join(tmpdir(), "ntt-ocr-shot-"));
    try {
      const png = join(dir, "screen.png");
      await this.m.qmp.execute("screendump", { filename: png, format: "png" }, this.m.signal);
      return await readScreen(this.m.name, png, variants);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/**
 * Window titles from `xwininfo -root -tree` output: nixpkgs' sed
 * `s/.*0x[0-9a-f]* "\([^"]*\)".*\/\1/; t; d`, on the host (one guest
 * process less): the quoted name after the last window id of each line.
 */
export function parseWindowNames(xwininfo: string): string[] {
  const names: string[] = [];
  for (const line of xwininfo.split("\n")) {
    const m = /^.*0x[0-9a-f]* "([^"]*)".*$/.exec(line);
    if (m !== null) names.push(m[1] as string);
  }
  return names;
}
