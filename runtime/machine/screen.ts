import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, extname, isAbsolute, join } from "node:path";
import { sleep } from "../abort.js";
import { MachineError, TimeoutError, UsageError } from "../errors.js";
import { retry } from "../polling.js";
import { keyForChar } from "./keys.js";
import { NetworkMachine } from "./network.js";
import { readScreen } from "./ocr.js";
import type { WaitOptions } from "./options.js";

export interface KeyOptions {
  /** Seconds to wait after each key; default 0.01, as nixpkgs. */
  delay?: number;
}

/** The screen: screenshots, keys, OCR, X11 windows and virtual consoles. */
export class ScreenMachine extends NetworkMachine {
  /**
   * Saves a PNG of the VGA screen (QMP `screendump`). A name without an
   * extension gets `.png`; a relative name lands in the output directory.
   * Returns the file's path.
   */
  async screenshot(name: string): Promise<string> {
    return this.api(async () => {
      const file = extname(name) === "" ? `${name}.png` : name;
      const path = isAbsolute(file) ? file : join(this.config.outDir, file);
      await mkdir(dirname(path), { recursive: true });
      // QEMU writes the file itself; a private temporary name, then a rename, so a reader never sees half a PNG.
      const dir = await mkdtemp(join(tmpdir(), "ntt-shot-"));
      try {
        const tmp = join(dir, "screen.png");
        await this.qmp.execute("screendump", { filename: tmp, format: "png" }, this.signal).catch((error: Error) => {
          throw new MachineError(this.name, `screendump failed (${error.message}); does the VM have a display device?`, { cause: error });
        });
        await rename(tmp, path).catch(async () => {
          const { copyFile } = await import("node:fs/promises");
          await copyFile(tmp, path);
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      this.log(`screenshot saved to ${path}`);
      return path;
    });
  }

  /** Types text key by key (a US keyboard); newlines press return. */
  async sendChars(text: string, options: KeyOptions = {}): Promise<void> {
    await this.api(() =>
      this.logger.nested(`sending keys ${JSON.stringify(text)}`, { machine: this.name }, async () => {
        for (const char of text) {
          const key = keyForChar(char);
          if (key === undefined) throw new UsageError(`${this.name}: sendChars cannot type ${JSON.stringify(char)}: a US keyboard has no key for it`);
          const answer = await this.sendMonitorCommand(`sendkey ${key}`);
          if (answer.trim() !== "") throw new UsageError(`${this.name}: sendkey ${key} failed: ${answer.trim()}`);
          await sleep((options.delay ?? 0.01) * 1000, this.signal);
        }
      }),
    );
  }

  /** The screen's text by OCR (tesseract) of one screenshot, without preprocessing. */
  async getScreenText(): Promise<string> {
    return this.api(async () => (await this.ocr(false))[0] ?? "");
  }

  /** OCR of the raw screenshot and of nixpkgs' two preprocessed variants (more robust, slower). */
  async getScreenTextVariants(): Promise<string[]> {
    return this.api(() => this.ocr(true));
  }

  /** Waits until OCR of the screen finds `pattern` (any variant). Default timeout 900 s. */
  async waitForText(pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    const regex = typeof pattern === "string" ? new RegExp(pattern) : pattern;
    await this.api(() =>
      this.logger.nested(`waiting for ${String(regex)} to appear on the screen`, { machine: this.name }, async () => {
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
            { ...options, what: `waiting for ${String(regex)} on the screen`, machine: this.name },
          );
        } catch (error) {
          if (error instanceof TimeoutError) {
            throw new TimeoutError(error.what, error.timeout, this.name, `  the screen last read:\n${(last[0] ?? "").replace(/^/gm, "    ")}`);
          }
          throw error;
        }
      }),
    );
  }

  /** Text on virtual console `tty` (as nixpkgs: `/dev/vcs<tty>` folded to the console's width). */
  async getTtyText(tty: number | string): Promise<string> {
    const n = String(tty);
    return this.api(async () => {
      const r = await this.execute(`fold -w "$(stty -F /dev/tty${n} size | cut -d' ' -f2)" /dev/vcs${n}`, { timeout: 60 });
      if (r.exitCode !== 0) throw new MachineError(this.name, `cannot read virtual console ${n} (exit code ${r.exitCode}): ${r.output}`);
      return r.output;
    });
  }

  /** Waits until the text of virtual console `tty` matches `pattern`. */
  async waitUntilTtyMatches(tty: number | string, pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    const regex = typeof pattern === "string" ? new RegExp(pattern, "m") : pattern;
    await this.api(() =>
      this.logger.nested(`waiting for ${String(regex)} on tty${tty}`, { machine: this.name }, () =>
        retry(async () => regex.test(await this.getTtyText(tty)), { ...options, what: `waiting for ${String(regex)} on tty${tty}`, machine: this.name }),
      ),
    );
  }

  /** Logs the text of virtual console `tty` into the journal (nixpkgs' dump_tty_contents). */
  async dumpTtyContents(tty: number | string): Promise<void> {
    await this.api(async () => {
      await this.mustSucceed(`fold -w 80 /dev/vcs${String(tty)} | systemd-cat`, { timeout: 60 });
    });
  }

  /** Waits for the X server (graphical target reached and its socket present). */
  async waitForX(options: WaitOptions = {}): Promise<void> {
    await this.api(() =>
      this.logger.nested("waiting for the X11 server", { machine: this.name }, () =>
        retry(
          async () => {
            const r = await this.execute(
              "journalctl -b SYSLOG_IDENTIFIER=systemd | grep -q 'Reached target Current graphical' && [ -e /tmp/.X11-unix/X0 ]",
              { timeout: 60 },
            );
            return r.exitCode === 0;
          },
          { ...options, what: "waiting for the X11 server", machine: this.name },
        ),
      ),
    );
  }

  /** The titles of the X11 windows (`xwininfo -root -tree`). */
  async getWindowNames(): Promise<string[]> {
    return this.api(async () => {
      const r = await this.execute("xwininfo -root -tree", { timeout: 60 });
      if (r.exitCode !== 0) throw new MachineError(this.name, `xwininfo failed (exit code ${r.exitCode}); is X running?`);
      return parseWindowNames(r.output);
    });
  }

  /** Waits until a window title matches `pattern`. */
  async waitForWindow(pattern: string | RegExp, options: WaitOptions = {}): Promise<void> {
    const regex = typeof pattern === "string" ? new RegExp(pattern) : pattern;
    await this.api(() =>
      this.logger.nested(`waiting for a window matching ${String(regex)}`, { machine: this.name }, () =>
        retry(
          async (lastTry) => {
            const names = await this.getWindowNames();
            if (lastTry) this.log(`window names: ${names.join(", ")}`);
            return names.some((n) => regex.test(n));
          },
          { ...options, what: `waiting for a window matching ${String(regex)}`, machine: this.name },
        ),
      ),
    );
  }

  private async ocr(variants: boolean): Promise<string[]> {
    const dir = await mkdtemp(join(tmpdir(), "ntt-ocr-shot-"));
    try {
      const png = join(dir, "screen.png");
      await this.qmp.execute("screendump", { filename: png, format: "png" }, this.signal);
      return await readScreen(this.name, png, variants);
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
