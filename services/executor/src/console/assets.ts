/**
 * The console's only script and stylesheet, served from /console/static/ so the Content-Security-Policy can
 * forbid every inline script and style. They hold no data and no secrets.
 */
export const CONSOLE_JS = String.raw`(() => {
  "use strict";
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  if (!main) return;
  let dirty = false;
  let busy = false;
  const setLive = (text, cls) => { if (live) { live.textContent = text; live.className = "live " + cls; } };
  // Never replace the page under an operator who is typing a rejection reason.
  const editing = () => {
    const a = document.activeElement;
    if (a && main.contains(a) && (a.tagName === "INPUT" || a.tagName === "TEXTAREA")) return true;
    return Array.from(main.querySelectorAll("input[type=text], textarea")).some((e) => e.value !== "");
  };
  async function refresh() {
    if (busy) { dirty = true; return; }
    if (editing()) { dirty = true; setLive("changes waiting until you finish typing", "warn"); return; }
    busy = true;
    dirty = false;
    try {
      const r = await fetch(location.pathname + location.search, { headers: { "x-console-partial": "1" }, credentials: "same-origin", cache: "no-store" });
      if (r.status === 401) { location.href = "/console/login"; return; }
      if (r.ok) {
        const html = await r.text();
        // The operator may have started typing while the fetch was on its way: keep what they typed.
        if (editing()) { dirty = true; setLive("changes waiting until you finish typing", "warn"); return; }
        main.innerHTML = html;
        setLive("live, updated " + new Date().toLocaleTimeString(), "ok");
      }
    } catch (e) {
      setLive("reconnecting", "warn");
    } finally {
      busy = false;
      if (dirty) setTimeout(refresh, 150);
    }
  }
  main.addEventListener("focusout", () => { if (dirty) setTimeout(refresh, 300); });
  if ("EventSource" in window) {
    const es = new EventSource("/console/events");
    es.addEventListener("change", refresh);
    es.addEventListener("logout", () => { es.close(); location.href = "/console/login"; });
    // A change made between this page's render and the stream opening (or while reconnecting) is fetched here.
    es.onopen = () => { setLive("live", "ok"); refresh(); };
    es.onerror = () => setLive("reconnecting", "warn");
  } else {
    setInterval(refresh, 5000);
  }
})();
`;

export const CONSOLE_CSS = `
:root { --fg:#1b1f24; --muted:#5b6570; --line:#d5dae0; --bg:#f6f7f9; --card:#fff; --ok:#17803d; --warn:#a15c00; --bad:#b42318; --info:#1d4ed8; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; flex-wrap:wrap; align-items:center; gap:8px 18px; padding:10px 20px; background:#111827; color:#f9fafb; }
header.top a { color:#e5e7eb; text-decoration:none; }
header.top a.here { color:#fff; font-weight:600; border-bottom:2px solid #60a5fa; }
header.top .brand { font-weight:700; letter-spacing:.02em; margin-right:8px; }
header.top .who { margin-left:auto; color:#cbd5e1; }
header.top form { margin:0; }
header.top button { background:transparent; color:#e5e7eb; border:1px solid #4b5563; border-radius:4px; padding:3px 10px; cursor:pointer; }
.live { font-size:12px; padding:2px 8px; border-radius:10px; background:#374151; }
.live.ok { background:#14532d; } .live.warn { background:#78350f; }
main { padding:16px 20px 40px; max-width:1200px; }
h1 { font-size:20px; margin:6px 0 14px; } h2 { font-size:16px; margin:22px 0 8px; } h3 { font-size:14px; margin:0 0 6px; }
section.card, article.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:12px 14px; margin-bottom:12px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
pre { background:#f1f3f5; padding:8px; border-radius:4px; white-space:pre-wrap; word-break:break-word; margin:4px 0; }
.muted { color:var(--muted); }
.badge { display:inline-block; white-space:nowrap; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#e5e7eb; color:#111827; }
.badge.model-written { background:#fef3c7; color:var(--warn); font-weight:500; } dd.model-written, pre.model-written { border-left:3px solid #f59e0b; padding-left:6px; }
.s-running, .s-healthy, .s-up, .s-succeeded, .s-approved { background:#dcfce7; color:var(--ok); }
.s-starting, .s-degraded, .s-config_drift, .s-secret_drift, .s-repo_drift, .s-pending, .s-stale, .s-unknown, .s-alert, .s-expired { background:#fef3c7; color:var(--warn); }
.s-exited, .s-down, .s-missing, .s-deploy_failed, .s-failed, .s-unhealthy, .s-crashed, .s-rejected, .s-failed_unknown, .s-action { background:#fee2e2; color:var(--bad); }
.s-passed { background:#dcfce7; color:var(--ok); } .s-refused { background:#fef3c7; color:var(--warn); } .s-missed { background:#fee2e2; color:var(--bad); }
ul.steps { list-style:none; margin:0; padding:0; } ul.steps li { white-space:nowrap; }
.s-stopped, .s-none, .s-report { background:#e5e7eb; color:#374151; }
.node-head { display:flex; gap:12px; align-items:baseline; flex-wrap:wrap; }
.flash { padding:8px 12px; border-radius:4px; margin:14px 20px 0; max-width:1160px; }
.flash.ok { background:#dcfce7; color:#14532d; } .flash.error { background:#fee2e2; color:#7f1d1d; }
.banner { padding:8px 12px; border-radius:4px; background:#fef3c7; color:#78350f; margin-bottom:10px; }
dl.what { display:grid; grid-template-columns: max-content 1fr; gap:2px 14px; margin:6px 0 10px; }
dl.what dt { color:var(--muted); } dl.what dd { margin:0; }
.decide { display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
.decide form { display:flex; gap:6px; align-items:center; margin:0; }
button.approve { background:var(--ok); color:#fff; border:0; border-radius:4px; padding:6px 16px; font-weight:600; cursor:pointer; }
button.reject { background:#fff; color:var(--bad); border:1px solid var(--bad); border-radius:4px; padding:5px 12px; cursor:pointer; }
input[type=text], input[type=password] { padding:5px 8px; border:1px solid var(--line); border-radius:4px; font:inherit; }
.login { max-width:380px; margin:70px auto; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:22px; }
.login label { display:block; margin:10px 0 4px; font-weight:600; }
.login input { width:100%; }
.login button { margin-top:16px; width:100%; background:#111827; color:#fff; border:0; border-radius:4px; padding:8px; font-weight:600; cursor:pointer; }
.error-text { color:var(--bad); }
figure.spend { margin:0; } figcaption { color:var(--muted); font-size:12px; }
svg.chart { display:block; max-width:100%; height:auto; margin:6px 0 12px; font-size:12px; }
svg.chart .track { fill:#eef0f3; } svg.chart .lbl, svg.chart .val, svg.chart .tick, svg.chart .head { fill:#1b1f24; }
svg.chart .head { font-weight:600; }
svg.chart .ok .fill { fill:#22c55e; } svg.chart .warn .fill { fill:#f59e0b; } svg.chart .over .fill { fill:#ef4444; }
svg.chart line.cap { stroke:#b42318; stroke-width:2; stroke-dasharray:4 3; } svg.chart .cap-label { fill:#b42318; }
svg.chart line.axis { stroke:#9ca3af; }
/* A phone: the header wraps onto a second line, wide tables scroll inside their card, long names break. */
section.card, article.card { overflow-x:auto; }
td { overflow-wrap:anywhere; }
@media (max-width: 640px) {
  header.top { padding:8px 12px; gap:6px 12px; }
  header.top .who { margin-left:0; }
  main { padding:12px 10px 32px; }
  .flash { margin:10px 10px 0; }
  dl.what { grid-template-columns: 1fr; }
  /* Drills: one block per drill instead of five narrow columns. */
  table.drills thead { display:none; }
  table.drills, table.drills tbody, table.drills tr, table.drills td { display:block; }
  table.drills tr { padding:8px 0; border-bottom:1px solid var(--line); }
  table.drills td { border:0; padding:2px 4px; }
  table.drills ul.steps li { display:inline; margin-right:10px; white-space:normal; }
}
`;
