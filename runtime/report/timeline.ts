import type { Span } from "../log/record.js";
import type { RunResult } from "./results.js";

export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function pct(value: number, total: number): string {
  return ((100 * Math.max(0, value)) / total).toFixed(3);
}

function seconds(s: number): string {
  return s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`;
}

/** Axis ticks at a round step giving about eight marks. */
function ticks(total: number): string {
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const step = steps.find((s) => total / s <= 8) ?? 3600;
  let out = "";
  for (let t = 0; t <= total; t += step)
    out += `<span class="tick" style="left:${pct(t, total)}%">${t >= 60 ? `${(t / 60).toFixed(t % 60 === 0 ? 0 : 1)} min` : `${t} s`}</span>`;
  return out;
}

/**
 * Where the time went: one lane per machine with its boot (start → shell)
 * and each command and wait as a bar of its length, the subtests as bands
 * across all lanes. Bars of two lanes that overlap ran at the same time.
 */
export function timelineSection(run: RunResult, spans: readonly Span[], dropped: number): string {
  const end = Math.max(run.duration, ...spans.map((s) => s.start + s.seconds), 0.001);
  const machines = [...new Set(spans.map((s) => s.machine))].sort();
  const bands = run.cases
    .filter((c) => c.frame !== undefined)
    .map(
      (c) =>
        `<div class="band ${c.error === undefined ? "pass" : "fail"}" style="left:${pct(c.start, end)}%;width:${pct(c.seconds, end)}%" title="subtest ${esc(c.name)}: ${seconds(c.seconds)}"><span>${esc(c.name)}</span></div>`,
    )
    .join("");
  const lanes = machines
    .map((m) => {
      const bars = spans
        .filter((s) => s.machine === m)
        .map((s) => {
          const cls = s.kind === "boot" ? "boot" : s.failed ? "cmd fail" : "cmd";
          const title = `${m}: ${s.label} — ${seconds(s.seconds)} (from ${s.start.toFixed(2)} s)`;
          return `<div class="span ${cls}" style="left:${pct(s.start, end)}%;width:${pct(s.seconds, end)}%" data-start="${s.start.toFixed(3)}" data-seconds="${s.seconds.toFixed(3)}" title="${esc(title)}"><span>${esc(s.label)}</span></div>`;
        })
        .join("");
      return `<div class="lane" data-machine="${esc(m)}"><div class="lane-name">${esc(m)}</div><div class="track">${bars}</div></div>`;
    })
    .join("");
  const note = dropped > 0 ? `<p class="note">${dropped} short spans are not drawn.</p>` : "";
  const empty = machines.length === 0 ? `<p class="note">No machine ran a command.</p>` : "";
  return `<section id="timeline"><h2>Timeline</h2>${note}${empty}<div class="tl"><div class="lane axis"><div class="lane-name"></div><div class="track">${ticks(end)}</div></div><div class="lane subtests"><div class="lane-name">subtests</div><div class="track">${bands}</div></div>${lanes}<div class="bands">${bands.replace(/<span>.*?<\/span>/g, "")}</div></div></section>`;
}

/** The ten slowest commands and waits, slowest first. */
export function slowestSection(spans: readonly Span[]): string {
  const slowest = spans
    .filter((s) => s.kind === "command")
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, 10);
  if (slowest.length === 0) return "";
  const rows = slowest
    .map(
      (s) =>
        `<tr class="${s.failed ? "fail" : "pass"}"><td class="time">${seconds(s.seconds)}</td><td class="machine">${esc(s.machine)}</td><td class="command"><code>${esc(s.label)}</code></td><td class="time">${s.start.toFixed(2)} s</td></tr>`,
    )
    .join("");
  return `<section id="slowest"><h2>Slowest commands</h2><table><thead><tr><th>time</th><th>machine</th><th>command</th><th>started at</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

export const TIMELINE_STYLE = `
.tl{position:relative;margin:1em 0;font-size:12px}
.tl .lane{display:grid;grid-template-columns:8em 1fr;align-items:center;height:1.8em;border-bottom:1px solid #eee}
.tl .lane[data-machine]{height:2.6em}
.tl .lane-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;font-weight:600}
.tl .track{position:relative;height:100%}
.tl .axis{height:1.4em;color:#777}.tl .tick{position:absolute;top:0;border-left:1px solid #ccc;padding-left:2px;white-space:nowrap}
.tl .span,.tl .band{position:absolute;top:15%;height:70%;min-width:2px;overflow:hidden;white-space:nowrap;box-sizing:border-box;border-radius:2px}
.tl .span span,.tl .band span{padding:0 3px;font-size:11px;line-height:1.5}
.tl .lane[data-machine] .cmd{top:6%;height:54%}
.tl .boot{background:#8c959f;color:#fff;top:64%;height:32%;z-index:1}.tl .boot span{font-size:10px;line-height:1.1;display:block}.tl .cmd{background:#54aeff;border-right:1px solid #fff}.tl .cmd.fail{background:#cf222e;color:#fff}
.tl .subtests .band{background:#dafbe1;border:1px solid #2da44e}.tl .subtests .band.fail{background:#ffebe9;border-color:#cf222e}
.tl .bands{position:absolute;left:8em;right:0;top:0;bottom:0;pointer-events:none}
.tl .bands .band{top:0;height:100%;background:rgba(45,164,78,.06);border-left:1px dashed #2da44e;border-right:1px dashed #2da44e;border-radius:0}
.tl .bands .band.fail{background:rgba(207,34,46,.06);border-color:#cf222e}
#slowest table{border-collapse:collapse;width:100%}#slowest td,#slowest th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
#slowest tr.fail .command{color:#cf222e}
`;
