// The report's stylesheet, inlined in the page. System fonts only: the page
// may load nothing.
export const STYLESHEET = `
:root {
  --ink: #0f172a; --ink-2: #334155; --muted: #64748b; --line: #e2e8f0; --paper: #f5f7fa; --card: #fff;
  --ran: #2563eb; --cached: #16a34a; --failed: #dc2626; --skipped: #94a3b8; --warn: #b45309;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Liberation Sans", Arial, sans-serif;
  --mono: ui-monospace, "SF Mono", Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
  color-scheme: light;
}
* { box-sizing: border-box; }
html { background: var(--paper); }
body { margin: 0; font: 14px/1.5 var(--sans); color: var(--ink); -webkit-font-smoothing: antialiased; }
main, header.top, footer { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
code { font-family: var(--mono); font-size: 0.92em; }
h1, h2, h3 { margin: 0; line-height: 1.25; }
h2 { font-size: 17px; font-weight: 650; margin-bottom: 14px; }
h2 small { font-size: 12.5px; font-weight: 400; color: var(--muted); margin-left: 8px; }
h3 { font-size: 13px; font-weight: 600; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin-bottom: 10px; }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
.note { color: var(--ink-2); margin: 0 0 14px; }

header.top { padding-top: 30px; padding-bottom: 18px; }
.eyebrow { font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .09em; color: var(--muted); }
h1 { font-size: 30px; font-weight: 700; letter-spacing: -.01em; margin: 4px 0 10px; overflow-wrap: anywhere; }
.meta { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 18px; margin: 0; color: var(--ink-2); font-size: 13px; }
.meta code { background: #e8edf3; padding: 1px 6px; border-radius: 4px; }
.dirty { color: var(--warn); }
.badge { display: inline-block; font-size: 11.5px; font-weight: 650; text-transform: uppercase; letter-spacing: .05em; padding: 2px 9px; border-radius: 999px; }
.run-succeeded { background: #dcfce7; color: #166534; }
.run-failed { background: #fee2e2; color: #991b1b; }
.run-interrupted { background: #fef3c7; color: #92400e; }

.card, .hero, .alert { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 20px 22px; margin-bottom: 18px; box-shadow: 0 1px 2px rgba(15,23,42,.04); }
.two-col { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 18px 28px; align-items: start; }
.two-col.wide-left { grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 18px; }
.two-col.wide-left > .card { margin-bottom: 18px; }
@media (max-width: 820px) { .two-col.wide-left { grid-template-columns: 1fr; } }

.hero { display: flex; flex-wrap: wrap; gap: 22px 40px; align-items: center; padding: 24px 28px; }
.headline { min-width: 240px; }
.headline-value { font-size: 64px; font-weight: 750; line-height: 1; letter-spacing: -.03em; font-variant-numeric: tabular-nums; }
.headline-label { font-size: 15px; font-weight: 600; margin-top: 8px; }
.headline-sub { font-size: 12.5px; color: var(--muted); margin-top: 2px; }
.status-word { font-size: 40px; text-transform: capitalize; display: inline-block; padding: 4px 16px; border-radius: 12px; }
.stats { flex: 1; display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 12px; border-left: 1px solid var(--line); padding-left: 32px; }
.stat-value { font-size: 21px; font-weight: 650; font-variant-numeric: tabular-nums; }
.stat-label { font-size: 12px; color: var(--muted); }
.stat-sub { font-size: 11.5px; color: var(--muted); opacity: .85; }
@media (max-width: 720px) { .stats { border-left: 0; padding-left: 0; } }

.alert h2 { margin-bottom: 8px; }
.alert-error { border-color: #fca5a5; background: #fef2f2; }
.alert-error h2 { color: #991b1b; }
.alert-warn { border-color: #fcd34d; background: #fffbeb; }
.alert-warn h2 { color: var(--warn); }
.alert ul { margin: 0; padding-left: 20px; }
.error-stage + .error-stage { margin-top: 10px; }
.alert pre { margin: 6px 0 0; padding: 10px 12px; background: #fff; border: 1px solid #fecaca; border-radius: 8px; white-space: pre-wrap; overflow-wrap: anywhere; font: 12.5px/1.45 var(--mono); }

.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 6px 20px; margin: 0 0 10px; padding: 0; font-size: 12.5px; color: var(--ink-2); }
.legend li { display: flex; align-items: center; gap: 7px; }
.legend code, .run-card-id code { font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 18px; }
.chart-box { margin: 0; }
.chart-box figcaption { font-size: 13px; font-weight: 600; color: var(--ink-2); margin-bottom: 2px; }
svg.chart { width: 100%; height: auto; display: block; font-family: var(--sans); }
svg.chart .plot { fill: #fbfcfd; }
svg.chart .grid { stroke: #e5e9f0; stroke-width: 1; }
svg.chart .axis { stroke: #94a3b8; stroke-width: 1; }
svg.chart .tick { font-size: 11px; fill: var(--muted); font-variant-numeric: tabular-nums; }
svg.chart .axis-label { font-size: 11.5px; fill: var(--ink-2); }
svg.chart polyline { fill: none; stroke-width: 2.2; stroke-linejoin: round; stroke-linecap: round; }
svg.chart circle { stroke-width: 1.8; }
svg.chart .marker line { stroke-dasharray: 2 3; stroke-width: 1.2; }
svg.chart .marker text { font-size: 10.5px; }

.cm-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.confusion caption { caption-side: bottom; text-align: left; font-size: 11.5px; color: var(--muted); padding-top: 8px; }
table.confusion th { font-size: 12px; font-weight: 600; color: var(--ink-2); padding: 4px 8px; }
table.confusion .cm-corner { font-weight: 400; color: var(--muted); font-size: 11px; text-align: right; }
table.confusion .cm-true { text-align: right; max-width: 180px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
table.confusion .cm-pred { text-align: center; vertical-align: bottom; max-width: 110px; overflow-wrap: anywhere; }
table.confusion .cm-pred span { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3; overflow: hidden; }
table.confusion.compact .cm-pred, table.confusion.dense .cm-pred { max-width: none; padding: 4px 2px; }
table.confusion.compact .cm-pred span, table.confusion.dense .cm-pred span { display: inline-block; writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; max-height: 130px; overflow: hidden; text-overflow: ellipsis; }
.cm-cell { width: 74px; height: 60px; text-align: center; border: 2px solid #fff; border-radius: 6px; }
.cm-cell b { display: block; font-size: 18px; font-weight: 650; }
.cm-cell small { font-size: 11px; opacity: .85; }
.cm-cell .zero { color: #cbd5e1; font-size: 13px; }
.compact .cm-cell { width: 50px; height: 44px; }
.compact .cm-cell b { font-size: 15px; }
.compact .cm-cell small { font-size: 10px; }
.dense .cm-cell { width: 22px; height: 22px; border-width: 1px; }
.stacked > div + div { margin-top: 22px; }
.stacked table.per-class { max-width: 860px; }
.cm-support { font-size: 12px; color: var(--muted); padding-left: 10px; text-align: left; }

table.per-class, table.kv { width: 100%; font-size: 13px; }
table.compare { font-size: 13px; min-width: 60%; }
table.compare td, table.compare thead th.num { min-width: 190px; }
table.per-class th, table.per-class td, table.kv th, table.kv td, table.compare th, table.compare td { padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: left; }
table.per-class thead th, table.compare thead th { font-size: 12px; font-weight: 600; color: var(--muted); border-bottom: 1.5px solid #cbd5e1; }
table.per-class tbody th { font-weight: 600; overflow-wrap: anywhere; }
.num { text-align: right !important; }
td.score { min-width: 92px; }
td.score .track { display: block; height: 4px; margin-top: 3px; border-radius: 2px; background: #e2e8f0; overflow: hidden; }
td.score .track span { display: block; height: 100%; background: #60a5fa; border-radius: 2px; }
tr.worst th::after { content: "lowest F1"; margin-left: 8px; font-size: 10.5px; font-weight: 600; color: var(--failed); }

.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(148px, 1fr)); gap: 12px; }
.mistake { margin: 0; border: 1px solid var(--line); border-radius: 10px; overflow: hidden; background: #fff; }
.thumb { height: 112px; display: flex; align-items: center; justify-content: center; background: #f1f5f9; }
.thumb img { max-width: 100%; max-height: 112px; display: block; object-fit: contain; }
.no-image { font-size: 11.5px; color: var(--muted); padding: 10px; text-align: center; }
.mistake figcaption { padding: 8px 10px 9px; font-size: 12.5px; }
.label-line { display: flex; align-items: baseline; gap: 6px; line-height: 1.4; min-width: 0; }
.label-line .k { font-size: 10.5px; color: var(--muted); width: 54px; flex: none; }
.label-line .true-label, .label-line .pred-label { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.true-label { font-weight: 650; color: #166534; }
.pred-label { font-weight: 650; color: #b91c1c; }
.conf { display: flex; align-items: center; gap: 7px; margin-top: 5px; font-size: 11.5px; color: var(--ink-2); font-variant-numeric: tabular-nums; }
.conf-bar { flex: 1; height: 4px; border-radius: 2px; background: #e2e8f0; overflow: hidden; }
.conf-bar span { display: block; height: 100%; background: #f87171; }
.file { font-size: 11px; color: var(--muted); margin-top: 3px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }

.timeline { display: grid; gap: 2px; }
.tl-row { display: grid; grid-template-columns: minmax(110px, 190px) 1fr 70px; align-items: center; gap: 4px 12px; padding: 5px 0; border-bottom: 1px solid #f1f5f9; }
.tl-name { display: flex; flex-direction: column; min-width: 0; }
.tl-stage { font-weight: 600; overflow-wrap: anywhere; }
.tl-uses { font: 11px var(--mono); color: var(--muted); }
.tl-track { display: flex; align-items: center; gap: 8px; min-width: 0; }
.tl-bar { height: 14px; border-radius: 4px; min-width: 3px; flex: none; }
.tl-time { font-size: 12px; color: var(--ink-2); white-space: nowrap; font-variant-numeric: tabular-nums; }
.tl-status { text-align: right; }
.tl-reason { grid-column: 1 / -1; font-size: 12px; color: var(--muted); padding-left: 2px; overflow-wrap: anywhere; }
.tl-row[data-status="failed"] .tl-reason { color: var(--failed); }
.pill { font-size: 11px; font-weight: 600; padding: 1px 8px; border-radius: 999px; color: #fff; }
.tl-bar.status-ran, .pill.status-ran, .dot.status-ran { background: var(--ran); }
.tl-bar.status-cached, .pill.status-cached, .dot.status-cached { background: var(--cached); }
.tl-bar.status-failed, .pill.status-failed, .dot.status-failed { background: var(--failed); }
.tl-bar.status-skipped, .pill.status-skipped, .dot.status-skipped { background: var(--skipped); }
.tl-summary { margin: 10px 0 0; font-size: 12.5px; color: var(--ink-2); }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 5px; }

table.kv th { font-weight: 500; color: var(--ink-2); width: 40%; overflow-wrap: anywhere; }
table.kv td code { overflow-wrap: anywhere; }
table.metrics th { width: auto; }
.metric-groups { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 8px 28px; }
.metric-group h3 { margin: 4px 0 4px; text-transform: none; letter-spacing: 0; font-size: 13px; color: var(--ink); }
table.metrics th, table.metrics td { padding: 5px 6px; }
.overrides { margin: 10px 0 0; font-size: 12.5px; color: var(--ink-2); }
.overrides code { background: #eef2ff; padding: 1px 5px; border-radius: 4px; }

.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 3px; background: var(--run); margin-right: 7px; vertical-align: -1px; }
.run-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 14px; margin-bottom: 18px; }
.run-card { background: var(--card); border: 1px solid var(--line); border-top: 4px solid var(--run); border-radius: 12px; padding: 14px 16px; }
.run-card.best { box-shadow: 0 0 0 2px var(--run), 0 4px 14px rgba(15,23,42,.08); }
.run-card-id { display: flex; align-items: center; font-size: 12px; color: var(--ink-2); }
.best-tag { margin-left: auto; font-size: 11.5px; font-weight: 700; color: #a16207; }
.run-card-value { font-size: 38px; font-weight: 750; letter-spacing: -.02em; margin-top: 6px; font-variant-numeric: tabular-nums; }
.run-card-label { font-size: 12.5px; color: var(--muted); }
.run-card-params { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 4px; }
.run-card-params code { font-size: 11.5px; background: #f1f5f9; padding: 1px 6px; border-radius: 4px; }
.table-scroll { overflow-x: auto; }
table.compare thead th { white-space: nowrap; }
table.compare tbody.params tr:last-child > * { border-bottom: 1.5px solid #cbd5e1; }
table.compare tbody th { font-weight: 500; color: var(--ink-2); padding-right: 28px; }
.same-metrics { margin: 12px 0 0; font-size: 12.5px; color: var(--muted); line-height: 1.8; }
.same-metrics > span:first-child { font-weight: 600; color: var(--ink-2); }
.same-metric b { font-weight: 600; color: var(--ink-2); font-variant-numeric: tabular-nums; }
table.compare td.best { font-weight: 700; background: #fefce8; }
.star { color: #ca8a04; }
.goal { color: var(--muted); font-size: 11px; }
.runs-title { margin: 28px 0 12px; }
.run-details { background: var(--card); border: 1px solid var(--line); border-left: 4px solid var(--run); border-radius: 12px; margin-bottom: 12px; padding: 0 18px; }
.run-details > summary { cursor: pointer; padding: 14px 0; font-size: 14px; display: flex; align-items: center; gap: 8px; }
.run-details[open] > summary { border-bottom: 1px solid var(--line); margin-bottom: 14px; }
.run-details .card { box-shadow: none; }
.run-details > .meta { margin-bottom: 16px; }

footer { color: var(--muted); font-size: 11.5px; padding-top: 8px; padding-bottom: 28px; }
@media print { html { background: #fff; } .card, .hero { break-inside: avoid; box-shadow: none; } }
`;
