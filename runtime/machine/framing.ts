/**
 * The wire format between the driver and the guest's backdoor shell.
 *
 * The guest side is nixpkgs' own: a bash reading commands from /dev/hvc0 (see
 * test-instrumentation.nix). Once per connection the driver defines one shell
 * function there; each command is then a single call of it. The answer is one
 * record, either
 *
 *     \x1eNTR <id> <exit status> <length>\x1f<stdout as it is>\n
 *
 * for an output shorter than a block without NUL bytes (the console is raw:
 * nixpkgs' `stty raw -echo`, so every other byte passes unchanged), or
 *
 *     \x1eNTT <id> <exit status> <length>\x1f<base64 of stdout>\n
 *
 * (exit status -124: the guest-side timeout killed the command; -130: the
 * host cancelled it)
 *
 * - base64 keeps NUL bytes intact, which bash cannot hold;
 * - the length is bash's `${#var}` in the C locale (bytes; no extra process)
 *   and lets the host tell a complete answer from one the virtconsole
 *   shortened (it drops output when the host reads too slowly instead of
 *   throttling the guest);
 * - the id lets the host skip the late answer of a command it gave up on.
 *
 * When QEMU has the driver's data port (a virtserialport, see DATA_PORT), a
 * large or binary output goes there instead, as it is, and the console
 * carries only
 *
 *     \x1eNTD <id> <exit status> <length>\x1f\n
 *
 * once it has been written. A virtserialport is throttled when the host reads
 * slowly (QEMU drops console output instead), so nothing is lost there and no
 * flow control or base64 is needed; see DataChannel.
 */
import { shellQuote } from "../../lib/shell.js";

export const MARKER = "Spawning backdoor root shell...";

/** The name of the driver's data port as the guest sees it (/sys/class/virtio-ports/<port>/name). */
export const DATA_PORT = "org.nixos-test-ts.data";

const RS = 0x1e;
const US = 0x1f;
const NL = 0x0a;

/**
 * Large outputs are sent in blocks of this many base64 characters; the guest
 * keeps at most a window of blocks unacknowledged (see `flowWindow`), so the
 * bytes in flight always fit in what the console's socket buffers and the
 * virtconsole never has to drop anything. Outputs shorter than a block that
 * contain no NUL byte are sent as they are (no base64, no process).
 */
export const BLOCK = 16384;

/**
 * How many blocks may be in flight: what the console's socket buffers, with
 * room to spare. QEMU's end of the socket has the kernel's default send
 * buffer (net.core.wmem_default), and a stream socket's unread bytes count
 * against the sender's buffer, so that is all that can wait for a slow reader
 * before QEMU drops output. Each write of the virtconsole (up to a page) is
 * charged as its whole allocation, about twice its size: measured here, 4
 * blocks of 32 KiB (128 KiB) in flight lost bytes with the default 212992,
 * 64 KiB did not. So the window takes 30 % of the buffer: 3 blocks, 48 KiB.
 */
export function flowWindow(wmemDefault: number): number {
  return Math.max(1, Math.min(16, Math.floor((wmemDefault * 0.3) / BLOCK)));
}

/**
 * Whether something listens on TCP port $1 at an address `localhost` reaches
 * (0.0.0.0, 127.0.0.1, ::, ::1, ::ffff:127.0.0.1), from /proc/net: what
 * `nc -z localhost $1` finds out, without starting a process. Commands may
 * call it on every backend: the VM's preamble and the container's prelude
 * both define it.
 */
export const LISTENING_FUNCTION = [
  "__ntt_listening() {",
  "  local p x; local -a l; printf -v p '%04X' \"$1\"",
  '  { mapfile -t l < /proc/net/tcp; mapfile -t -O "${#l[@]}" l < /proc/net/tcp6; } 2>/dev/null',
  '  for x in "${l[@]}"; do',
  "    [[ $x =~ ^\\ *[0-9]+:\\ (00000000|0100007F|0{32}|0{24}01000000|0{16}FFFF00000100007F):$p\\ [0-9A-F]+:0000\\ 0A ]] && return 0",
  "  done",
  "  return 1",
  "}",
];

/**
 * bash source run once per connection. It defines
 * `__ntt_run <id> <timeout seconds, 0 = none> <window, 0 = no flow control> <command>`.
 *
 * Guest processes are what costs time under TCG, an exec most of all (with
 * address randomisation every exec translates its code anew: ~50 ms, a fork
 * ~10 ms), so a command costs the guest two forks and no exec: the command's
 * subshell, writing to a file, and a watchdog. The output is read back with
 * bash's `read`; only when it is a block or more, or holds a NUL byte, does
 * `base64` run.
 *
 * The watchdog (one fork, no exec), ended once the command is over, waits on
 * the console (/dev/hvc0, saved as a file descriptor) with `read -t`: the
 * timeout expiring, or a character from the host (a cancellation, e.g.
 * Ctrl-C in the interactive driver) makes it kill the command — its
 * subshell, that subshell's process tree, and every process that inherited
 * the command's tag (`__NTT_CMD=<id>` in its environment), so a background
 * job that was reparented to init dies too, as nixpkgs' `timeout` kills its
 * whole process group. While a command runs nothing else reads the console:
 * the shell reads its next command only after the answer.
 *
 * Each command writes to a file of its own (named by its id). As with
 * nixpkgs' pipe, the answer waits while a background job of the command still
 * has that file as its stdout (`__ntt_held`: a builtin `-ef` test over
 * /proc/<pid>/fd/1, made only when the command's shell left jobs running;
 * the command's timeout ends the wait by killing the job).
 * The files are emptied after use and removed every 512 commands.
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
  "__ntt_d=/tmp/.ntt-d; [[ -d /dev/shm && -w /dev/shm ]] && __ntt_d=/dev/shm/.ntt-d",
  '[[ -d $__ntt_d ]] || mkdir -p "$__ntt_d"; : > "$__ntt_d/killed"',
  // Pauses between the tries of a poll: `read -t` on a fifo nobody writes to is a sleep without a process.
  '__ntt_nap() { sleep "$1"; }',
  'if [[ -p $__ntt_d/nap ]] || mkfifo "$__ntt_d/nap" 2>/dev/null; then exec {__ntt_sl}<>"$__ntt_d/nap"; __ntt_nap() { read -r -t "$1" -u "$__ntt_sl" __ntt_m; }; fi',
  ...LISTENING_FUNCTION,
  // Whether a process left behind by the command still has its stdout open on
  // the output file ($1): as with nixpkgs' pipe, the answer waits for it.
  "__ntt_held() { local f; for f in /proc/[0-9]*/fd/1; do [[ $f -ef $1 ]] && return 0; done 2>/dev/null; return 1; }",
  "__ntt_kill_tree() {",
  '  local t c k; [[ $1 == "$BASHPID" ]] && return; kill -STOP "$1" 2>/dev/null',
  '  for t in /proc/$1/task/*/children; do read -ra k < "$t"; for c in "${k[@]}"; do __ntt_kill_tree "$c"; done; done 2>/dev/null',
  '  kill -KILL "$1" 2>/dev/null',
  "}",
  "__ntt_kill() {",
  '  local p x e; read -r p < "$__ntt_d/pid" && __ntt_kill_tree "$p"',
  "  for p in /proc/[0-9]*; do",
  "    mapfile -d '' -t e < \"$p/environ\" || continue",
  '    for x in "${e[@]}"; do [[ $x == "__NTT_CMD=$1" ]] && { kill -KILL "${p#/proc/}"; break; }; done',
  "  done 2>/dev/null",
  "}",
  // The data port's device, when the host has one and the guest's kernel made it: "__ntt_dport <name>" sets it.
  "__ntt_dd=",
  "__ntt_dport() { local f n; __ntt_dd=; for f in /sys/class/virtio-ports/*/name; do",
  '  read -r n < "$f" && [[ $n == "$1" ]] && f=${f%/name} && [[ -c /dev/${f##*/} ]] && { __ntt_dd=/dev/${f##*/}; return; }',
  "done 2>/dev/null; }",
  // Answer $1 (status $2, file $3, $4 bytes) through the data port: the data, then the console's note.
  // False, before anything reached the console, when the port could not be written.
  "__ntt_data() {",
  '  local __ntt_x; printf -v __ntt_x \'\\036NTD %s %s\\037\' "$1" "$4"',
  '  { { echo -n "$__ntt_x"; cat -- "$3"; } > "$__ntt_dd"; } 2>/dev/null || return 1',
  '  printf -v __ntt_x \'\\036NTD %s %s %s\\037\' "$1" "$2" "$4"; echo "$__ntt_x"',
  "}",
  // Sends file $3 as the answer of command $1 with status $2, window $4.
  "__ntt_send() {",
  "  local LC_ALL=C __ntt_s= __ntt_p=-1 __ntt_x __ntt_k; __ntt_last=$3 __ntt_last_r=$2",
  // Up to a block, stopping at the first NUL (which `read` drops): the file's offset after it equals the
  // length read only if there was none. (-N would skip NULs and read on: a file of zeros whole, byte by byte.)
  '  if exec {__ntt_k}<"$3"; then',
  `    IFS= read -r -d '' -n ${BLOCK} -u "$__ntt_k" __ntt_s`,
  '    read -r __ntt_x __ntt_p < "/proc/$BASHPID/fdinfo/$__ntt_k" || __ntt_p=-1',
  "    exec {__ntt_k}<&-",
  "  fi 2>/dev/null",
  `  if [[ $__ntt_p == "\${#__ntt_s}" ]] && (( __ntt_p < ${BLOCK} )); then`,
  // echo, not printf: bash's printf writes %s a character at a time (~1 µs each under TCG), echo in one go;
  // the header first, so the output is never taken for an option of echo.
  '    printf -v __ntt_x \'\\036NTR %s %s %s\\037\' "$1" "$2" "$__ntt_p"; echo "$__ntt_x$__ntt_s"; return',
  "  fi",
  '  __ntt_s=$(wc -c < "$3") || __ntt_s=0',
  '  if [[ -n $__ntt_dd ]] && __ntt_data "$1" "$2" "$3" "$__ntt_s"; then return; fi',
  `  if (( __ntt_s < ${BLOCK} )); then __ntt_blocks "$@"; return; fi`,
  // A large answer: streamed by base64 itself (bash would touch every byte,
  // ~2 µs each under TCG); if the host lost bytes it asks for it again with
  // flow control (__ntt_resend), so the file stays until the next command.
  '  printf -v __ntt_x \'\\036NTS %s %s %s\\037\' "$1" "$2" "$(( (__ntt_s + 2) / 3 * 4 ))"',
  '  echo -n "$__ntt_x"; base64 -w 0 "$3"; echo',
  "}",
  // The same answer once more, in blocks with flow control.
  '__ntt_resend() { [[ $__ntt_last == */"$1" ]] && __ntt_blocks "$1" "$__ntt_last_r" "$__ntt_last" "$2"; }',
  "__ntt_blocks() {",
  "  local LC_ALL=C __ntt_n __ntt_i __ntt_a __ntt_len=0; local -a __ntt_l",
  `  base64 -w ${BLOCK} "$3" > "$3.b64"; mapfile -t __ntt_l < "$3.b64"; : > "$3.b64"`,
  "  __ntt_n=${#__ntt_l[@]}",
  `  (( __ntt_n == 0 )) || __ntt_len=$(( (__ntt_n - 1) * ${BLOCK} + \${#__ntt_l[__ntt_n - 1]} ))`,
  '  printf \'\\036NTT %s %s %s\\037\' "$1" "$2" "$__ntt_len"',
  // After block i the guest waits for a go-ahead only once $4 blocks are unacknowledged.
  "  for (( __ntt_i = 0; __ntt_i < __ntt_n; __ntt_i++ )); do",
  '    echo -n "${__ntt_l[__ntt_i]}"',
  '    (( $4 == 0 || __ntt_i + 1 == __ntt_n || __ntt_i + 1 < $4 )) || read -r -t 60 -u "$__ntt_in" __ntt_a || break',
  "  done",
  "  echo",
  "}",
  "__ntt_run() {",
  "  local __ntt_id=$1 __ntt_t=$2 __ntt_fc=$3 __ntt_c=$4 __ntt_want=${5:-} __ntt_dur=${6:-0} __ntt_r __ntt_m __ntt_w __ntt_o=$__ntt_d/$1 __ntt_s __ntt_e; set --",
  '  [[ -z ${__ntt_last:-} ]] || : > "$__ntt_last"; __ntt_last=',
  '  (( __ntt_id % 512 )) || rm -f -- "$__ntt_d"/[0-9]* 2>/dev/null',
  // No stale pid for the watchdog to kill (the previous command's, perhaps reused by now).
  '  local -a __ntt_wait=(-t "$__ntt_t"); [[ $__ntt_t == 0 ]] && __ntt_wait=(); : > "$__ntt_d/pid"',
  '  { if read -r "${__ntt_wait[@]}" -u "$__ntt_in" __ntt_m; then echo "$__ntt_id cancelled"; else echo "$__ntt_id timeout"; fi > "$__ntt_d/killed"',
  '    __ntt_kill "$__ntt_id"; } </dev/null >/dev/null 2>&1 &',
  "  __ntt_w=$!",
  // Microseconds from EPOCHREALTIME (bash 5; its decimal point depends on the locale), else from SECONDS.
  "  __ntt_s=${EPOCHREALTIME//[!0-9]/}; : ${__ntt_s:=$(( SECONDS * 1000000 ))}",
  // A poll (want 0: until the command succeeds, 1: until it fails) tries again
  // in the guest, with builtin pauses, until it holds or $__ntt_dur ms passed
  // (-1: no limit), or the watchdog fired; else this loop runs once.
  "  while :; do",
  // On exit the subshell lists its background jobs still running (a builtin, into a file): only then can one hold stdout.
  // The pid first, then a look at the kill marker: a watchdog that fired before the pid was there
  // (a cancellation right behind the command) wrote the marker first, so one of the two sees the other.
  '    ( echo $BASHPID > "$__ntt_d/pid"; { read -r __ntt_m < "$__ntt_d/killed"; } 2>/dev/null && [[ $__ntt_m == "$__ntt_id "* ]] && exit 130',
  '      trap \'jobs -p > "$__ntt_d/jobs"\' EXIT; export __NTT_CMD=$__ntt_id; set -euo pipefail; eval "$__ntt_c" ) </dev/null > "$__ntt_o"; __ntt_r=$?',
  "    if [[ -z $__ntt_want ]]; then",
  '      while [[ -s $__ntt_d/jobs ]] && __ntt_held "$__ntt_o"; do',
  '        __ntt_nap 0.04; { read -r __ntt_m < "$__ntt_d/killed"; } 2>/dev/null && [[ $__ntt_m == "$__ntt_id "* ]] && break',
  "      done",
  "      break",
  "    fi",
  '    : > "$__ntt_d/pid"',
  "    (( (__ntt_r == 0) == (__ntt_want == 0) )) && break",
  "    __ntt_e=${EPOCHREALTIME//[!0-9]/}; : ${__ntt_e:=$(( SECONDS * 1000000 ))}; __ntt_e=$(( __ntt_e - __ntt_s ))",
  "    (( __ntt_dur < 0 || __ntt_e < __ntt_dur * 1000 )) || break",
  // 40 ms between tries for 30 s (a try costs a fork: ~20 % of a TCG guest), then 200 ms, after 2 min 1 s.
  "    if (( __ntt_e < 30000000 )); then __ntt_nap 0.04; elif (( __ntt_e < 120000000 )); then __ntt_nap 0.2; else __ntt_nap 1; fi",
  '    { read -r __ntt_m < "$__ntt_d/killed"; } 2>/dev/null && [[ $__ntt_m == "$__ntt_id "* ]] && break',
  "  done",
  // SIGKILL and wait: a watchdog blocked in `read` would survive SIGTERM until
  // the next byte arrived, and steal the first byte of the next command.
  // A watchdog that fired is left to finish its killing (what the command left behind included).
  '  __ntt_m=; { read -r __ntt_m < "$__ntt_d/killed"; } 2>/dev/null',
  '  [[ $__ntt_m == "$__ntt_id "* ]] || kill -KILL "$__ntt_w" 2>/dev/null; wait "$__ntt_w" 2>/dev/null',
  '  if read -r __ntt_m < "$__ntt_d/killed" && [[ $__ntt_m == "$__ntt_id "* ]]; then',
  "    [[ $__ntt_m == *timeout ]] && __ntt_r=-124 || __ntt_r=-130",
  "  fi 2>/dev/null",
  '  __ntt_send "$__ntt_id" "$__ntt_r" "$__ntt_o" "$__ntt_fc"',
  "}",
  "",
].join("\n");

/** What the host writes to cancel the running command (the watchdog reads one line). */
export const CANCEL = "\n";

/**
 * The line that runs `command` as record `id`; `timeout` in seconds, 0 for
 * none; `window` blocks may be unacknowledged (0: no flow control, the guest
 * sends all blocks at once; only the tests that prove loss detection do that).
 */
export function frameCommand(id: number, command: string, timeout: number, window: number, poll?: Poll): string {
  if (command.includes("\0")) throw new RangeError("a command cannot contain NUL bytes");
  if (!Number.isInteger(window) || window < 0) throw new RangeError(`window ${window}: a whole number of blocks, 0 for none`);
  const seconds = timeout === 0 ? "0" : String(Math.max(1, Math.ceil(timeout)));
  const line = `__ntt_run ${id} ${seconds} ${window} ${shellQuote(command)}`;
  if (poll === undefined) return `${line}\n`;
  const duration = poll.durationMs === null ? -1 : Math.max(0, Math.round(poll.durationMs));
  return `${line} ${poll.until === "success" ? 0 : 1} ${duration}\n`;
}

/**
 * Repeat the command in the guest until its exit status is the wanted one
 * (or `durationMs` passed; null: no limit). The answer is the last try's.
 */
export interface Poll {
  until: "success" | "failure";
  durationMs: number | null;
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
  /** It was streamed without flow control (NTS): the guest can send it again with flow control (`resendLine`). */
  streamed?: boolean;
}

/** The line that asks the guest for answer `id` once more, in blocks with flow control. */
export function resendLine(id: number, window: number): string {
  return `__ntt_resend ${id} ${window}\n`;
}

/** An answer that went through the data port (NTD): its status here, its bytes there. */
export interface DataNote {
  id: number;
  exitCode: number;
  timedOut: boolean;
  length: number;
}

export interface ParserEvents {
  record(record: ShellRecord): void;
  /** The answer of command `id` was written to the data port. */
  dataNote(note: DataNote): void;
  damaged(record: DamagedRecord): void;
  /**
   * Block `index` (0-based) of `blocks` is complete and more follow; the
   * guest may be waiting for a go-ahead (see `__ntt_send`).
   */
  blockDone(index: number, blocks: number): void;
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
  private state: "seek" | "header" | "body" | "trailer" | "rawEnd" = "seek";
  /** The body is the output as it is (NTR), not base64 (NTT, NTS). */
  private raw = false;
  /** The body is base64 streamed without blocks (NTS). */
  private streamed = false;
  private header = "";
  private id = 0;
  private exitCode = 0;
  private timedOut = false;
  private expected = 0;
  private received = 0;
  private pending: Buffer = Buffer.alloc(0);
  private decoded: Buffer[] = [];
  /** The `received` count at which blockDone was last reported (once per block). */
  private signalled = 0;

  constructor(private readonly events: ParserEvents) {}

  /** Whether a record has started but not ended (its body is streaming in). */
  get midRecord(): boolean {
    return this.state === "header" || this.state === "body" || this.state === "rawEnd";
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
        if (this.header.startsWith("NTD ")) {
          this.note();
          continue;
        }
        if (this.startBody() && this.expected === 0) {
          // An empty answer is complete with its header; its newline may be lost.
          this.finishBody();
          this.state = "trailer";
        }
      } else if (this.state === "body" && this.raw) {
        // Any byte may be output: only the length ends the body; its newline must follow.
        const limit = Math.min(chunk.length, at + (this.expected - this.received));
        this.takeRaw(chunk.subarray(at, limit));
        at = limit;
        if (this.received === this.expected) this.state = "rawEnd";
      } else if (this.state === "rawEnd") {
        if (chunk[at] === NL) {
          at++;
          this.finishBody();
        } else {
          // Bytes were lost inside the body, so it swallowed what came after it.
          this.events.damaged({
            id: this.id,
            expected: this.expected,
            received: this.received,
            why: "the answer did not end where its length said (bytes were lost)",
          });
          this.reset();
        }
      } else if (this.state === "body") {
        // Stop at the announced length even without the newline: a lost
        // newline must not leave the host waiting for it. Stop at each block's
        // end too: the guest may be waiting for its go-ahead.
        const nl = chunk.indexOf(NL, at);
        const toBlockEnd = this.streamed ? Infinity : BLOCK - (this.received % BLOCK);
        const limit = Math.min(nl === -1 ? chunk.length : nl, at + (this.expected - this.received), at + toBlockEnd);
        this.take(chunk.subarray(at, limit));
        at = limit;
        if (this.received === this.expected) {
          this.finishBody();
          this.state = "trailer";
        } else if (nl !== -1 && at === nl) {
          at = nl + 1;
          this.finishBody();
        } else if (!this.streamed && this.received % BLOCK === 0 && this.received !== this.signalled) {
          this.signalled = this.received;
          this.events.blockDone(this.received / BLOCK - 1, Math.ceil(this.expected / BLOCK));
        }
      } else {
        if (chunk[at] === NL) at++;
        this.state = "seek";
      }
    }
  }

  /** The stream stalled or ended inside a record: report what arrived as damaged. */
  abandon(why: string): void {
    if (this.midRecord) {
      this.events.damaged({ id: this.id, expected: this.expected, received: this.received, why, ...(this.streamed ? { streamed: true } : {}) });
    }
    this.reset();
  }

  /** Parses the header; false if it was no header after all. */
  private startBody(): boolean {
    const m = /^NT([TRS]) (\d+) (-?\d+) (\d+)$/.exec(this.header);
    if (m === null) {
      this.abandonHeader();
      return false;
    }
    this.raw = m[1] === "R";
    this.streamed = m[1] === "S";
    this.id = Number(m[2]);
    this.exitCode = Math.abs(Number(m[3]));
    this.timedOut = Number(m[3]) === -124;
    this.expected = Number(m[4]);
    this.received = 0;
    this.signalled = 0;
    this.pending = Buffer.alloc(0);
    this.decoded = [];
    this.state = "body";
    return true;
  }

  /** A data port note: nothing follows on the console but its newline. */
  private note(): void {
    const m = /^NTD (\d+) (-?\d+) (\d+)$/.exec(this.header);
    if (m === null) return this.abandonHeader();
    this.reset();
    this.state = "trailer";
    const status = Number(m[2]);
    this.events.dataNote({ id: Number(m[1]), exitCode: Math.abs(status), timedOut: status === -124, length: Number(m[3]) });
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

  private takeRaw(part: Buffer): void {
    if (part.length === 0) return;
    this.received += part.length;
    // A copy: the chunk's memory belongs to the socket's reader.
    this.decoded.push(Buffer.from(part));
  }

  private finishBody(): void {
    if (this.received !== this.expected || this.pending.length !== 0) {
      const why = this.received < this.expected ? "bytes were lost" : "more bytes arrived than announced";
      this.events.damaged({ id: this.id, expected: this.expected, received: this.received, why, ...(this.streamed ? { streamed: true } : {}) });
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
