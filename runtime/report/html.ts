import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describeFailure } from "../failure.js";
import type { RecordSink } from "../log/record.js";
import { errorText, type RunResult } from "./results.js";

/** Screenshots larger than this are linked, not inlined, to keep the report openable. */
const MAX_INLINE_BYTES = 8 * 1024 * 1024;

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

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

function timeline(run: RunResult): string {
  const total = Math.max(run.duration, 0.001);
  const rows = run.cases
    .map((c) => {
      const left = (100 * c.start) / total;
      const width = Math.max(0.5, (100 * c.seconds) / total);
      const state = c.error === undefined ? "pass" : "fail";
      return `<li class="${state}"><span class="name">${esc(c.name)}</span><span class="track"><span class="bar" style="margin-left:${left.toFixed(2)}%;width:${Math.min(width, 100 - left).toFixed(2)}%"></span></span><span class="time">${c.seconds.toFixed(2)} s</span></li>`;
    })
    .join("");
  return `<section id="timeline"><h2>Subtests</h2><ol>${rows}</ol></section>`;
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

function serialSection(record: RecordSink): string {
  const machines = [...record.serialLines.keys()].sort();
  if (machines.length === 0) return "";
  const blocks = machines
    .map((m) => {
      const lines = record.serialLines.get(m) ?? [];
      const body = lines.map((l) => `<span class="l"><i>${l.at.toFixed(2)}</i>${esc(l.text)}\n</span>`).join("");
      return `<details class="serial" data-machine="${esc(m)}"><summary>${esc(m)} <small>(${lines.length} lines)</small></summary><pre>${body}</pre></details>`;
    })
    .join("");
  return `<section id="serial"><h2>Serial consoles</h2><input id="search" type="search" placeholder="filter lines (text or /regex/)">${blocks}</section>`;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1 .pass{color:#1a7f37}h1 .fail{color:#cf222e}
pre{background:#f6f8fa;padding:.8em;overflow:auto;white-space:pre-wrap;font:12px/1.35 ui-monospace,monospace}
#failure{border-left:4px solid #cf222e;padding-left:1em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}
#timeline ol{list-style:none;padding:0}#timeline li{display:grid;grid-template-columns:18em 1fr 6em;gap:1em;align-items:center;margin:.2em 0}
.track{background:#eee;height:.9em;display:block}.bar{display:block;height:100%}.pass .bar{background:#2da44e}.fail .bar{background:#cf222e}
.fail .name{color:#cf222e;font-weight:600}.time{text-align:right;font-variant-numeric:tabular-nums}
img.screenshot{max-width:100%;border:1px solid #ccc}
#search{width:100%;padding:.4em;margin-bottom:.5em}
.serial pre i{color:#999;font-style:normal;margin-right:1em}
`;

const SCRIPT = `
const input = document.getElementById("search");
if (input) input.addEventListener("input", () => {
  const q = input.value; let re = null;
  if (/^\\/.+\\/$/.test(q)) { try { re = new RegExp(q.slice(1, -1), "i"); } catch {} }
  for (const d of document.querySelectorAll("details.serial")) {
    let hits = 0;
    for (const l of d.querySelectorAll(".l")) {
      const t = l.textContent; const show = q === "" || (re ? re.test(t) : t.toLowerCase().includes(q.toLowerCase()));
      l.hidden = !show; if (show) hits++;
    }
    if (q !== "") d.open = hits > 0;
  }
});
`;

/** One self-contained page: no network, no files beside it (screenshots are inlined). */
export function htmlReport(run: RunResult, record: RecordSink, outDir: string): string {
  const state = run.error === undefined ? `<span class="pass">passed</span>` : `<span class="fail">failed</span>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(run.name)}: ${run.error === undefined ? "passed" : "failed"}</title>
<style>${STYLE}</style></head><body>
<h1>${esc(run.name)} ${state}</h1>
<p>${run.cases.length} case(s), ${run.duration.toFixed(2)} s, ${esc(new Date().toISOString())}</p>
${failureSection(run.error)}
${timeline(run)}
${screenshotSection(outDir)}
<section id="log"><h2>Log</h2><pre>${esc(record.text())}</pre></section>
${serialSection(record)}
<script>${SCRIPT}</script>
</body></html>
`;
}

export function writeHtmlReport(path: string, run: RunResult, record: RecordSink, outDir: string): void {
  writeFileSync(path, htmlReport(run, record, outDir));
}
