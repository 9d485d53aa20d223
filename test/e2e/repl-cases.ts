// The interactive driver, driven through a real pseudo-terminal (node-pty),
// as a person at a terminal would drive it. Defined once, run on real guests
// (e2e/repl.test.ts) and on fake ones (unit/repl-fake.test.ts).
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as pty from "node-pty";
import { writeFakeStartScripts } from "../fake-guest/start-scripts.js";
import { buildGuest, writeStartScripts } from "../guests/start-scripts.js";
import { CLI, survivors } from "./harness.js";

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

class Session {
  private out = "";
  private mark = 0;
  readonly exited: Promise<number>;
  readonly term: pty.IPty;

  constructor(args: string[], cwd: string, env: Record<string, string>) {
    this.term = pty.spawn(process.execPath, [CLI, ...args], { cols: 220, rows: 50, cwd, env: { ...process.env, ...env } as Record<string, string> });
    this.term.onData((d) => (this.out += d));
    this.exited = new Promise((resolve) => this.term.onExit((e) => resolve(e.exitCode)));
  }

  get text(): string {
    return this.out.replace(ANSI, "");
  }

  /** Waits for `re` in what arrived since the last expect (so earlier output cannot satisfy it). */
  async expect(re: RegExp, seconds = 60): Promise<string> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const fresh = this.text.slice(this.mark);
      const m = re.exec(fresh);
      if (m !== null) {
        this.mark += m.index + m[0].length;
        return m[0];
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; the terminal shows:\n${this.text.replace(/^.* # .*\n/gm, "").slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The exit code, or a failure if the driver does not exit in time (a hang must fail the test, not block it). */
  async exit(seconds = 60): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the driver did not exit within ${seconds} s; the terminal shows:\n${this.text.slice(-2000)}`)),
        seconds * 1000,
      );
    });
    try {
      return await Promise.race([this.exited, limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  type(text: string): void {
    this.term.write(text);
  }

  qemuPids(): number[] {
    return [...this.text.matchAll(/QEMU running \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  }
}

/** The REPL's cases ("repl") and pause on failure's ("pause"), on `guest`. */
export function defineReplTests(guest: "tiny" | "fake", cases: ("repl" | "pause")[]): void {
  let dir: string;
  let script: string;
  let startScript: string;
  const sessions: Session[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "ntt-repl-"));
    if (guest === "fake") {
      startScript = (await writeFakeStartScripts(dir, ["machine"])).machine as string;
    } else {
      await buildGuest();
      startScript = (await writeStartScripts(dir, [{ name: "machine", vlans: [] }])).machine as string;
    }
    script = join(dir, "test.mjs");
    await writeFile(
      script,
      [
        'await subtest("first", async () => { await machine.succeed("touch /tmp/first"); });',
        'await machine.succeed("test -e /tmp/second");',
        'log("script-finished-" + (6 * 7));',
      ].join("\n"),
    );
  });

  // Even when a case failed midway: SIGTERM lets the driver stop its QEMU; what survives a
  // SIGKILL then (the process groups of the start scripts it printed) is ended here, by group.
  after(async () => {
    for (const s of sessions) s.term.kill("SIGTERM");
    // unref: a timer left pending after its session exited would hold this file's process for 10 s.
    await Promise.all(sessions.map((s) => Promise.race([s.exited, new Promise((r) => setTimeout(r, 10_000).unref())])));
    for (const s of sessions) {
      s.term.kill("SIGKILL");
      for (const group of s.qemuPids()) {
        if ((await survivors([group])).length === 0) continue;
        try {
          process.kill(-group, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    }
  });

  function start(extra: string[], scriptPath = script): Session {
    const s = new Session([...extra, "--start-scripts", startScript, "-o", join(dir, "out"), scriptPath], dir, {
      NIXOS_TEST_HISTORY: join(dir, "history"),
      NO_COLOR: "1",
    });
    sessions.push(s);
    return s;
  }

  if (cases.includes("repl"))
    test("the REPL: top-level await, TypeScript, completion, Ctrl-C, .shell, history, exit stops the VM", async () => {
      const s = start(["--interactive"]);
      await s.expect(/> $/m);
      s.type("const answer: number = 40 + 2; answer * 10\r");
      await s.expect(/\n420\r?\n/);
      s.type('await machine.succeed("echo vm-says-$((6*7))")\r');
      await s.expect(/'vm-says-42\\n'/, 90);
      s.type("machi\t");
      await s.expect(/machine/);
      s.type("\x15"); // clear the line
      s.type('await machine.succeed("sleep 600")\r');
      await s.expect(/must succeed: sleep 600/);
      const interrupted = Date.now();
      s.type("\x03");
      await s.expect(/interrupted/i, 20);
      assert.ok(Date.now() - interrupted < 10_000, "Ctrl-C ends the wait promptly");
      s.type('await machine.succeed("echo alive-$((1+1))")\r');
      await s.expect(/'alive-2\\n'/, 60);
      s.type(".shell machine\r");
      await s.expect(/machine:\/root# $/m);
      s.type("cd /tmp\r");
      await s.expect(/machine:\/tmp# $/m);
      s.type("pwd; false\r");
      await s.expect(/\/tmp\s+\[exit 1\]/);
      s.type("exit\r");
      s.type("runTests()\r");
      await s.expect(/CommandFailedError: machine: command `test -e \/tmp\/second` failed/, 60);
      s.type(".exit\r");
      assert.equal(await s.exit(), 0);
      assert.deepEqual(await survivors(s.qemuPids()), []);
      const history = await readFile(join(dir, "history"), "utf8");
      assert.match(history, /echo vm-says/);

      // History survives a restart: the previous session's last command comes back with "up".
      const again = start(["--interactive"]);
      await again.expect(/> $/m);
      // The prompt shows before Node's REPL has read the history file (setupHistory is asynchronous): give it a moment.
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Node's REPL writes its history 15 ms after a line, so whether the closing `.exit` made it depends on how
      // long stopping the machine took: up once or twice, `runTests()` comes back.
      again.type("\x1b[A\x1b[A");
      await again.expect(/runTests\(\)/);
      again.type("\x15.exit\r");
      assert.equal(await again.exit(), 0);
    });

  if (cases.includes("pause"))
    test("pause on failure: the failing step waits, the VM stays up, .retry after a fix finishes the test", async () => {
      const s = start(["--pause-on-failure"]);
      await s.expect(/paused on failure:[\s\S]*test -e \/tmp\/second/, 90);
      await s.expect(/> $/m);
      s.type('await machine.succeed("cat /proc/uptime >/dev/null; touch /tmp/second; echo fixed-$((2*3))")\r');
      await s.expect(/'fixed-6\\n'/);
      s.type(".retry\r");
      await s.expect(/script-finished-42/, 60);
      assert.equal(await s.exit(), 0);
      assert.deepEqual(await survivors(s.qemuPids()), []);
    });

  if (cases.includes("pause"))
    test("pause on failure: .continue goes on past the failed step", async () => {
      const s = start(["--pause-on-failure"]);
      await s.expect(/paused on failure/, 90);
      await s.expect(/> $/m);
      s.type(".continue\r");
      await s.expect(/resuming after the pause: continue/);
      await s.expect(/script-finished-42/, 60);
      assert.equal(await s.exit(), 0);
      assert.deepEqual(await survivors(s.qemuPids()), []);
    });

  if (cases.includes("pause"))
    test("pause on failure: an exception thrown in a subtest pauses there; .retry runs the subtest again", async () => {
      const thrower = join(dir, "subtest-throws.mjs");
      await writeFile(
        thrower,
        [
          'await subtest("flaky", async () => {',
          '  if ((await machine.execute("test -e /tmp/fixed")).exitCode !== 0) throw new Error("not fixed yet");',
          "});",
          'log("after-the-subtest");',
        ].join("\n"),
      );
      const s = start(["--pause-on-failure"], thrower);
      await s.expect(/paused on failure:[\s\S]*not fixed yet/, 90);
      await s.expect(/> $/m);
      s.type('await machine.succeed("touch /tmp/fixed; echo fixed-$((3*3))")\r');
      await s.expect(/'fixed-9\\n'/);
      s.type(".retry\r");
      await s.expect(/after-the-subtest/, 60);
      assert.equal(await s.exit(), 0);
      assert.deepEqual(await survivors(s.qemuPids()), []);
    });

  if (cases.includes("pause"))
    test("pause on failure: .abort fails the test", async () => {
      const s = start(["--pause-on-failure"]);
      await s.expect(/paused on failure/, 90);
      await s.expect(/> $/m);
      s.type(".abort\r");
      assert.equal(await s.exit(), 1);
      assert.match(s.text, /test failed/);
      assert.deepEqual(await survivors(s.qemuPids()), []);
    });
}
