import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { describeFailure } from "./failure.js";
import { FileWriter } from "../log/file-writer.js";
import type { RecordSink } from "../log/record.js";
import { errorText, type RunResult } from "./results.js";
import { esc, slowestSection, timelineSection, TIMELINE_STYLE } from "./timeline.js";

/** Screenshots larger than this are linked, not inlined, to keep the report openable. */
const MAX_INLINE_BYTES = 8 * 1024 * 1024;

/** PNGs anywhere in the output directory (screenshots, copied images), oldest first. */
function screenshots(outDir: string): Array<{ path: string; mtime: number }> {
  const found: Array<{ path: string; mtime: number }> = [];
  const walk = (dir: string, depth: number): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      const st = statSync(p, { throwIfNoEntry: false });
      if (st?.isDirectory() && depth < 3) walk(p, depth + 1);
      else if (st?.isFile() && e.toLowerCase().endsWith(".png")) found.push({ path: p, mtime: st.mtimeMs });
    }
  };
  walk(outDir, 0);
  return found.sort((a, b) => a.mtime - b.mtime);
}

function failureSection(error: unknown): string {
  if (error === undefined) return "";
  const { type } = errorText(error);
  const fields = error as { machine?: string; command?: string; exitCode?: number; output?: string };
  const facts = [
    fields.machine === undefined ? "" : `<dt>machine</dt><dd class="machine">${esc(fields.machine)}</dd>`,
    fields.command === undefined ? "" : `<dt>command</dt><dd><code>${esc(fields.command)}</code></dd>`,
    fields.exitCode === undefined ? "" : `<dt>exit code</dt><dd>${fields.exitCode}</dd>`,
  ].join("");
  const output = typeof fields.output === "string" && fields.output !== "" ? `<h3>output</h3><pre class="output">${esc(fields.output)}</pre>` : "";
  return `<section id="failure"><h2>Failure: ${esc(type)}</h2>${facts === "" ? "" : `<dl>${facts}</dl>`}${output}<pre class="details">${esc(describeFailure(error))}</pre></section>`;
}

function subtestList(run: RunResult): string {
  const total = Math.max(run.duration, 0.001);
  const rows = run.cases
    .map((c) => {
      const left = (100 * c.start) / total;
      const width = Math.max(0.5, (100 * c.seconds) / total);
      const state = c.error === undefined ? "pass" : "fail";
      return `<li class="${state}"><span class="name">${esc(c.name)}</span><span class="track"><span class="bar" style="margin-left:${left.toFixed(2)}%;width:${Math.min(width, 100 - left).toFixed(2)}%"></span></span><span class="time">${c.seconds.toFixed(2)} s</span></li>`;
    })
    .join("");
  return `<section id="subtests"><h2>Subtests</h2><ol>${rows}</ol></section>`;
}

function screenshotSection(outDir: string): string {
  const shots = screenshots(outDir);
  if (shots.length === 0) return "";
  const figures = shots
    .map(({ path }) => {
      const name = relative(outDir, path);
      const size = statSync(path).size;
      const img =
        size <= MAX_INLINE_BYTES
          ? `<img class="screenshot" alt="${esc(name)}" src="data:image/png;base64,${readFileSync(path).toString("base64")}">`
          : `<a href="${esc(name)}">${esc(name)} (${(size / 1e6).toFixed(1)} MB, not inlined)</a>`;
      return `<figure>${img}<figcaption>${esc(name)}</figcaption></figure>`;
    })
    .join("");
  return `<section id="screenshots"><h2>Screenshots</h2>${figures}</section>`;
}

/** Consoles up to this size are embedded in report.html itself; larger ones are in files next to it. */
const MAX_INLINE_CONSOLE_BYTES = 2 << 20;
/** Lines are handed to the page in chunks of about this size: opening a console parses one chunk, not the whole log. */
const CHUNK_BYTES = 1 << 20;

/** A JavaScript string literal, safe inside <script>. */
function jsString(text: string): string {
  return JSON.stringify(text)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** Read and converted this much at a time: the garbage of writing a report stays small whatever the console's size. */
const PIECE_BYTES = 256 << 10;

/**
 * Cuts the console file into chunks of whole lines of about CHUNK_BYTES and
 * hands each to `open(index)` as a JavaScript expression written piece by
 * piece (`"…"+"…"`), reading PIECE_BYTES at a time. Returns how many chunks.
 */
function writeChunks(path: string, open: (index: number) => { write(text: string): void; end(): void }): number {
  const fd = openSync(path, "r");
  try {
    const decoder = new StringDecoder("utf8");
    const buffer = Buffer.alloc(PIECE_BYTES);
    let carry = "";
    let index = 0;
    let current: { write(text: string): void; end(): void } | undefined;
    let size = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, PIECE_BYTES, null);
      const text = carry + (n === 0 ? decoder.end() : decoder.write(buffer.subarray(0, n)));
      const cut = n === 0 ? text.length : text.lastIndexOf("\n") + 1;
      if (cut > 0) {
        if (current === undefined) {
          current = open(index++);
          size = 0;
        } else {
          current.write("+");
        }
        current.write(jsString(text.slice(0, cut)));
        size += cut;
        if (size >= CHUNK_BYTES) {
          current.end();
          current = undefined;
        }
      }
      carry = text.slice(cut);
      if (n === 0) break;
    }
    current?.end();
    return index;
  } finally {
    closeSync(fd);
  }
}

/**
 * The consoles: a small one is embedded in the page; a large one goes into
 * `console-<machine>.<n>.js` files next to it, loaded only when the console is
 * opened (the first chunk) or filtered (all, one after the other): the page
 * opens at once whatever the length of the log. The plain text is in
 * `console-<machine>.txt`, linked.
 */
function writeSerialSection(out: FileWriter, record: RecordSink, reportDir: string): void {
  const consoles = record.serialConsoles();
  if (consoles.length === 0) return;
  out.write(
    `<section id="serial"><h2>Serial consoles</h2><input id="search" type="search" placeholder="filter lines (text or /regex/)">\n<script>${CHUNK_SCRIPT}</script>\n`,
  );
  for (const c of consoles) {
    let chunks = 0;
    let src = "";
    let link = "";
    if (c.path !== undefined) {
      const file = basename(c.path);
      link = ` <a href="${esc(file)}">${esc(file)}</a>`;
      const name = jsString(c.machine);
      if (statSync(c.path).size <= MAX_INLINE_CONSOLE_BYTES) {
        chunks = writeChunks(c.path, (i) => {
          out.write(`<script>serialChunk(${name},${i},`);
          return { write: (t) => out.write(t), end: () => out.write(");</script>\n") };
        });
      } else {
        src = file.replace(/\.txt$/, "");
        chunks = writeChunks(c.path, (i) => {
          const script = new FileWriter(join(reportDir, `${src}.${i}.js`), PIECE_BYTES);
          script.write(`serialChunk(${name},${i},`);
          return {
            write: (t) => script.write(t),
            end: () => {
              script.write(");\n");
              script.close();
            },
          };
        });
      }
    }
    out.write(
      `<details class="serial" data-machine="${esc(c.machine)}" data-lines="${c.lines}" data-chunks="${chunks}"${src === "" ? "" : ` data-src="${esc(src)}"`}><summary>${esc(c.machine)} <small>(${c.lines} lines)</small>${link}</summary><p class="shown"></p><pre></pre><button class="more" hidden>show more</button></details>\n`,
    );
  }
  out.write(`</section>\n`);
}

/** Defined before the embedded chunks call it. */
const CHUNK_SCRIPT = `
const serialStore = {};
function serialChunk(m, i, text) {
  (serialStore[m] ??= { chunks: [], loads: [] }).chunks[i] = text === "" ? [] : text.replace(/\\n$/, "").split("\\n");
}
`;

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#222}
h1 .pass{color:#1a7f37}h1 .fail{color:#cf222e}
pre{background:#f6f8fa;padding:.8em;overflow:auto;white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace}
#failure{border-left:4px solid #cf222e;padding-left:1em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}
#subtests ol{list-style:none;padding:0}#subtests li{display:grid;grid-template-columns:18em 1fr 6em;gap:1em;align-items:center;margin:.2em 0}
#subtests .track{background:#eee;height:.9em;display:block}.bar{display:block;height:100%}.pass .bar{background:#2da44e}.fail .bar{background:#cf222e}
.fail .name{color:#cf222e;font-weight:600}.time{text-align:right;font-variant-numeric:tabular-nums}
img.screenshot{max-width:100%;border:1px solid #ccc}
#search{width:100%;padding:.4em;margin-bottom:.5em}
.serial .shown{color:#777;margin:.3em 0}
${TIMELINE_STYLE}`;

/**
 * The consoles are rendered on demand: a page at a time when a console is
 * opened, and only the matching lines when filtering, so a report with
 * hundreds of thousands of lines opens at once.
 */
const SCRIPT = `
const PAGE = 2000;
function chunk(d, i) {
  const st = (serialStore[d.dataset.machine] ??= { chunks: [], loads: [] });
  if (st.chunks[i]) return st.chunks[i];
  return st.loads[i] ??= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = d.dataset.src + "." + i + ".js";
    s.onload = () => (st.chunks[i] ? resolve(st.chunks[i]) : reject(new Error("no lines in " + s.src)));
    s.onerror = () => reject(new Error("cannot load " + s.src + " (it must be next to this page)"));
    document.body.append(s);
  });
}
function filterFor(q) {
  if (q === "") return null;
  if (/^\\/.+\\/$/.test(q)) { try { const re = new RegExp(q.slice(1, -1), "i"); return (t) => re.test(t); } catch {} }
  const lower = q.toLowerCase();
  return (t) => t.toLowerCase().includes(lower);
}
/** Renders up to d._limit lines (the matching ones when filtering); resolves to the number of matches. */
async function render(d) {
  const g = (d._gen = (d._gen || 0) + 1);
  const total = Number(d.dataset.lines), n = Number(d.dataset.chunks), match = d._match;
  const shown = [], status = d.querySelector(".shown");
  let matched = 0, scanned = 0;
  try {
    for (let i = 0; i < n; i++) {
      let lines = chunk(d, i);
      if (lines instanceof Promise) { status.textContent = (match ? "searching" : "loading") + " … " + scanned + " of " + total + " lines"; lines = await lines; }
      if (d._gen !== g) return -1;
      if (match) { for (const l of lines) if (match(l)) { matched++; if (shown.length < d._limit) shown.push(l); } }
      else for (let k = 0; k < lines.length && shown.length < d._limit; k++) shown.push(lines[k]);
      scanned += lines.length;
      if (!match && shown.length >= d._limit) break;
    }
  } catch (e) { status.textContent = e.message; return 0; }
  const count = match ? matched : total;
  d.querySelector("pre").textContent = shown.join("\\n");
  status.textContent = (match ? matched + " matching of " + total + " lines" : total + " lines") + (shown.length < count ? ", showing the first " + shown.length : "");
  d.querySelector(".more").hidden = shown.length >= count;
  d._rendered = true;
  return count;
}
for (const d of document.querySelectorAll("details.serial")) {
  d._limit = PAGE;
  d.addEventListener("toggle", () => { if (d.open && !d._rendered) render(d); });
  d.querySelector(".more").addEventListener("click", () => { d._limit += PAGE * 5; render(d); });
}
const input = document.getElementById("search");
if (input) input.addEventListener("input", () => {
  const match = filterFor(input.value);
  for (const d of document.querySelectorAll("details.serial")) {
    d._match = match; d._limit = PAGE; d._rendered = false;
    if (match === null) { if (d.open) render(d); continue; }
    render(d).then((hits) => { if (hits >= 0) { d.open = hits > 0; d._rendered = true; } });
  }
});
`;

/**
 * One page: the failure first, the subtests, the timeline and the slowest
 * commands, screenshots (inlined), the driver's log, the serial consoles
 * (embedded, rendered on demand; the full text is in console-<machine>.txt
 * next to the page). Written piece by piece, so its size costs no memory.
 */
export function writeHtmlReport(path: string, run: RunResult, record: RecordSink, outDir: string): void {
  const state = run.error === undefined ? `<span class="pass">passed</span>` : `<span class="fail">failed</span>`;
  const out = new FileWriter(path, PIECE_BYTES);
  try {
    out.write(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(run.name)}: ${run.error === undefined ? "passed" : "failed"}</title>
<style>${STYLE}</style></head><body>
<h1>${esc(run.name)} ${state}</h1>
<p>${run.cases.length} case(s), ${run.duration.toFixed(2)} s, ${esc(new Date().toISOString())}</p>
${failureSection(run.error)}
${subtestList(run)}
${timelineSection(run, record.spans, record.spansDropped)}
${slowestSection(record.spans)}
`);
    out.write(screenshotSection(outDir));
    out.write(`<section id="log"><h2>Log</h2><pre>${esc(record.text())}</pre></section>\n`);
    writeSerialSection(out, record, dirname(path));
    out.write(`<script>${SCRIPT}</script>\n</body></html>\n`);
  } finally {
    out.close();
  }
}
