/**
 * The wire format between the driver and the guest's backdoor shell.
 *
 * The guest side is nixpkgs' own: a bash reading commands from /dev/hvc0 (see
 * test-instrumentation.nix). Once per connection the driver defines one shell
 * function there; each command is then a single call of it. The answer is one
 * record:
 *
 *     \x1eNTT <id> <exit status> <length>\x1f<base64 of stdout>\n
 *
 * (exit status -124: the guest-side timeout killed the command; -130: the
 * host cancelled it)
 *
 * - base64 keeps binary output intact through the tty;
 * - the length is bash's `${#var}` (no extra process) and lets the host tell
 *   a complete answer from one the virtconsole shortened (it drops output when
 *   the host reads too slowly instead of throttling the guest);
 * - the id lets the host skip the late answer of a command it gave up on.
 *
 * Guest processes are what costs time under TCG (tens of ms per exec), so the
 * function runs the command in the pipeline's subshell (no `bash -c`) and only
 * forks a watchdog when a guest-side timeout is asked for.
 */

export const MARKER = "Spawning backdoor root shell...";

const RS = 0x1e;
const US = 0x1f;
const NL = 0x0a;

/**
 * Outputs are sent in blocks of this many base64 characters; after each block
 * but the last the guest waits for the host's go-ahead (a newline). A block
 * fits in the socket's buffer, so the virtconsole never has to drop anything.
 */
export const BLOCK = 65536;

/**
 * bash source run once per connection. It defines
 * `__ntt_run <id> <timeout seconds, 0 = none> <flow control 1/0> <command>`.
 *
 * Each command gets a watchdog, forked by the function (one fork, no exec)
 * and ended by it once the whole pipeline is over. It waits on the console
 * (/dev/hvc0, saved as a file descriptor) with `read -t`: the timeout
 * expiring, or a character from the host (a cancellation, e.g. Ctrl-C in the
 * interactive driver) makes it kill the command — its subshell, that
 * subshell's process tree, and every process that inherited the command's
 * tag (`__NTT_CMD=<id>` in its environment), so a background job that was
 * reparented to init and still holds stdout dies too, as nixpkgs' `timeout`
 * kills its whole process group. While a command runs nothing else reads the
 * console: the shell reads its next command only after the answer.
 *
 * Reads of the console are line-wise and never see more than one line: the
 * host sends nothing else while a command runs (after a cancellation it
 * waits for the cancelled answer before the next command). bash's `read`
 * buffers a tty, so a second line would be swallowed; and `read -n` would
 * change the tty's settings, which a killed watchdog cannot restore (the
 * console must stay raw: nixpkgs' `stty raw -echo`).
 */
export const PREAMBLE = [
  "exec {__ntt_in}<&0",
  // The output goes through a file (tmpfs when there is one) rather than a
  // command substitution: one fork less, and mapfile splits it into blocks cheaply.
  "__ntt_f=/tmp/.ntt-out; [[ -d /dev/shm && -w /dev/shm ]] && __ntt_f=/dev/shm/.ntt-out",
  "__ntt_kill_tree() {",
  "  local t c k; [[ $1 == \"$BASHPID\" ]] && return; kill -STOP \"$1\" 2>/dev/null",
  "  for t in /proc/$1/task/*/children; do read -ra k < \"$t\"; for c in \"${k[@]}\"; do __ntt_kill_tree \"$c\"; done; done 2>/dev/null",
  "  kill -KILL \"$1\" 2>/dev/null",
  "}",
  "__ntt_kill() {",
  "  local p x e; read -r p < \"$__ntt_f.pid\" && __ntt_kill_tree \"$p\"",
  "  for p in /proc/[0-9]*; do",
  "    mapfile -d '' -t e < \"$p/environ\" || continue",
  "    for x in \"${e[@]}\"; do [[ $x == \"__NTT_CMD=$1\" ]] && { kill -KILL \"${p#/proc/}\"; break; }; done",
  "  done 2>/dev/null",
  "}",
  "__ntt_run() {",
  "  local __ntt_id=$1 __ntt_t=$2 __ntt_fc=$3 __ntt_c=$4 __ntt_r __ntt_m __ntt_w __ntt_l __ntt_n __ntt_i __ntt_a __ntt_len=0; set --",
  "  local -a __ntt_wait=(-t \"$__ntt_t\"); [[ $__ntt_t == 0 ]] && __ntt_wait=()",
  "  { if read -r \"${__ntt_wait[@]}\" -u \"$__ntt_in\" __ntt_m; then echo \"$__ntt_id cancelled\"; else echo \"$__ntt_id timeout\"; fi > /tmp/.ntt-killed",
  "    __ntt_kill \"$__ntt_id\"; } </dev/null >/dev/null 2>&1 &",
  "  __ntt_w=$!",
  `  { echo $BASHPID > "$__ntt_f.pid"; export __NTT_CMD=$__ntt_id; set -euo pipefail; eval "$__ntt_c"; } </dev/null | base64 -w ${BLOCK} > "$__ntt_f"; __ntt_r=\${PIPESTATUS[0]}`,
  // SIGKILL and wait: a watchdog blocked in `read` would survive SIGTERM until
  // the next byte arrived, and steal the first byte of the next command.
  "  kill -KILL \"$__ntt_w\" 2>/dev/null; wait \"$__ntt_w\" 2>/dev/null",
  "  if [[ -e /tmp/.ntt-killed ]] && read -r __ntt_m < /tmp/.ntt-killed && [[ $__ntt_m == \"$__ntt_id \"* ]]; then",
  "    [[ $__ntt_m == *timeout ]] && __ntt_r=-124 || __ntt_r=-130",
  "  fi",
  "  mapfile -t __ntt_l < \"$__ntt_f\"; : > \"$__ntt_f\"",
  "  __ntt_n=${#__ntt_l[@]}",
  `  (( __ntt_n == 0 )) || __ntt_len=$(( (__ntt_n - 1) * ${BLOCK} + \${#__ntt_l[__ntt_n - 1]} ))`,
  "  printf '\\036NTT %s %s %s\\037' \"$__ntt_id\" \"$__ntt_r\" \"$__ntt_len\"",
  "  for (( __ntt_i = 0; __ntt_i < __ntt_n; __ntt_i++ )); do",
  "    printf '%s' \"${__ntt_l[__ntt_i]}\"",
  "    (( __ntt_fc == 0 || __ntt_i + 1 == __ntt_n )) || read -r -t 60 __ntt_a || break",
  "  done",
  "  printf '\\n'",
  "}",
  "",
].join("\n");

/** What the host writes to cancel the running command (the watchdog reads one line). */
export const CANCEL = "\n";

export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The line that runs `command` as record `id`; `timeout` in seconds, 0 for
 * none. Without flow control the guest sends all blocks at once (only the
 * tests that prove loss detection turn it off).
 */
export function frameCommand(id: number, command: string, timeout: number, flowControl = true): string {
  if (command.includes("\0")) throw new RangeError("a command cannot contain NUL bytes");
  const seconds = timeout === 0 ? "0" : String(Math.max(1, Math.ceil(timeout)));
  return `__ntt_run ${id} ${seconds} ${flowControl ? 1 : 0} ${shellQuote(command)}\n`;
}

export interface ShellRecord {
  id: number;
  exitCode: number;
  /** The guest-side timeout killed the command (exitCode is 124, as with coreutils' timeout). */
  timedOut: boolean;
  output: Buffer;
}

export interface DamagedRecord {
  id: number;
  expected: number;
  received: number;
  why: string;
}

export interface ParserEvents {
  record(record: ShellRecord): void;
  damaged(record: DamagedRecord): void;
  /** A block is complete and more follow: the guest waits for the go-ahead. */
  blockDone(): void;
  /** Bytes outside any record (a guest process writing to /dev/hvc0 itself). */
  junk(bytes: Buffer): void;
}

const MAX_HEADER = 64;

/**
 * Incremental parser of the guest's answers. Base64 is decoded as it arrives,
 * in 4-character groups, so a large output is held once (decoded), never as a
 * growing string.
 */
export class RecordParser {
  private state: "seek" | "header" | "body" | "trailer" = "seek";
  private header = "";
  private id = 0;
  private exitCode = 0;
  private timedOut = false;
  private expected = 0;
  private received = 0;
  private pending: Buffer = Buffer.alloc(0);
  private decoded: Buffer[] = [];

  constructor(private readonly events: ParserEvents) {}

  /** Whether a record has started but not ended (its body is streaming in). */
  get midRecord(): boolean {
    return this.state === "header" || this.state === "body";
  }

  get progress(): { id: number; expected: number; received: number } {
    return { id: this.id, expected: this.expected, received: this.received };
  }

  feed(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === "seek") {
        const start = chunk.indexOf(RS, at);
        const end = start === -1 ? chunk.length : start;
        if (end > at) this.events.junk(chunk.subarray(at, end));
        if (start === -1) return;
        this.state = "header";
        this.header = "";
        this.id = 0; // unknown until the header is complete
        at = start + 1;
      } else if (this.state === "header") {
        const stop = chunk.indexOf(US, at);
        const restart = chunk.indexOf(RS, at);
        if (restart !== -1 && (stop === -1 || restart < stop)) {
          // A stray record separator in junk: what came before it was no header.
          this.events.junk(Buffer.from(`\x1e${this.header}${chunk.toString("latin1", at, restart)}`, "latin1"));
          this.header = "";
          at = restart + 1;
          continue;
        }
        const end = stop === -1 ? chunk.length : stop;
        this.header += chunk.toString("latin1", at, end);
        if (stop === -1) {
          if (this.header.length > MAX_HEADER) this.abandonHeader();
          return;
        }
        at = stop + 1;
        if (this.startBody() && this.expected === 0) {
          // An empty answer is complete with its header; its newline may be lost.
          this.finishBody();
          this.state = "trailer";
        }
      } else if (this.state === "body") {
        // Stop at the announced length even without the newline: a lost
        // newline must not leave the host waiting for it.
        const nl = chunk.indexOf(NL, at);
        const limit = Math.min(nl === -1 ? chunk.length : nl, at + (this.expected - this.received));
        this.take(chunk.subarray(at, limit));
        at = limit;
        if (this.received === this.expected) {
          this.finishBody();
          this.state = "trailer";
        } else if (limit === chunk.length && this.received > 0 && this.received % BLOCK === 0) {
          this.events.blockDone();
        } else if (nl !== -1 && at === nl) {
          at = nl + 1;
          this.finishBody();
        }
      } else {
        if (chunk[at] === NL) at++;
        this.state = "seek";
      }
    }
  }

  /** The stream stalled or ended inside a record: report what arrived as damaged. */
  abandon(why: string): void {
    if (this.state === "body" || this.state === "header") {
      this.events.damaged({ id: this.id, expected: this.expected, received: this.received, why });
    }
    this.reset();
  }

  /** Parses the header; false if it was no header after all. */
  private startBody(): boolean {
    const m = /^NTT (\d+) (-?\d+) (\d+)$/.exec(this.header);
    if (m === null) {
      this.abandonHeader();
      return false;
    }
    this.id = Number(m[1]);
    this.exitCode = Math.abs(Number(m[2]));
    this.timedOut = Number(m[2]) === -124;
    this.expected = Number(m[3]);
    this.received = 0;
    this.pending = Buffer.alloc(0);
    this.decoded = [];
    this.state = "body";
    return true;
  }

  private abandonHeader(): void {
    this.events.junk(Buffer.from(`\x1e${this.header}`, "latin1"));
    this.reset();
  }

  private take(part: Buffer): void {
    if (part.length === 0) return;
    this.received += part.length;
    const text = this.pending.length > 0 ? Buffer.concat([this.pending, part]) : part;
    const whole = text.length - (text.length % 4);
    if (whole > 0) this.decoded.push(Buffer.from(text.toString("latin1", 0, whole), "base64"));
    this.pending = Buffer.from(text.subarray(whole));
  }

  private finishBody(): void {
    if (this.received !== this.expected || this.pending.length !== 0) {
      const why = this.received < this.expected ? "bytes were lost" : "more bytes arrived than announced";
      this.events.damaged({ id: this.id, expected: this.expected, received: this.received, why });
    } else {
      this.events.record({ id: this.id, exitCode: this.exitCode, timedOut: this.timedOut, output: Buffer.concat(this.decoded) });
    }
    this.reset();
  }

  private reset(): void {
    this.state = "seek";
    this.header = "";
    this.pending = Buffer.alloc(0);
    this.decoded = [];
  }
}
