// DeRelayL dashboard: polls /api/task/<id> and redraws when a new block arrives.
// Plain JavaScript, no dependencies; every value from the chain goes in as text, never as HTML.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
const WEI = 10n ** 18n;

let taskId = null;
let lastBlock = null;
let lastData = null;
let fetchedAt = 0;
let knownRows = new Set();

// ------------------------------------------------------------------ small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("data-")) el.setAttribute(k, String(v));
    else if (k === "title") el.title = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function ether(wei, digits = 4) {
  if (wei === null || wei === undefined) return "–";
  let v = BigInt(wei);
  const neg = v < 0n;
  if (neg) v = -v;
  const scale = 10n ** BigInt(digits);
  const rounded = (v * scale + WEI / 2n) / WEI;
  const whole = rounded / scale;
  const frac = (rounded % scale).toString().padStart(digits, "0");
  return (neg ? "−" : "") + whole.toString() + (digits ? "." + frac : "");
}

function pct(bp) {
  return bp === null || bp === undefined ? "–" : (bp / 100).toFixed(2) + "%";
}

function signed(bp) {
  return bp === null || bp === undefined ? "–" : (bp > 0 ? "+" : bp < 0 ? "−" : "±") + Math.abs(bp);
}

function hue(address) {
  let x = 0;
  for (const ch of address.toLowerCase()) x = (x * 31 + ch.charCodeAt(0)) % 360;
  return x;
}

function addr(address) {
  if (!address || /^0x0+$/.test(address)) return h("span", { class: "muted" }, "none");
  return h(
    "span",
    { class: "addr", title: address, "data-address": address },
    h("i", { style: `background:hsl(${hue(address)},65%,50%)` }),
    address.slice(0, 6) + "…" + address.slice(-4),
  );
}

function cid(text, keep = 10) {
  if (!text) return h("span", { class: "muted" }, "–");
  return h("span", { class: "cid", title: text, "data-cid": text }, text.slice(0, keep) + "…" + text.slice(-6));
}

function pill(status) {
  return h("span", { class: "pill " + status.replace(/\s+/g, "-") }, status);
}

function when(ts) {
  if (!ts) return "–";
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds <= 0) return "expired";
  const m = Math.floor(seconds / 60);
  const sec = Math.floor(seconds % 60);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m}:${String(sec).padStart(2, "0")}`;
}

function fillBody(table, rows) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) {
    const cols = document.querySelectorAll(`#${table} thead th`).length;
    body.append(h("tr", { class: "empty" }, h("td", { colspan: cols, class: "muted" }, "nothing yet")));
  }
}

function flashIfNew(row, key) {
  if (knownRows.size && !knownRows.has(key)) row.classList.add("new");
  return row;
}

// ------------------------------------------------------------------ charts

function niceTicks(lo, hi, count) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => raw <= st);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

function frame(svg, xd, yd, xfmt, yfmt, xTicks) {
  const W = 640, H = 280, L = 58, R = 14, T = 12, B = 34;
  svg.replaceChildren();
  const x = (v) => L + ((v - xd[0]) / (xd[1] - xd[0] || 1)) * (W - L - R);
  const y = (v) => H - B - ((v - yd[0]) / (yd[1] - yd[0] || 1)) * (H - T - B);
  for (const t of niceTicks(yd[0], yd[1], 5)) {
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: y(t), y2: y(t) }));
    svg.append(s("text", { x: L - 6, y: y(t) + 4, "text-anchor": "end" }, yfmt(t)));
  }
  for (const t of xTicks) {
    svg.append(s("line", { class: "axis", x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
    svg.append(s("text", { x: x(t), y: H - B + 16, "text-anchor": "middle" }, xfmt(t)));
  }
  svg.append(s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  svg.append(s("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  return { x, y, W, H, L, R, T, B };
}

function path(points, step) {
  let d = "";
  points.forEach(([px, py], i) => {
    if (i === 0) d += `M${px.toFixed(1)},${py.toFixed(1)}`;
    else if (step) d += `H${px.toFixed(1)}V${py.toFixed(1)}`;
    else d += `L${px.toFixed(1)},${py.toFixed(1)}`;
  });
  return d;
}

function drawAccuracy(curve) {
  const svg = document.getElementById("accuracy-chart");
  const pts = curve.points;
  const decided = curve.others.filter((o) => o.verdict !== "void");
  const all = pts.map((p) => p.score).concat(decided.map((o) => o.score), curve.champion.map((c) => c.score));
  const lastRound = Math.max(1, ...pts.map((p) => p.round), ...curve.others.map((o) => o.round), ...curve.champion.map((c) => c.round));
  let lo = Math.min(...all) / 100, hi = Math.max(...all) / 100;
  const pad = Math.max(1, (hi - lo) * 0.12);
  lo = Math.max(0, Math.floor(lo - pad));
  hi = Math.min(100, Math.ceil(hi + pad));
  const xt = niceTicks(0, lastRound, Math.min(lastRound, 10)).filter((t) => Number.isInteger(t));
  const f = frame(svg, [0, lastRound], [lo, hi], (t) => String(t), (t) => t + "%", xt);
  svg.append(s("text", { x: f.W - f.R, y: f.H - 4, "text-anchor": "end" }, "round"));

  // the champion: crowned or re-measured in each decided review, held until the next
  const champ = curve.champion.map((c) => [f.x(c.round), f.y(c.score / 100)]);
  champ.push([f.x(lastRound), champ[champ.length - 1][1]]);
  svg.append(s("path", { class: "champion", d: path(champ, true) }));
  svg.append(s("path", { class: "head", d: path(pts.map((p) => [f.x(p.round), f.y(p.score / 100)]), false) }));

  for (const o of curve.others) {
    const voided = o.verdict === "void";
    const cx = f.x(o.round), cy = voided ? f.y(lo) : f.y(Math.max(lo, o.score / 100)), r = 4.5;
    const said = voided ? "below quorum, nothing measured"
      : `child ${pct(o.score)}, champion ${pct(o.champion)}, delta ${signed(o.delta)} bp`;
    const g = s("g", { class: "mark " + o.verdict, "data-round": o.round },
      s("title", {}, `round ${o.round}: ${o.verdict}, ${said}`));
    g.append(s("line", { x1: cx - r, y1: cy - r, x2: cx + r, y2: cy + r }));
    g.append(s("line", { x1: cx - r, y1: cy + r, x2: cx + r, y2: cy - r }));
    svg.append(g);
  }
  const crowned = new Set(curve.champion.filter((c) => c.crowned).map((c) => c.round));
  for (const p of pts) {
    const genesis = p.round === 0;
    const kind = genesis ? "genesis" : "accepted" + (crowned.has(p.round) ? " crowned" : "");
    svg.append(
      s("circle", {
        class: "pt " + kind,
        cx: f.x(p.round), cy: f.y(p.score / 100), r: genesis ? 4.5 : 5,
        "data-round": p.round, "data-score": p.score,
      }, s("title", {}, `${genesis ? "genesis" : "round " + p.round}: ${pct(p.score)}${crowned.has(p.round) && !genesis ? ", crowned the champion" : ""}\n${p.cid}`)),
    );
  }
}

function drawPool(history, check) {
  const svg = document.getElementById("pool-chart");
  if (!history.length) {
    svg.replaceChildren(s("text", { class: "empty", x: 320, y: 140, "text-anchor": "middle" }, "no pool movements yet"));
    return;
  }
  const vals = history.map((p) => Number(BigInt(p.pool) / 10n ** 12n) / 1e6);
  const blocks = history.map((p) => p.block);
  let lo = Math.min(...vals), hi = Math.max(...vals);
  const pad = Math.max((hi - lo) * 0.15, hi * 0.01, 1e-6);
  lo = Math.max(0, lo - pad);
  hi = hi + pad;
  const x0 = blocks[0], x1 = Math.max(blocks[blocks.length - 1], x0 + 1);
  const xt = niceTicks(x0, x1, 6).filter((t) => Number.isInteger(t));
  const digits = hi - lo < 0.01 ? 5 : hi - lo < 1 ? 3 : 2;
  const f = frame(svg, [x0, x1], [lo, hi], (t) => String(t), (t) => t.toFixed(digits), xt);
  svg.append(s("text", { x: f.W - f.R, y: f.H - 4, "text-anchor": "end" }, "block"));
  svg.append(s("text", { x: 6, y: f.T + 4 }, "ETH"));
  const line = history.map((p, i) => [f.x(p.block), f.y(vals[i])]);
  line.push([f.x(x1), line[line.length - 1][1]]);
  const area = path(line, true) + `V${f.y(lo)}H${line[0][0].toFixed(1)}Z`;
  svg.append(s("path", { class: "poolarea", d: area }));
  svg.append(s("path", { class: "poolline", d: path(line, true) }));
  history.forEach((p, i) => {
    const parts = p.parts.map((q) => `  ${q.why}: ${ether(q.delta, 6)}`).join("\n");
    svg.append(s("circle", { class: "pt pool", cx: f.x(p.block), cy: f.y(vals[i]), r: 3, "data-block": p.block },
      s("title", {}, `block ${p.block}, ${when(p.time)}\n${p.why}: pool ${ether(p.pool, 6)} ETH\n${parts}`)));
  });
  const note = document.getElementById("pool-check");
  note.replaceChildren(
    h("span", {}, `now ${ether(check.contract, 6)} ETH in the contract; `),
    check.ok
      ? h("span", { class: "ok" }, "events add up to it ✓")
      : h("span", { class: "bad" }, `events add up to ${ether(check.derived, 6)} ETH ✗`),
  );
}

// ------------------------------------------------------------------ sections

function card(k, v, sub, attrs) {
  return h("div", Object.assign({ class: "card" }, attrs || {}), h("div", { class: "k" }, k), h("div", { class: "v" }, v), h("div", { class: "s" }, sub || "\u00a0"));
}

function timeLeft() {
  if (!lastData || lastData.clock.time_left === null) return null;
  return lastData.clock.time_left - (Date.now() - fetchedAt) / 1000;
}

function drawSummary(d) {
  const st = d.state;
  const left = timeLeft();
  const behind = st.head_score - st.champion_score;
  document.getElementById("summary").replaceChildren(
    card("phase", pill(st.phase), `round ${st.round}`),
    card("holder", addr(st.holder), d.clock.waiting_for),
    card("time left", h("span", { id: "time-left" }, duration(left)), d.clock.ends ? "until " + when(d.clock.ends) : ""),
    card("champion", pct(st.champion_score), st.champion_cid, { title: "what consumers license and children are measured against\n" + st.champion_cid, id: "champion-card", "data-cid": st.champion_cid }),
    card("head", pct(st.head_score), st.head_is_champion ? "is the champion" : `${signed(behind)} bp vs the champion · ${st.head_cid}`, { title: "what the next turn trains on\n" + st.head_cid, id: "head-card", "data-cid": st.head_cid }),
    card("bands", `${d.params.slash_band} / ${d.params.advance_band}`, "bp under the champion: reject / hold", { title: `a child more than ${d.params.slash_band} bp under the champion is rejected and its relayer slashed; more than ${d.params.advance_band} bp under it, held` }),
    card("pool", ether(st.pool) + " ETH", `${d.pool_history.length} movements`),
    card("accepted", `${st.accepted_count} / ${st.submission_count - 1}`, "of submissions"),
    card("queue", String(st.queue_length), `${st.validator_count} validator(s)`),
  );
}

function drawQueue(d) {
  const note = document.getElementById("queue-note");
  note.textContent = d.state.phase === "idle" ? "idle" : `${d.clock.waiting_for}: ${duration(timeLeft())} left`;
  fillBody("queue", d.queue.map((q) =>
    h("tr", { class: q.holder ? "holder" : "", "data-address": q.address },
      h("td", {}, String(q.position + 1)),
      h("td", {}, addr(q.address)),
      h("td", { class: "num" }, ether(q.stake)),
      h("td", {}, q.holder ? h("span", { class: "holder-left" }, d.state.phase === "turn" ? `holds the turn · ${duration(timeLeft())} left` : `holder · ${d.clock.waiting_for}`) : h("span", { class: "muted" }, `after ${q.position}`)),
    )));
  fillBody("validators", d.validators.map((v) =>
    h("tr", { "data-address": v.address, "data-misses": v.misses },
      h("td", {}, String(v.seat)),
      h("td", {}, addr(v.address)),
      h("td", {}, v.round ? `round ${v.round}: ${v.ballot === "none" ? "seated during it" : v.ballot}` : "–"),
      h("td", { class: "num" + (v.misses ? " neg" : "") }, `${v.misses} / ${d.params.max_misses}`),
    )));
}

function badges(e) {
  const out = [];
  if (e.champion) out.push(h("span", { class: "badge champion", title: "the champion: what consumers license" }, "champion"));
  if (e.head) out.push(h("span", { class: "badge head", title: "the head: what the next turn trains on" }, "head"));
  return out;
}

function drawLineage(d) {
  const rows = d.lineage.slice().reverse().map((e) => {
    const key = "l" + e.index + e.status + (e.champion ? "c" : "") + (e.head ? "h" : "");
    return flashIfNew(h("tr", { "data-index": e.index, "data-status": e.status, "data-cid": e.cid, "data-relayer": e.relayer, "data-champion": e.champion ? "1" : "0", "data-head": e.head ? "1" : "0", class: "status-" + e.status },
      h("td", {}, String(e.index)),
      h("td", {}, String(e.round)),
      h("td", {}, pill(e.status)),
      h("td", { class: "num" }, e.status === "void" || e.status === "pending" ? "–" : pct(e.score)),
      h("td", { class: "num", title: e.champion_score === null ? "" : `champion scored ${pct(e.champion_score)} in this review` }, signed(e.delta)),
      h("td", { class: "cid-cell" }, cid(e.cid, 14), " ", badges(e)),
      h("td", {}, e.parent_index === null ? (e.index === 0 ? h("span", { class: "muted" }, "–") : cid(e.parent_cid)) : h("span", { title: e.parent_cid }, "#" + e.parent_index + " ", cid(e.parent_cid, 8))),
      h("td", {}, e.index === 0 ? h("span", { class: "muted" }, "publisher") : addr(e.relayer)),
      h("td", { class: "num" }, e.reward === null ? "–" : ether(e.reward)),
      h("td", { class: "small" }, when(e.submitted_at)),
    ), key);
  });
  fillBody("lineage", rows);
}

function ballotList(items, fmt) {
  if (!items.length) return h("span", { class: "muted" }, "–");
  return h("div", { class: "ballots" }, ...items.map((it) => h("div", {}, addr(it.validator), " ", fmt(it))));
}

function drawRounds(d) {
  fillBody("rounds", d.rounds.map((r) => {
    const money = [];
    for (const f of r.validator_fees) money.push(h("div", {}, "fee ", ether(f.fee, 5), " → ", addr(f.validator)));
    for (const k of r.keeper_bounties) money.push(h("div", {}, "bounty ", ether(k.bounty, 5), " → ", addr(k.keeper)));
    for (const sl of r.slashes) money.push(h("div", { class: "neg" }, `slash (${sl.why}) `, ether(sl.amount, 5), " ← ", addr(sl.address)));
    for (const m of r.misses) money.push(h("div", { class: "neg miss" }, `missed commit (${m.misses} in a row) `, ether(m.amount, 5), " ← ", addr(m.validator)));
    const outcome = r.crowned ? h("span", {}, pill(r.outcome), " ", h("span", { class: "badge champion" }, "crowned")) : pill(r.outcome);
    return flashIfNew(h("tr", { "data-round": r.round, "data-outcome": r.outcome, "data-commits": r.commits.length, "data-reveals": r.reveals.length, "data-misses": r.misses.length, "data-crowned": r.crowned ? "1" : "0" },
      h("td", {}, String(r.round)),
      h("td", {}, addr(r.holder)),
      h("td", {}, outcome),
      h("td", {}, ballotList(r.commits, (c) => h("span", { class: "muted", title: c.commitment }, c.commitment.slice(0, 10) + "…"))),
      h("td", {}, ballotList(r.reveals, (v) => h("span", { title: `child / champion (delta); parent ${pct(v.parent)}, progress ${signed(v.progress)} bp` }, `${pct(v.child)} / ${pct(v.champion)} (${signed(v.delta)})`))),
      h("td", { class: "num" }, pct(r.child_score)),
      h("td", { class: "num" }, pct(r.champion_score)),
      h("td", { class: "num", title: r.progress === null ? "" : `progress over the parent ${signed(r.progress)} bp` }, signed(r.delta)),
      h("td", { class: "num" }, r.reward === null ? "–" : ether(r.reward)),
      h("td", { class: "small" }, money.length ? money : "–"),
    ), "r" + r.round + r.outcome);
  }));
}

function drawPayouts(d) {
  fillBody("payouts", d.payouts.map((p, i) =>
    h("tr", { "data-address": p.address, "data-earned": p.earned, "data-lost": p.stake_lost },
      h("td", {}, String(i + 1)),
      h("td", {}, addr(p.address)),
      h("td", { class: "num" }, h("b", {}, ether(p.earned, 5))),
      h("td", { class: "num" }, ether(p.relayer_rewards, 5)),
      h("td", { class: "num" }, ether(p.validator_fees, 5)),
      h("td", { class: "num" }, ether(p.keeper_bounties, 5)),
      h("td", { class: "num" }, ether(BigInt(p.royalties_settled) + BigInt(p.royalties_pending), 5)),
      h("td", { class: "num" + (p.stake_lost !== "0" ? " neg" : ""), title: `slashed ${ether(p.slashed, 6)}, missed commits ${ether(p.missed_charges, 6)} (${p.missed_reviews})` }, ether(p.stake_lost, 5)),
      h("td", { class: "num", title: "accepted (crowned) / held / rejected / void" }, `${p.accepted_turns}(${p.crowned_turns})/${p.held_turns}/${p.rejected_turns}/${p.void_turns}`),
    )));
}

function drawParams(d) {
  const wei = new Set(["min_stake", "validator_stake", "base_reward", "reward_per_point", "validator_fee", "usage_fee"]);
  const rows = [["publisher", addr(d.publisher)], ["contract", d.contract], ["chain", `${d.chain_id} · ${d.endpoint}`]];
  for (const [k, v] of Object.entries(d.params)) {
    let shown = v;
    if (wei.has(k)) shown = ether(v, 6) + " ETH";
    else if (k.endsWith("_bp") || k.endsWith("_band") || k === "genesis_score" || k === "min_gain") shown = `${v} bp`;
    else if (k.endsWith("_duration") || k.endsWith("_window")) shown = `${v} s`;
    rows.push([k, shown]);
  }
  fillBody("params", rows.map(([k, v]) => h("tr", { "data-param": k }, h("td", {}, k), h("td", { class: k.endsWith("_cid") || k === "contract" ? "mono" : "" }, v))));
}

function render(d) {
  document.body.dataset.task = d.task_id;
  document.getElementById("where").textContent = `${d.contract} · chain ${d.chain_id} · ${d.endpoint}`;
  drawSummary(d);
  drawAccuracy(d.curve);
  drawPool(d.pool_history, d.pool_check);
  drawQueue(d);
  drawLineage(d);
  drawRounds(d);
  drawPayouts(d);
  drawParams(d);
  knownRows = new Set([...d.lineage.map((e) => "l" + e.index + e.status + (e.champion ? "c" : "") + (e.head ? "h" : "")), ...d.rounds.map((r) => "r" + r.round + r.outcome)]);
  document.body.dataset.block = d.block.number;
  document.body.dataset.accepted = d.state.accepted_count;
}

// ------------------------------------------------------------------ polling

function setStatus(text, cls) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = "status " + (cls || "");
}

function showError(message) {
  const el = document.getElementById("error");
  el.hidden = !message;
  el.textContent = message || "";
}

async function poll() {
  try {
    const res = await fetch(`/api/task/${taskId}`, { cache: "no-store" });
    const d = await res.json();
    if (!res.ok) throw new Error(d.error || res.statusText);
    showError(null);
    fetchedAt = Date.now();
    lastData = d;
    if (d.block.number !== lastBlock) {
      lastBlock = d.block.number;
      render(d);
      setStatus(`block ${d.block.number} · ${when(d.block.timestamp)}`, "fresh");
      setTimeout(() => document.getElementById("status").classList.replace("fresh", "live"), 600);
    }
  } catch (err) {
    setStatus("disconnected", "down");
    showError(`cannot read task ${taskId}: ${err.message} (retrying every ${POLL_MS / 1000} s)`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function tick() {
  const el = document.getElementById("time-left");
  if (el) el.textContent = duration(timeLeft());
  if (lastData) {
    for (const cell of document.querySelectorAll(".holder-left")) {
      cell.textContent = lastData.state.phase === "turn" ? `holds the turn · ${duration(timeLeft())} left` : `holder · ${lastData.clock.waiting_for}`;
    }
    const note = document.getElementById("queue-note");
    if (lastData.state.phase !== "idle") note.textContent = `${lastData.clock.waiting_for}: ${duration(timeLeft())} left`;
  }
}

async function start() {
  const m = location.pathname.match(/^\/task\/(\d+)/);
  let info = { count: 0, default: null };
  try {
    info = await (await fetch("/api/tasks", { cache: "no-store" })).json();
  } catch (err) {
    showError(`cannot reach the dashboard server: ${err.message}`);
  }
  taskId = m ? Number(m[1]) : info.default;
  const select = document.getElementById("task-select");
  select.replaceChildren();
  for (let i = 1; i <= info.count; i++) select.append(h("option", { value: i, selected: i === taskId }, String(i)));
  if (!taskId) {
    showError("no task on this contract yet: create one with `derelay task create`");
    setTimeout(start, POLL_MS * 2);
    return;
  }
  document.title = `DeRelayL task ${taskId}`;
  setInterval(tick, 1000);
  poll();
}

document.getElementById("task-select").addEventListener("change", (ev) => {
  location.href = `/task/${ev.target.value}`;
});
start();
