// runtime/machine/framing.ts: the record parser on synthetic streams, then the
// real guest-side code (PREAMBLE + frameCommand) run by the host's bash, with
// the driver's flow control, and no VM.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { constants, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { PassThrough } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import {
  BLOCK,
  CANCEL,
  MARKER,
  PREAMBLE,
  RecordParser,
  flowWindow,
  frameCommand,
  resendLine,
  type DamagedRecord,
  type Poll,
  type ShellRecord,
} from "../../runtime/machine/framing.js";
import { shellQuote } from "../../lib/shell.js";
import { DataChannel } from "../../runtime/machine/data-channel.js";

// ---------------------------------------------------------------------------
// Synthetic streams

interface Seen {
  records: ShellRecord[];
  damaged: DamagedRecord[];
  junk: Buffer[];
  blockDone: number;
  /** blockDone's arguments: [index, blocks]. */
  blocks: Array<[number, number]>;
  /** Event names in order. */
  order: string[];
}

function collector(): { seen: Seen; parser: RecordParser } {
  const seen: Seen = { records: [], damaged: [], junk: [], blockDone: 0, blocks: [], order: [] };
  const parser = new RecordParser({
    dataNote: (n) => seen.order.push(`note ${n.id}`),
    record: (r) => {
      seen.records.push(r);
      seen.order.push(`record ${r.id}`);
    },
    damaged: (d) => {
      seen.damaged.push(d);
      seen.order.push(`damaged ${d.id}`);
    },
    junk: (b) => {
      seen.junk.push(Buffer.from(b)); // copy: the parser may hand out views of a chunk
      seen.order.push("junk");
    },
    blockDone: (index, blocks) => {
      seen.blockDone++;
      seen.blocks.push([index, blocks]);
      seen.order.push("blockDone");
    },
  });
  return { seen, parser };
}

/** A record as the guest's `__ntt_run` writes it. */
function record(id: number, status: number, output: Buffer, opts: { length?: number; body?: string; newline?: boolean } = {}): Buffer {
  const body = opts.body ?? output.toString("base64");
  const length = opts.length ?? body.length;
  return Buffer.concat([
    Buffer.from(`\x1eNTT ${id} ${status} ${length}\x1f`, "latin1"),
    Buffer.from(body, "latin1"),
    Buffer.from(opts.newline === false ? "" : "\n", "latin1"),
  ]);
}

/** A record as `__ntt_send` writes a small output without NUL bytes: as it is. */
function rawRecord(id: number, status: number, output: Buffer, opts: { length?: number; newline?: boolean } = {}): Buffer {
  return Buffer.concat([
    Buffer.from(`\x1eNTR ${id} ${status} ${opts.length ?? output.length}\x1f`, "latin1"),
    output,
    Buffer.from(opts.newline === false ? "" : "\n", "latin1"),
  ]);
}

function junkText(seen: Seen): string {
  return Buffer.concat(seen.junk).toString("latin1");
}

function feedAll(parser: RecordParser, stream: Buffer, cuts: number[]): void {
  let at = 0;
  for (const cut of [...cuts, stream.length]) {
    parser.feed(stream.subarray(at, cut));
    at = cut;
  }
}

/** mulberry32: a seeded PRNG, so that a failing chunking can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function expectedRecords(list: Array<[number, number, Buffer]>): ShellRecord[] {
  return list.map(([id, status, output]) => ({ id, exitCode: Math.abs(status), timedOut: status === -124, output }));
}

// The groups below are independent (each shell has a directory of its own) and the shell groups mostly wait on
// timeouts: they run side by side; the cases within a group, on one shell, run in order (concurrency 1, which
// a group would otherwise take from this one).
describe("the backdoor protocol", { concurrency: true }, () => {
  describe("RecordParser", { concurrency: 1 }, () => {
    const small: Array<[number, number, Buffer]> = [
      [1, 0, Buffer.alloc(0)],
      [2, 1, Buffer.from("hello\n")],
      [3, -124, ALL_BYTES],
      [4, 0, Buffer.from("a")],
    ];
    const smallStream = Buffer.concat([
      Buffer.from("boot noise\r\n"),
      ...small.map(([id, status, output]) => (id % 2 === 0 ? rawRecord(id, status, output) : record(id, status, output))),
      Buffer.from("trailing noise"),
    ]);

    test("a stream parsed whole gives every record, and the junk around them", () => {
      const { seen, parser } = collector();
      parser.feed(smallStream);
      assert.deepEqual(seen.records, expectedRecords(small));
      assert.deepEqual(seen.damaged, []);
      assert.equal(junkText(seen), "boot noise\r\ntrailing noise");
      assert.equal(parser.midRecord, false);
    });

    test("split in two at every possible byte boundary: identical records and junk", () => {
      for (let cut = 0; cut <= smallStream.length; cut++) {
        const { seen, parser } = collector();
        feedAll(parser, smallStream, [cut]);
        assert.deepEqual(seen.records, expectedRecords(small), `split at ${cut}`);
        assert.deepEqual(seen.damaged, [], `split at ${cut}`);
        assert.equal(junkText(seen), "boot noise\r\ntrailing noise", `split at ${cut}`);
      }
    });

    // Large enough to cross several BLOCK boundaries.
    const big: Array<[number, number, Buffer]> = [
      [10, 0, randomBytes(150_000)],
      [11, 3, Buffer.alloc(0)],
      [12, 0, Buffer.concat(Array.from({ length: 40 }, () => ALL_BYTES))],
      [13, -124, randomBytes(3 * 49_152)], // exactly 3 blocks of base64
    ];
    const bigStream = Buffer.concat([Buffer.from("junk before\n"), ...big.map(([id, s, o]) => record(id, s, o)), Buffer.from("junk after")]);

    test("fed one byte at a time: identical records", () => {
      const { seen, parser } = collector();
      for (let i = 0; i < bigStream.length; i++) parser.feed(bigStream.subarray(i, i + 1));
      assert.deepEqual(seen.records, expectedRecords(big));
      assert.deepEqual(seen.damaged, []);
      assert.equal(junkText(seen), "junk before\njunk after");
    });

    test("random chunkings (seeded): identical records", () => {
      for (let seed = 1; seed <= 40; seed++) {
        const random = prng(seed);
        const cuts: number[] = [];
        // Chunks from 1 byte to ~100 KB, so some straddle block and record boundaries.
        for (let at = 0; ;) {
          const size = 1 + Math.floor(random() ** 3 * 100_000);
          at += size;
          if (at >= bigStream.length) break;
          cuts.push(at);
        }
        const { seen, parser } = collector();
        feedAll(parser, bigStream, cuts);
        assert.deepEqual(seen.records, expectedRecords(big), `seed ${seed}`);
        assert.deepEqual(seen.damaged, [], `seed ${seed}`);
        assert.equal(junkText(seen), "junk before\njunk after", `seed ${seed}`);
      }
    });

    test("a raw record (NTR) carries any byte but NUL as it is: newlines, separators, \\x1e/\\x1f inside the body", () => {
      const { seen, parser } = collector();
      const output = Buffer.from([...ALL_BYTES.subarray(1), 0x0a, 0x1e, 0x1f, 0x0a]);
      const stream = Buffer.concat([rawRecord(6, 3, output), rawRecord(7, 0, Buffer.from("x\n"))]);
      for (let cut = 0; cut <= stream.length; cut++) {
        const { seen: s2, parser: p2 } = collector();
        feedAll(p2, stream, [cut]);
        assert.equal(s2.records.length, 2, `cut ${cut}`);
        assert.ok(s2.records[0]?.output.equals(output), `cut ${cut}`);
        assert.equal(s2.records[0]?.exitCode, 3);
        assert.equal(s2.records[1]?.output.toString(), "x\n");
        assert.equal(junkText(s2), "", `cut ${cut}`);
      }
      parser.feed(rawRecord(8, 0, Buffer.alloc(0)));
      assert.deepEqual(
        seen.records.map((r) => [r.id, r.output.length]),
        [[8, 0]],
      );
    });

    test("a raw record that lost bytes is damaged (its newline is not where the length says), not a short answer", () => {
      const { seen, parser } = collector();
      const full = rawRecord(9, 0, Buffer.from("0123456789"));
      // Three bytes lost in the middle; the next record's header follows.
      const lossy = Buffer.concat([full.subarray(0, 15), full.subarray(18), rawRecord(10, 0, Buffer.from("next"))]);
      parser.feed(lossy);
      assert.equal(seen.damaged[0]?.id, 9);
      assert.equal(seen.records.filter((r) => r.id === 9).length, 0);
    });

    test("a raw record cut short is reported by abandon() (the stall timer), with what arrived", () => {
      const { seen, parser } = collector();
      parser.feed(rawRecord(11, 0, Buffer.from("0123456789")).subarray(0, 20));
      assert.equal(parser.midRecord, true);
      parser.abandon("stalled");
      assert.deepEqual(
        seen.damaged.map((d) => [d.id, d.expected, d.why]),
        [[11, 10, "stalled"]],
      );
    });

    test("blockDone reports each block as it completes, also when several blocks arrive in one chunk (a window in flight)", () => {
      const { seen, parser } = collector();
      const length = 5 * BLOCK + 8;
      const output = randomBytes((length / 4) * 3);
      parser.feed(record(12, 0, output));
      assert.deepEqual(seen.blocks, [
        [0, 6],
        [1, 6],
        [2, 6],
        [3, 6],
        [4, 6],
      ]);
      assert.ok(seen.records[0]?.output.equals(output));
    });

    test("binary output (all 256 byte values) round-trips through the base64 framing", () => {
      const { seen, parser } = collector();
      const output = Buffer.concat([ALL_BYTES, Buffer.from(ALL_BYTES).reverse(), Buffer.from([0, 0, 0x1e, 0x1f, 0x0a, 0xff])]);
      parser.feed(record(5, 0, output));
      assert.equal(seen.records.length, 1);
      assert.ok(seen.records[0]?.output.equals(output));
    });

    test("junk before a record is reported as junk, the record still parses", () => {
      const { seen, parser } = collector();
      parser.feed(Buffer.concat([Buffer.from("[  1.234] some kernel line\n"), record(1, 0, Buffer.from("hi"))]));
      assert.equal(junkText(seen), "[  1.234] some kernel line\n");
      assert.deepEqual(seen.order, ["junk", "record 1"]);
      assert.equal(seen.records[0]?.output.toString(), "hi");
    });

    test("a header that is not ours is junk, not a record", () => {
      const { seen, parser } = collector();
      parser.feed(Buffer.from("\x1eHELLO 1 2 3\x1fabc\n", "latin1"));
      assert.deepEqual(seen.records, []);
      assert.deepEqual(seen.damaged, []);
      assert.match(junkText(seen), /HELLO 1 2 3/);
      assert.equal(parser.midRecord, false);
    });

    test("a stray \\x1e in junk does not swallow the record that follows in the same chunk", () => {
      // A guest process writing binary to /dev/hvc0 may emit 0x1e; the real header follows later.
      const { seen, parser } = collector();
      parser.feed(Buffer.concat([Buffer.from("noise \x1e more noise\n", "latin1"), record(1, 0, Buffer.from("hi"))]));
      assert.deepEqual(seen.records, expectedRecords([[1, 0, Buffer.from("hi")]]));
      assert.match(junkText(seen), /noise/);
    });

    test("a header longer than any real one is given up (junk), and the next record parses", () => {
      const { seen, parser } = collector();
      parser.feed(Buffer.from(`\x1e${"x".repeat(100)}`, "latin1"));
      assert.equal(parser.midRecord, false);
      parser.feed(record(2, 0, Buffer.from("ok")));
      assert.deepEqual(seen.records, expectedRecords([[2, 0, Buffer.from("ok")]]));
      assert.match(junkText(seen), /x{100}/);
    });

    test("a body shorter than announced, then the newline: damaged with expected and received", () => {
      const { seen, parser } = collector();
      const body = Buffer.from("hello world").toString("base64"); // 16 characters
      parser.feed(record(7, 0, Buffer.alloc(0), { body, length: 24 }));
      assert.deepEqual(seen.records, []);
      assert.deepEqual(seen.damaged, [{ id: 7, expected: 24, received: 16, why: "bytes were lost" }]);
      assert.equal(parser.midRecord, false);
      // The stream goes on: the next record is fine.
      parser.feed(record(8, 0, Buffer.from("next")));
      assert.deepEqual(seen.records, expectedRecords([[8, 0, Buffer.from("next")]]));
      assert.equal(junkText(seen), "");
    });

    test("a body of nothing where something was announced is damaged", () => {
      const { seen, parser } = collector();
      parser.feed(record(9, 0, Buffer.alloc(0), { body: "", length: 8 }));
      assert.deepEqual(seen.damaged, [{ id: 9, expected: 8, received: 0, why: "bytes were lost" }]);
      assert.deepEqual(seen.records, []);
    });

    test("a body longer than announced: the excess is not passed off as output, it is reported", () => {
      const { seen, parser } = collector();
      const body = Buffer.from("hi").toString("base64") + Buffer.from("xyz").toString("base64"); // 4 + 4
      parser.feed(record(3, 0, Buffer.alloc(0), { body, length: 4 }));
      // What the length covers is the record (the newline may be lost, so it cannot wait to see more) ...
      assert.deepEqual(seen.records, expectedRecords([[3, 0, Buffer.from("hi")]]));
      // ... and the rest does not vanish: it is reported outside the record.
      assert.equal(junkText(seen), `${Buffer.from("xyz").toString("base64")}\n`);
    });

    test("a body whose announced length is not whole base64 groups is damaged, not decoded", () => {
      const { seen, parser } = collector();
      parser.feed(record(4, 0, Buffer.alloc(0), { body: "aGk=aGk=", length: 6 }));
      assert.deepEqual(seen.records, []);
      assert.equal(seen.damaged.length, 1);
      assert.equal(seen.damaged[0]?.id, 4);
      assert.equal(seen.damaged[0]?.expected, 6);
    });

    test("a lost trailing newline: the record comes as soon as its length arrived; the late newline is not junk", () => {
      const { seen, parser } = collector();
      parser.feed(record(6, 0, Buffer.from("hi"), { newline: false }));
      assert.deepEqual(seen.records, expectedRecords([[6, 0, Buffer.from("hi")]]));
      assert.equal(parser.midRecord, false);
      parser.feed(Buffer.from("\n"));
      assert.deepEqual(seen.junk, []);
      // What follows is seen as usual.
      parser.feed(Buffer.from("later"));
      assert.equal(junkText(seen), "later");
    });

    test("a lost newline between two records: both parse, nothing is junk", () => {
      const { seen, parser } = collector();
      parser.feed(Buffer.concat([record(1, 0, Buffer.from("a"), { newline: false }), record(2, 0, Buffer.from("b"))]));
      assert.deepEqual(
        seen.records,
        expectedRecords([
          [1, 0, Buffer.from("a")],
          [2, 0, Buffer.from("b")],
        ]),
      );
      assert.deepEqual(seen.junk, []);
    });

    test("a lost trailing newline after an empty output: the record still comes at once", () => {
      // `true` answers "\x1eNTT <id> 0 0\x1f\n"; the announced length (0) has arrived with the header.
      const { seen, parser } = collector();
      parser.feed(record(12, 0, Buffer.alloc(0), { newline: false }));
      assert.deepEqual(seen.records, expectedRecords([[12, 0, Buffer.alloc(0)]]));
      assert.equal(parser.midRecord, false);
    });

    test("exit status -130 (the host cancelled the command) is exit code 130, not a timeout", () => {
      const { seen, parser } = collector();
      parser.feed(record(1, -130, Buffer.alloc(0)));
      assert.deepEqual(
        seen.records.map((r) => [r.id, r.exitCode, r.timedOut]),
        [[1, 130, false]],
      );
    });

    test("exit status -124 means the guest-side timeout: timedOut, exit code 124", () => {
      const { seen, parser } = collector();
      parser.feed(
        Buffer.concat([record(1, -124, Buffer.alloc(0)), record(2, 124, Buffer.alloc(0)), record(3, 0, Buffer.alloc(0)), record(4, 255, Buffer.alloc(0))]),
      );
      assert.deepEqual(
        seen.records.map((r) => [r.id, r.exitCode, r.timedOut]),
        [
          [1, 124, true],
          [2, 124, false],
          [3, 0, false],
          [4, 255, false],
        ],
      );
    });

    test("blockDone fires once per completed block but the last (3 blocks + a bit, fed block by block)", () => {
      const { seen, parser } = collector();
      const length = 3 * BLOCK + 100; // base64 characters
      const output = randomBytes((length / 4) * 3);
      const full = record(1, 0, output);
      const headerLength = full.indexOf(0x1f) + 1;
      parser.feed(full.subarray(0, headerLength));
      assert.equal(parser.midRecord, true);
      const counts: number[] = [];
      for (let i = 0; i < 3; i++) {
        parser.feed(full.subarray(headerLength + i * BLOCK, headerLength + (i + 1) * BLOCK));
        counts.push(seen.blockDone);
        assert.deepEqual(parser.progress, { id: 1, expected: length, received: (i + 1) * BLOCK });
      }
      assert.deepEqual(counts, [1, 2, 3]);
      parser.feed(full.subarray(headerLength + 3 * BLOCK));
      assert.equal(seen.blockDone, 3);
      assert.equal(seen.records.length, 1);
      assert.ok(seen.records[0]?.output.equals(output));
      assert.deepEqual(seen.order, ["blockDone", "blockDone", "blockDone", "record 1"]);
    });

    test("blockDone: an output of exactly 2 blocks asks for one go-ahead (none after the last block)", () => {
      for (const chunking of ["whole blocks", "one byte at a time"] as const) {
        const { seen, parser } = collector();
        const output = randomBytes(((2 * BLOCK) / 4) * 3);
        const full = record(2, 0, output, { newline: false });
        const headerLength = full.indexOf(0x1f) + 1;
        if (chunking === "whole blocks") {
          feedAll(parser, full, [headerLength + BLOCK]);
        } else {
          for (let i = 0; i < full.length; i++) parser.feed(full.subarray(i, i + 1));
        }
        assert.equal(seen.blockDone, 1, chunking);
        assert.equal(seen.records.length, 1, chunking);
        assert.ok(seen.records[0]?.output.equals(output), chunking);
      }
    });

    test("blockDone is not asked for small outputs", () => {
      const { seen, parser } = collector();
      for (let i = 0; i < 5; i++) parser.feed(record(i + 1, 0, randomBytes(1000)));
      assert.equal(seen.blockDone, 0);
      assert.equal(seen.records.length, 5);
    });

    test("abandon() mid-body reports the damage with what arrived; the parser starts afresh", () => {
      const { seen, parser } = collector();
      const full = record(5, 0, randomBytes(3000)); // 4000 characters
      parser.feed(full.subarray(0, full.indexOf(0x1f) + 1 + 1000));
      assert.equal(parser.midRecord, true);
      parser.abandon("no more data for 10 s");
      assert.deepEqual(seen.damaged, [{ id: 5, expected: 4000, received: 1000, why: "no more data for 10 s" }]);
      assert.equal(parser.midRecord, false);
      parser.feed(record(6, 0, Buffer.from("fresh")));
      assert.deepEqual(seen.records, expectedRecords([[6, 0, Buffer.from("fresh")]]));
    });

    test("abandon() inside a header reports damage of an unknown id (0); outside a record it reports nothing", () => {
      const { seen, parser } = collector();
      parser.abandon("idle");
      assert.deepEqual(seen.damaged, []);
      parser.feed(Buffer.from("\x1eNTT 4 0", "latin1"));
      parser.abandon("closed");
      const damaged: DamagedRecord[] = seen.damaged;
      assert.deepEqual(
        damaged.map((d) => [d.id, d.why]),
        [[0, "closed"]],
      );
    });
  });

  describe("frameCommand and shellQuote", { concurrency: 1 }, () => {
    test("shellQuote wraps in single quotes and escapes single quotes", () => {
      assert.equal(shellQuote(""), "''");
      assert.equal(shellQuote("echo hi"), "'echo hi'");
      assert.equal(shellQuote("it's"), `'it'\\''s'`);
      assert.equal(shellQuote("a\nb"), "'a\nb'");
    });

    test("shellQuote survives bash: tricky strings come back unchanged", () => {
      const tricky = ["", "it's", "''", "a\nb\n", '$HOME `id` $(id) \\ " ! * ?', "tab\there", "ü €", "-n", "'\n'"];
      for (const s of tricky) {
        const r = spawnSync("bash", ["--norc", "-c", `printf %s ${shellQuote(s)}`], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, s, JSON.stringify(s));
      }
    });

    test("frameCommand: one line, id, timeout in whole seconds (0: none), flow control flag, quoted command", () => {
      assert.equal(frameCommand(7, "echo hi", 0, 4), "__ntt_run 7 0 4 'echo hi'\n");
      assert.equal(frameCommand(8, "echo hi", 900, 4), "__ntt_run 8 900 4 'echo hi'\n");
      assert.equal(frameCommand(9, "echo hi", 2.5, 1), "__ntt_run 9 3 1 'echo hi'\n");
      // A fraction of a second does not become 0 (which would mean no limit).
      assert.equal(frameCommand(10, "echo hi", 0.2, 1), "__ntt_run 10 1 1 'echo hi'\n");
      assert.equal(frameCommand(11, "echo hi", 5, 0), "__ntt_run 11 5 0 'echo hi'\n");
      assert.equal(frameCommand(12, "echo 'a'\necho b", 0, 4), `__ntt_run 12 0 4 'echo '\\''a'\\''\necho b'\n`);
      assert.throws(() => frameCommand(13, "true", 0, 1.5), RangeError);
    });

    test("frameCommand rejects NUL", () => {
      assert.throws(() => frameCommand(1, "echo a\0b", 0, 4), RangeError);
    });

    test("MARKER is nixpkgs' backdoor announcement", () => {
      assert.equal(MARKER, "Spawning backdoor root shell...");
    });
  });

  // ---------------------------------------------------------------------------
  // The guest-side code, run by the host's bash

  const tmp = mkdtempSync(join(tmpdir(), "ntt-framing-test-"));
  const shells = new Set<HostShell>();
  // Registered before any shell starts: whatever fails, every shell (and what it left behind) is ended.
  after(() => {
    for (const s of shells) s.kill();
    rmSync(tmp, { recursive: true, force: true });
  });
  process.on("exit", () => {
    for (const s of shells) s.kill();
  });

  /**
   * PREAMBLE with its fixed /tmp and /dev/shm files moved into a directory of
   * this test run (two runs of the suite at once, or the host's own /tmp, must
   * not share them); nothing else changes.
   */
  function preambleIn(dir: string): string {
    assert.match(PREAMBLE, /\/tmp\/\.ntt-/);
    const text = PREAMBLE.replaceAll("/dev/shm/.ntt-", `${dir}/shm-`).replaceAll("/tmp/.ntt-", `${dir}/tmp-`);
    assert.doesNotMatch(text, /\/tmp\/\.ntt|\/dev\/shm\/\.ntt/);
    return text;
  }

  /**
   * Command ids of this run start at a random base: the guest-side code kills
   * every process tagged with a timed-out command's id, host-wide here, so ids
   * must not collide with another run of this suite on the same host.
   */
  /** The window BackdoorShell uses with Linux' default socket buffer. */
  const WINDOW = flowWindow(212992);

  let nextId = 1_000_000 + Math.floor(Math.random() * 1_000_000_000);

  interface Answer {
    record: ShellRecord;
    blockDones: number;
    ms: number;
  }

  interface ProcInfo {
    pid: number;
    ppid: number;
    pgid: number;
    state: string;
    cmdline: string;
  }

  function processes(): ProcInfo[] {
    const out: ProcInfo[] = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "latin1");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const cmdline = readFileSync(`/proc/${name}/cmdline`, "latin1").replace(/\0/g, " ").trim();
        out.push({ pid: Number(name), state: fields[0] ?? "", ppid: Number(fields[1]), pgid: Number(fields[2]), cmdline });
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** Living descendants of `pid` (by parent links). */
  function descendants(pid: number, all = processes()): ProcInfo[] {
    const found: ProcInfo[] = [];
    const parents = new Set([pid]);
    for (let grew = true; grew;) {
      grew = false;
      for (const p of all) {
        if (!parents.has(p.pid) && parents.has(p.ppid)) {
          parents.add(p.pid);
          found.push(p);
          grew = true;
        }
      }
    }
    return found.filter((p) => p.state !== "Z");
  }

  /**
   * The driver's end of the protocol over bash's pipes: one `bash --norc` in a
   * process group of its own, so that whatever it leaves behind, even
   * reparented to init, can be found (and ended) by that group's id.
   */
  class HostShell {
    readonly child: ChildProcessWithoutNullStreams;
    readonly pid: number;
    stderr = "";
    readonly junk: Buffer[] = [];
    /** Records nobody waited for. */
    readonly unclaimed: ShellRecord[] = [];
    private readonly parser: RecordParser;
    private waiting: { id: number; resolve(r: ShellRecord): void; reject(e: Error): void } | undefined;
    private flowControl = true;
    private blockDones = 0;
    /** Bytes to drop from the next large chunk (once). */
    loseBytes = 0;
    /** The running command's answer was asked for again. */
    resent = false;
    /** Answers that came through the data port. */
    dataAnswers = 0;

    /** With `data`, large answers go to a FIFO read by the driver's DataChannel, as to the VM's virtserialport. */
    constructor(
      readonly dir: string,
      readonly data?: { path: string; channel: DataChannel },
    ) {
      const preamble = preambleIn(dir) + (data === undefined ? "" : `__ntt_dd=${shellQuote(data.path)}\n`);
      this.child = spawn("bash", ["--norc"], {
        cwd: dir,
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, LC_ALL: "C" },
      });
      shells.add(this);
      assert.ok(this.child.pid !== undefined && this.child.pid > 0, "bash did not start");
      this.pid = this.child.pid;
      this.parser = new RecordParser({
        record: (r) => {
          this.data?.channel.discard();
          const w = this.waiting;
          if (w === undefined || w.id !== r.id) {
            this.unclaimed.push(r);
            return;
          }
          this.waiting = undefined;
          w.resolve(r);
        },
        dataNote: (n) => {
          // Exactly what BackdoorShell does: the status from the console, the bytes from the port.
          this.dataAnswers++;
          void this.data?.channel.take(n.id, n.length).then((output) => {
            const w = this.waiting;
            if (w === undefined || w.id !== n.id) return;
            this.waiting = undefined;
            w.resolve({ id: n.id, exitCode: n.exitCode, timedOut: n.timedOut, output });
          });
        },
        damaged: (d) => {
          // Exactly what BackdoorShell does: a streamed answer that lost bytes is asked for again, once.
          if (d.streamed === true && this.flowControl && this.waiting?.id === d.id && !this.resent) {
            this.resent = true;
            this.child.stdin.write(resendLine(d.id, WINDOW));
            return;
          }
          const w = this.waiting;
          this.waiting = undefined;
          w?.reject(new Error(`damaged record: ${JSON.stringify(d)}`));
        },
        junk: (b) => this.junk.push(Buffer.from(b)),
        blockDone: (index, blocks) => {
          this.blockDones++;
          // Exactly what BackdoorShell does over the socket.
          if (this.flowControl && index < blocks - WINDOW) this.child.stdin.write("\n");
        },
      });
      this.child.stdout.on("data", (chunk: Buffer) => {
        // Simulates the virtconsole dropping bytes a slow reader did not take.
        if (this.loseBytes > 0 && chunk.length > 2000) {
          chunk = Buffer.concat([chunk.subarray(0, 1000), chunk.subarray(1000 + this.loseBytes)]);
          this.loseBytes = 0;
        }
        this.parser.feed(chunk);
      });
      this.child.stderr.on("data", (chunk: Buffer) => (this.stderr += chunk.toString("utf8")));
      this.child.stdin.on("error", () => undefined);
      this.child.stdin.write(preamble);
    }

    /** Sends `frameCommand(...)` and waits for its record (at most `hostMs`). */
    async run(
      id: number,
      command: string,
      timeout: number,
      opts: { flowControl?: boolean; hostMs?: number; onSent?: () => void; poll?: Poll } = {},
    ): Promise<Answer> {
      assert.equal(this.waiting, undefined, "a command is still running");
      this.flowControl = opts.flowControl ?? true;
      this.blockDones = 0;
      this.resent = false;
      const began = performance.now();
      const answer = new Promise<ShellRecord>((resolve, reject) => {
        this.waiting = { id, resolve, reject };
      });
      this.child.stdin.write(frameCommand(id, command, timeout, this.flowControl ? WINDOW : 0, opts.poll));
      opts.onSent?.();
      const hostMs = opts.hostMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(command)} within ${hostMs} ms; bash's stderr: ${this.stderr}`)), hostMs);
      });
      try {
        const record = await Promise.race([answer, limit]);
        return { record, blockDones: this.blockDones, ms: performance.now() - began };
      } finally {
        clearTimeout(timer);
        this.waiting = undefined;
      }
    }

    /** Every living process of this shell's group but the shell itself (orphans keep the group). */
    leftovers(): ProcInfo[] {
      return processes().filter((p) => p.pgid === this.pid && p.pid !== this.pid && p.state !== "Z");
    }

    /** Ends the shell and everything it started (by this group's id only). */
    kill(): void {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }

  /** Polls `fn` until it returns true or `ms` passed. */
  async function eventually(fn: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    for (;;) {
      if (fn()) return true;
      if (Date.now() > end) return false;
      await delay(25);
    }
  }

  describe("the guest-side shell code, run by the host's bash", { concurrency: 1 }, () => {
    const dir = mkdtempSync(join(tmp, "shell-"));
    const shell = new HostShell(dir);
    const run = (command: string, timeout: number, opts?: { flowControl?: boolean; hostMs?: number; onSent?: () => void; poll?: Poll }) =>
      shell.run(nextId++, command, timeout, opts);
    const sleepsOf = (s: HostShell): ProcInfo[] => [...s.leftovers(), ...descendants(s.pid)].filter((p) => /^sleep\b/.test(p.cmdline));

    // 0: no guest-side timeout; 30: a timeout, as every driver command has by default.
    for (const timeout of [0, 30]) {
      describe(`with timeout ${timeout}`, { concurrency: 1 }, () => {
        test("echo hello: exit 0, its output", async () => {
          const { record } = await run("echo hello", timeout);
          assert.deepEqual(record, { id: record.id, exitCode: 0, timedOut: false, output: Buffer.from("hello\n") });
        });

        test("set -e: `false; echo x` exits 1 without output", async () => {
          const { record } = await run("false; echo x", timeout);
          assert.deepEqual([record.exitCode, record.timedOut, record.output.length], [1, false, 0]);
        });

        test("set -u and pipefail are on too", async () => {
          assert.equal((await run("echo $ntt_undefined_variable", timeout)).record.exitCode, 1);
          assert.equal((await run("false | true", timeout)).record.exitCode, 1);
        });

        test("exit 7 gives 7, and the shell survives it", async () => {
          const { record } = await run("exit 7", timeout);
          assert.deepEqual([record.exitCode, record.timedOut], [7, false]);
          assert.equal((await run("echo still here", timeout)).record.output.toString(), "still here\n");
        });

        test("binary output: printf '\\000\\377' gives exactly those two bytes", async () => {
          const { record } = await run("printf '\\000\\377'", timeout);
          assert.deepEqual([...record.output], [0, 255]);
        });

        test("all 256 byte values come back as they are", async () => {
          writeFileSync(join(dir, "bytes"), ALL_BYTES);
          const { record } = await run(`cat ${shellQuote(join(dir, "bytes"))}`, timeout);
          assert.ok(record.output.equals(ALL_BYTES));
        });

        test("stderr does not go into the output", async () => {
          const { record } = await run(`echo out; echo to-stderr-${timeout} >&2`, timeout);
          assert.equal(record.output.toString(), "out\n");
          assert.ok(await eventually(() => shell.stderr.includes(`to-stderr-${timeout}`), 1000));
        });

        test("cat reads /dev/null: it returns at once, and the next command runs", async () => {
          // On the shell's stdin (the console) cat would wait for input forever.
          const { record: cat, ms } = await run("cat", timeout, { hostMs: 5000 });
          assert.deepEqual([cat.exitCode, cat.timedOut, cat.output.length], [0, false, 0]);
          assert.ok(ms < 2000, `${ms} ms`);
          const { record: echo } = await run("echo after cat", timeout);
          assert.equal(echo.output.toString(), "after cat\n");
        });

        test("a multi-line command", async () => {
          const { record } = await run('for i in 1 2 3; do\n  echo "line $i"\ndone\nif true; then\n  echo end\nfi', timeout);
          assert.equal(record.exitCode, 0);
          assert.equal(record.output.toString(), "line 1\nline 2\nline 3\nend\n");
        });

        test("a command with single quotes (and other shell syntax)", async () => {
          const { record } = await run(`printf '%s|' 'it'"'"'s' "a  b" '$HOME' "\\$x"; echo`, timeout);
          assert.equal(record.output.toString(), "it's|a  b|$HOME|$x|\n");
        });
      });
    }

    test("a 1 MB output streams in one go (base64 itself writes it), complete", async () => {
      const file = join(dir, "random-fc");
      const { record, blockDones } = await run(`head -c 1000000 /dev/urandom | tee ${shellQuote(file)}`, 30);
      assert.equal(record.exitCode, 0);
      assert.equal(record.output.length, 1_000_000);
      assert.equal(blockDones, 0);
      assert.equal(shell.resent, false);
      const { record: sum } = await run(`sha256sum ${shellQuote(file)}`, 30);
      assert.equal(sum.output.toString().split(" ")[0], createHash("sha256").update(record.output).digest("hex"));
    });

    test("bytes lost from a streamed answer: the host asks again, the guest resends in blocks with flow control (82 blocks, a window of 3)", async () => {
      const file = join(dir, "random-resend");
      shell.loseBytes = 5000;
      const { record, blockDones } = await run(`head -c 1000000 /dev/urandom | tee ${shellQuote(file)}; exit 3`, 30);
      assert.equal(shell.resent, true);
      assert.deepEqual([record.exitCode, record.output.length], [3, 1_000_000]);
      const base64Length = Math.ceil(1_000_000 / 3) * 4;
      assert.equal(Math.ceil(base64Length / BLOCK), 82);
      assert.equal(WINDOW, 3);
      assert.equal(blockDones, 81);
      const { record: sum } = await run(`sha256sum ${shellQuote(file)}`, 30);
      assert.equal(sum.output.toString().split(" ")[0], createHash("sha256").update(record.output).digest("hex"));
    });

    test("without flow control a 1 MB output also arrives complete when the reader is fast", async () => {
      const file = join(dir, "random-nofc");
      const { record } = await run(`head -c 1000000 /dev/urandom | tee ${shellQuote(file)}`, 30, { flowControl: false });
      assert.equal(record.exitCode, 0);
      assert.equal(record.output.length, 1_000_000);
      const { record: sum } = await run(`sha256sum ${shellQuote(file)}`, 30);
      assert.equal(sum.output.toString().split(" ")[0], createHash("sha256").update(record.output).digest("hex"));
    });

    test("outputs around the block size: raw below it, base64 from it on, every byte intact", async () => {
      for (const size of [BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK]) {
        const { record } = await run(`head -c ${size} /dev/zero | tr '\\0' x`, 30);
        assert.deepEqual([record.exitCode, record.output.length], [0, size], `size ${size}`);
        assert.ok(
          record.output.every((b) => b === 0x78),
          `size ${size}`,
        );
      }
    });

    test("a background job holding stdout: the answer waits for it, as with nixpkgs' pipe; its output is in the answer", async () => {
      const { record, ms } = await run("(sleep 0.5; echo late) & echo now", 30);
      assert.equal(record.output.toString(), "now\nlate\n");
      assert.ok(ms >= 450, `${ms} ms`);
      const { record: quick, ms: quickMs } = await run("(sleep 5 >/dev/null &) ; echo quick", 30);
      assert.equal(quick.output.toString(), "quick\n");
      assert.ok(quickMs < 3000, `a job not holding stdout does not delay the answer (${quickMs} ms)`);
    });

    test("a job holding stdout until the timeout: killed, exit 124, and the shell goes on", async () => {
      const { record, ms } = await run("sleep 30 & echo started", 1, { hostMs: 8000 });
      assert.deepEqual([record.exitCode, record.timedOut], [124, true]);
      assert.ok(ms < 4000, `${ms} ms`);
      const { record: next } = await run("echo next", 30);
      assert.equal(next.output.toString(), "next\n");
    });

    test("poll until success: one exchange; the answer comes within a pause (40 ms) of the condition holding", async () => {
      const flag = join(dir, "poll-flag");
      const began = performance.now();
      let created = 0;
      setTimeout(() => {
        writeFileSync(flag, "");
        created = performance.now();
      }, 400);
      const { record } = await run(`test -e ${shellQuote(flag)} && echo there`, 30, { poll: { until: "success", durationMs: 10_000 } });
      const returned = performance.now();
      assert.deepEqual([record.exitCode, record.output.toString()], [0, "there\n"]);
      assert.ok(returned - began >= 400, `${returned - began} ms`);
      // Generous: the host may be loaded; without the guest loop this would be a fixed 1 s nowhere near.
      assert.ok(returned - created < 400, `${returned - created} ms after the file appeared`);
    });

    test("poll until failure; and a poll that never holds ends after its duration with the last try's answer", async () => {
      const { record } = await run("echo try; false", 30, { poll: { until: "failure", durationMs: 5000 } });
      assert.deepEqual([record.exitCode, record.output.toString()], [1, "try\n"]);
      const { record: never, ms } = await run("echo still; exit 3", 30, { poll: { until: "success", durationMs: 300 } });
      assert.deepEqual([never.exitCode, never.timedOut, never.output.toString()], [3, false, "still\n"]);
      assert.ok(ms >= 290 && ms < 3000, `${ms} ms`);
      const { record: once } = await run("exit 4", 30, { poll: { until: "success", durationMs: 0 } });
      assert.equal(once.exitCode, 4);
    });

    test("CANCEL ends a poll without limit: exit 130, and the shell serves the next command", async () => {
      const { record, ms } = await run("test -e /nonexistent-ntt", 0, {
        hostMs: 8000,
        poll: { until: "success", durationMs: null },
        onSent: () => setTimeout(() => shell.child.stdin.write(CANCEL), 300),
      });
      assert.deepEqual([record.exitCode, record.timedOut], [130, false]);
      assert.ok(ms < 3000, `${ms} ms`);
      const { record: next } = await run("echo alive", 30);
      assert.equal(next.output.toString(), "alive\n");
    });

    test("the poll's timeout kills a try that hangs: exit 124, timed out", async () => {
      const { record, ms } = await run("sleep 20", 1, { hostMs: 8000, poll: { until: "success", durationMs: 10_000 } });
      assert.deepEqual([record.exitCode, record.timedOut], [124, true]);
      assert.ok(ms < 4000, `${ms} ms`);
    });

    test("a command that finishes in time leaves no watchdog or other process behind", async () => {
      const { record } = await run("echo done", 30);
      assert.equal(record.timedOut, false);
      assert.ok(await eventually(() => shell.leftovers().length === 0, 2000), JSON.stringify(shell.leftovers()));
    });

    test("timeout 1 on `sleep 30 & sleep 20; echo no`: timed out, exit 124, within ~3 s, its whole tree gone", async () => {
      const { record, ms } = await run("sleep 30 & sleep 20; echo no", 1, { hostMs: 8000 });
      assert.deepEqual([record.exitCode, record.timedOut, record.output.toString()], [124, true, ""]);
      assert.ok(ms >= 900 && ms < 3000, `${ms} ms`);
      assert.ok(await eventually(() => sleepsOf(shell).length === 0, 1000), `left behind: ${JSON.stringify(sleepsOf(shell))}`);
      // The shell goes on serving.
      const { record: next } = await run("echo alive", 30);
      assert.deepEqual([next.exitCode, next.timedOut, next.output.toString()], [0, false, "alive\n"]);
    });

    test("CANCEL right behind the command (before its subshell started) still ends it: 20 times, each exit 130 at once", async () => {
      // A Ctrl-C within milliseconds on a loaded guest: the watchdog may fire before
      // the command's subshell recorded its pid, so the subshell must see the cancellation itself.
      for (let i = 0; i < 20; i++) {
        const { record, ms } = await run("sleep 20", 0, { hostMs: 5000, onSent: () => shell.child.stdin.write(CANCEL) });
        assert.deepEqual([record.exitCode, record.timedOut], [130, false], `try ${i}`);
        assert.ok(ms < 3000, `try ${i}: ${ms} ms`);
      }
      assert.ok(await eventually(() => sleepsOf(shell).length === 0, 2000), `left behind: ${JSON.stringify(sleepsOf(shell))}`);
    });

    test("CANCEL from the host ends a command without timeout: exit 130, not a timeout, its tree gone", async () => {
      const { record, ms } = await run("sleep 30 & sleep 20; echo no", 0, {
        hostMs: 8000,
        onSent: () => setTimeout(() => shell.child.stdin.write(CANCEL), 300),
      });
      assert.deepEqual([record.exitCode, record.timedOut, record.output.toString()], [130, false, ""]);
      assert.ok(ms < 3000, `${ms} ms`);
      assert.ok(await eventually(() => sleepsOf(shell).length === 0, 1000), `left behind: ${JSON.stringify(sleepsOf(shell))}`);
      const { record: next } = await run("echo alive", 30);
      assert.deepEqual([next.exitCode, next.timedOut, next.output.toString()], [0, false, "alive\n"]);
    });

    test("nothing but answers reached bash's stdout, and every answer was claimed", () => {
      assert.equal(Buffer.concat(shell.junk).toString("latin1"), "");
      assert.deepEqual(shell.unclaimed, []);
    });
  });

  /**
   * A FIFO standing in for the virtserialport, read by the driver's
   * DataChannel. Unlike a QEMU's socket it cannot lose bytes either: a
   * paused reader blocks the writer, as QEMU's throttling blocks the guest.
   * Our own write end stays open, so a transfer's end is no end of file.
   */
  function dataFifo(dir: string, readDelayMs?: number): { path: string; channel: DataChannel } {
    const path = join(dir, "data-port");
    assert.equal(spawnSync("mkfifo", [path]).status, 0);
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    const channel = new DataChannel(new Socket({ fd, readable: true, writable: false }), readDelayMs === undefined ? {} : { readDelayMs });
    after(() => channel.destroy());
    return { path, channel };
  }

  describe("the data port, run by the host's bash", { concurrency: 1 }, () => {
    const dir = mkdtempSync(join(tmp, "data-"));
    const shell = new HostShell(dir, dataFifo(dir));
    const run = (command: string, timeout: number) => shell.run(nextId++, command, timeout);
    const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

    test("a 2 MB output comes through the port, as it is (no base64), complete; the console carries only the note", async () => {
      const file = join(dir, "random");
      const before = shell.dataAnswers;
      const { record, blockDones } = await run(`head -c 2000000 /dev/urandom | tee ${shellQuote(file)}; exit 4`, 30);
      assert.deepEqual([record.exitCode, record.output.length, blockDones, shell.dataAnswers - before], [4, 2_000_000, 0, 1]);
      const { record: sum } = await run(`sha256sum ${shellQuote(file)}`, 30);
      assert.equal(sum.output.toString().split(" ")[0], sha(record.output));
    });

    test("a small text output stays on the console (raw); a small binary one takes the port", async () => {
      const before = shell.dataAnswers;
      const text = await run("echo small", 30);
      assert.deepEqual([text.record.output.toString(), shell.dataAnswers - before], ["small\n", 0]);
      const binary = await run("printf 'a\\000b'", 30);
      assert.deepEqual([[...binary.record.output], shell.dataAnswers - before], [[0x61, 0, 0x62], 1]);
    });

    test("the guest-side timeout still applies; the port then carries the killed command's partial output", async () => {
      const { record } = await run("head -c 100000 /dev/zero; sleep 30", 1);
      assert.deepEqual([record.timedOut, record.exitCode, record.output.length], [true, 124, 100_000]);
    });

    test("a port the guest cannot open: the answer falls back to the console, complete", async () => {
      const lost = join(dir, "no-such-dir", "port");
      // Set in the shell itself (a command runs in a subshell), between two commands, as the driver's preamble is.
      shell.child.stdin.write(`__ntt_saved=$__ntt_dd; __ntt_dd=${shellQuote(lost)}\n`);
      try {
        const before = shell.dataAnswers;
        const { record } = await run("head -c 300000 /dev/zero | tr '\\0' y", 30);
        assert.deepEqual([record.output.length, record.output.every((b) => b === 0x79), shell.dataAnswers - before], [300_000, true, 0]);
      } finally {
        shell.child.stdin.write("__ntt_dd=$__ntt_saved\n");
      }
    });

    test("a slow reader (paused 20 ms per chunk) still gets every byte: the writer waits", async () => {
      const slowDir = mkdtempSync(join(tmp, "data-slow-"));
      const slow = new HostShell(slowDir, dataFifo(slowDir, 20));
      try {
        const file = join(slowDir, "random");
        const { record } = await slow.run(nextId++, `head -c 1500000 /dev/urandom | tee ${shellQuote(file)}`, 60, { hostMs: 60_000 });
        const { record: sum } = await slow.run(nextId++, `sha256sum ${shellQuote(file)}`, 30);
        assert.equal(sum.output.toString().split(" ")[0], sha(record.output));
        assert.equal(record.output.length, 1_500_000);
      } finally {
        slow.kill();
      }
    });

    test("nothing but answers and notes reached bash's stdout", () => {
      assert.equal(Buffer.concat(shell.junk).toString("latin1"), "");
      assert.deepEqual(shell.unclaimed, []);
    });
  });

  describe("DataChannel", { concurrency: 1 }, () => {
    const channelOn = (): { channel: DataChannel; feed(s: string | Buffer): void } => {
      const stream = new PassThrough();
      const channel = new DataChannel(stream as unknown as Socket);
      return { channel, feed: (s) => stream.write(typeof s === "string" ? Buffer.from(s, "latin1") : s) };
    };

    test("bytes before a header are skipped; an answer split anywhere is joined; take before or after it arrived", async () => {
      const { channel, feed } = channelOn();
      const pending = channel.take(7, 5);
      feed("left over\x1eNT");
      feed("D 7 5\x1fhe");
      feed("llo");
      assert.equal((await pending).toString(), "hello");
      feed("\x1eNTD 8 3\x1f\x00\x1e\x1f");
      await delay(10);
      assert.deepEqual([...(await channel.take(8, 3))], [0, 0x1e, 0x1f]);
    });

    test("discard() forgets a half-sent answer, so the next header is read as a header", async () => {
      const { channel, feed } = channelOn();
      feed("\x1eNTD 1 100\x1fonly part");
      await delay(10);
      channel.discard();
      feed("\x1eNTD 2 2\x1fok");
      assert.equal((await channel.take(2, 2)).toString(), "ok");
      assert.equal(channel.progress(1), 0);
    });

    test("a closed connection fails the answer waited for", async () => {
      const stream = new PassThrough();
      const channel = new DataChannel(stream as unknown as Socket);
      const pending = channel.take(3, 10);
      stream.destroy();
      await assert.rejects(pending, /data port's connection closed/);
    });
  });

  describe("the guest-side kill marker across shells", { concurrency: 1 }, () => {
    test("a new shell (new connection, ids from 1 again) on the same /tmp does not inherit an old timeout", async () => {
      // A guest whose /tmp survives a restart of QEMU (a disk, not a tmpfs): the
      // driver's new BackdoorShell numbers its commands from 1 again, so an id
      // that timed out before comes back.
      const dir = mkdtempSync(join(tmp, "restart-"));
      const id = nextId++;
      const first = new HostShell(dir);
      try {
        const { record } = await first.run(id, "sleep 5", 1, { hostMs: 8000 });
        assert.equal(record.timedOut, true);
      } finally {
        first.kill();
      }
      const second = new HostShell(dir);
      try {
        const { record } = await second.run(id, "echo fresh", 30);
        assert.deepEqual([record.exitCode, record.timedOut, record.output.toString()], [0, false, "fresh\n"]);
      } finally {
        second.kill();
      }
    });
  });
});
