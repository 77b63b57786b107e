import type { CostReport } from "@steward/contracts/task";
import { html, type Html } from "./html.js";

const usd = (n: number): string => `$${n.toFixed(n >= 100 ? 0 : 2)}`;
const r1 = (n: number): string => (Math.round(n * 10) / 10).toString();

/** `ok` under 80 % of the cap, `warn` from 80 %, `over` at or past it: the same thresholds the alerter uses. */
export function capLevel(spent: number, cap: number): "ok" | "warn" | "over" {
  if (cap <= 0) return spent > 0 ? "over" : "ok";
  const f = spent / cap;
  return f >= 1 ? "over" : f >= 0.8 ? "warn" : "ok";
}

interface Bar {
  label: string;
  spent: number;
  cap: number;
}

/**
 * Spend against the caps as inline SVG (no chart library, no script): today's global spend and each agent's
 * against their daily caps as horizontal bars, then spend per day against the global daily cap.
 */
export function spendChart(cost: CostReport): Html {
  const W = 640;
  const labelW = 150;
  const barW = W - labelW - 175;
  const rowH = 26;
  const bars: Bar[] = [
    { label: "all agents", spent: cost.today.global.usd, cap: cost.caps.global_day_usd },
    ...Object.entries(cost.today.by_agent)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([agent, s]) => ({ label: agent, spent: s.usd, cap: cost.caps.per_agent_day_usd })),
  ];
  const todayH = 30 + bars.length * rowH;
  const today = bars.map((b, i) => {
    const y = 24 + i * rowH;
    const scale = Math.max(b.cap, b.spent, 0.000001);
    const w = Math.max(0, Math.min(1, b.spent / scale)) * barW;
    const capX = labelW + (b.cap / scale) * barW;
    const pct = b.cap > 0 ? `${Math.round((b.spent / b.cap) * 100)}%` : "no cap";
    return html`<g class="bar ${capLevel(b.spent, b.cap)}" data-agent="${b.label}">
<text x="0" y="${y + 14}" class="lbl">${b.label}</text>
<rect x="${labelW}" y="${y}" width="${barW}" height="18" class="track"/>
<rect x="${labelW}" y="${y}" width="${r1(w)}" height="18" class="fill"><title>${b.label}: ${usd(b.spent)} of ${usd(b.cap)} today</title></rect>
<line x1="${r1(capX)}" x2="${r1(capX)}" y1="${y - 3}" y2="${y + 21}" class="cap"/>
<text x="${labelW + barW + 8}" y="${y + 14}" class="val">${usd(b.spent)} / ${usd(b.cap)} (${pct})</text>
</g>`;
  });

  const days = cost.by_day.slice(-14);
  const H = 170;
  const top = 20;
  const plotH = H - top - 30;
  const cap = cost.caps.global_day_usd;
  const maxY = Math.max(cap, ...days.map((d) => d.usd), 0.000001) * 1.1;
  const left = 75;
  const slot = days.length ? (W - left - 5) / days.length : 0;
  const y = (v: number): number => top + plotH - (v / maxY) * plotH;
  const dayBars = days.map((d, i) => {
    const x = left + i * slot + slot * 0.15;
    const h = (d.usd / maxY) * plotH;
    return html`<g class="day ${capLevel(d.usd, cap)}"><rect x="${r1(x)}" y="${r1(y(d.usd))}" width="${r1(slot * 0.7)}" height="${r1(h)}" class="fill"><title>${d.day}: ${usd(d.usd)} in ${d.calls} calls</title></rect>
<text x="${r1(x + slot * 0.35)}" y="${H - 12}" class="tick" text-anchor="middle">${d.day.slice(5)}</text></g>`;
  });
  const history = days.length
    ? html`<svg class="chart" role="img" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" aria-label="spend per day against the global daily cap of ${usd(cap)}">
<title>Spend per day against the global daily cap</title>
<line x1="${left}" x2="${W}" y1="${r1(top + plotH)}" y2="${r1(top + plotH)}" class="axis"/>
<text x="0" y="${r1(top + plotH)}" class="tick">$0</text>
${dayBars}
<line x1="${left}" x2="${W}" y1="${r1(y(cap))}" y2="${r1(y(cap))}" class="cap"/>
<text x="0" y="${r1(y(cap) + 4)}" class="tick cap-label">cap ${usd(cap)}</text>
</svg>`
    : html`<p class="muted">No spend recorded yet.</p>`;

  return html`<figure class="spend">
<svg class="chart" role="img" viewBox="0 0 ${W} ${todayH}" width="${W}" height="${todayH}" aria-label="today's spend against the daily caps">
<title>Today's spend against the daily caps</title>
<text x="0" y="14" class="head">Today (caps: ${usd(cost.caps.global_day_usd)} all agents, ${usd(cost.caps.per_agent_day_usd)} per agent, ${usd(cost.caps.per_task_usd)} per task)</text>
${today}
</svg>
${history}
<figcaption>Cost report generated ${cost.generated_at}.</figcaption>
</figure>`;
}
