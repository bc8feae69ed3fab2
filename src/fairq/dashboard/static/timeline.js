// The live timeline: one lane per worker slot, a bar per task run, drawn on a canvas.
// Data comes from the server's stream (dashboard.js hands it over): a snapshot, then deltas.
// Times are the workers' clocks (seconds); `skew` maps this browser's clock onto the server's.
"use strict";

const OUTCOME_COLOURS = {
  running: "#4aa3ff", ok: "#46b46d", failed: "#e3a13a", retried: "#e3a13a",
  dead: "#e5534b", back: "#7d8893", unknown: "#5c6670",
};
const OUTCOME_LABELS = {
  running: "running", ok: "succeeded", failed: "failed", retried: "failed, retried",
  dead: "dead-lettered", back: "handed back", unknown: "end not seen",
};
const LANE_H = 18, AXIS_H = 22, GUTTER = 230, LOST_AFTER_BEATS = 3;

// A task's colour from its place in the list of names; no red, which says failure.
const PALETTE = ["#4aa3ff", "#b07cff", "#3fc1b0", "#f0b35e", "#e872b8", "#9ccc65", "#7f8cff", "#56c2e6"];
function taskColour(index, running) {
  if (index < PALETTE.length && !running) return PALETTE[index];
  const hue = index < PALETTE.length ? null : (40 + index * 137.508) % 360;
  return hue === null ? PALETTE[index] + "c0" : `hsl(${hue}, 55%, ${running ? 64 : 55}%)`;
}

class Timeline {
  constructor(canvas, tooltip, empty, legend) {
    this.canvas = canvas; this.tooltip = tooltip; this.empty = empty; this.legend = legend;
    this.names = []; this.lanes = new Map(); this.procs = new Map(); this.bars = new Map();
    this.laneBars = new Map(); this.span = 60; this.colourBy = "task"; this.skew = 0; this.skews = [];
    this.lags = []; this.order = []; this.dirtyOrder = true;
    canvas.addEventListener("mousemove", (e) => this.hover(e));
    canvas.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
    window.addEventListener("resize", () => this.draw());
    setInterval(() => this.draw(), 100);
    setInterval(() => this.prune(), 1000);
  }

  now() { return Date.now() / 1000 + this.skew; }

  clock(serverNow) {
    // The server's clock minus ours, the largest of the last few (the least delayed message).
    this.skews.push(serverNow - Date.now() / 1000);
    if (this.skews.length > 50) this.skews.shift();
    this.skew = Math.max(...this.skews);
  }

  snapshot(data) {
    this.names = data.names.slice(); this.lanes.clear(); this.procs.clear(); this.bars.clear(); this.laneBars.clear();
    this.clock(data.now);
    this.addLanes(data.lanes); this.addProcs(data.procs); this.addBars(data.bars, false);
    this.renderLegend(); this.draw();
  }

  delta(data) {
    this.clock(data.now);
    if (data.names) { for (const [i, name] of Object.entries(data.names)) this.names[Number(i)] = name; this.renderLegend(); }
    if (data.lanes) this.addLanes(data.lanes);
    if (data.procs) this.addProcs(data.procs);
    if (data.bars) this.addBars(data.bars, true);
    if (data.ends) {
      const seen = Date.now() / 1000;
      for (const [id, end, outcome] of data.ends) {
        const bar = this.bars.get(id);
        if (!bar) continue;
        if (bar.end === null && end !== null) this.lag(seen + this.skew - end);
        bar.end = end; bar.outcome = outcome;
      }
    }
  }

  addLanes(rows) {
    for (const [id, worker, process, slot] of rows) {
      if (!this.lanes.has(id)) { this.lanes.set(id, { id, worker, process, slot }); this.laneBars.set(id, []); }
    }
    this.dirtyOrder = true;
  }

  addProcs(rows) {
    for (const [worker, process, node, host, slots, held, state, lastSeen, interval] of rows) {
      this.procs.set(worker + "\u0000" + process, { worker, process, node, host, slots, held, state, lastSeen, interval });
    }
    this.dirtyOrder = true;
  }

  addBars(rows, live) {
    const seen = Date.now() / 1000;
    for (const [id, lane, start, end, task, outcome, messageId, queue, attempt, wait] of rows) {
      const known = this.bars.get(id);
      if (known) { known.end = end; known.outcome = outcome; continue; }
      const bar = { id, lane, start, end, task, outcome, messageId, queue, attempt, wait, seen };
      this.bars.set(id, bar);
      const list = this.laneBars.get(lane);
      if (list) list.push(bar);
      if (live) this.lag(seen + this.skew - (end === null ? start : end));
    }
  }

  lag(seconds) {
    this.lags.push(seconds);
    if (this.lags.length > 20000) this.lags.splice(0, 10000);
  }

  lagPercentile(p) {
    const recent = this.lags.slice(-2000).sort((a, b) => a - b);
    return recent.length ? recent[Math.min(recent.length - 1, Math.floor(p * recent.length))] : null;
  }

  prune() {
    const cutoff = this.now() - 300;
    for (const [lane, list] of this.laneBars) {
      if (!list.length || (list[0].end === null || list[0].end >= cutoff)) continue;
      const kept = list.filter((b) => b.end === null || b.end >= cutoff);
      for (const b of list) if (b.end !== null && b.end < cutoff) this.bars.delete(b.id);
      this.laneBars.set(lane, kept);
    }
  }

  procOf(lane) { return this.procs.get(lane.worker + "\u0000" + lane.process); }

  procState(proc, now) {
    if (!proc) return "live";
    if (proc.state === "offline") return "offline";
    return now - proc.lastSeen > LOST_AFTER_BEATS * (proc.interval || 2) + 1 ? "lost" : "live";
  }

  // Lanes shown: every live process's slots; a stopped or lost one's while its bars are in view.
  visibleLanes(now) {
    if (this.dirtyOrder) {
      this.order = [...this.lanes.values()].sort((a, b) =>
        a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : a.process - b.process || a.slot - b.slot);
      this.dirtyOrder = false;
    }
    const t0 = now - this.span;
    return this.order.filter((lane) => {
      if (this.procState(this.procOf(lane), now) === "live") return true;
      return (this.laneBars.get(lane.id) || []).some((b) => b.end === null || b.end >= t0);
    });
  }

  colour(bar) {
    if (this.colourBy === "outcome") return OUTCOME_COLOURS[bar.outcome] || OUTCOME_COLOURS.unknown;
    return taskColour(bar.task, bar.outcome === "running");
  }

  draw() {
    const canvas = this.canvas, now = this.now(), lanes = this.visibleLanes(now);
    this.shown = lanes;
    this.empty.hidden = lanes.length > 0;
    const ratio = window.devicePixelRatio || 1, width = canvas.clientWidth || 800;
    const height = AXIS_H + Math.max(lanes.length, 1) * LANE_H + 4;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
      canvas.style.height = height + "px";
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const plot = width - GUTTER - 8, t0 = now - this.span, scale = plot / this.span;
    this.geometry = { t0, scale, plot };
    this.drawAxis(ctx, now, t0, scale, height);
    let previous = null;
    lanes.forEach((lane, row) => {
      const y = AXIS_H + row * LANE_H, proc = this.procOf(lane), state = this.procState(proc, now);
      const first = !previous || previous.worker !== lane.worker || previous.process !== lane.process;
      previous = lane;
      if (first && row > 0) { ctx.fillStyle = "#2a3440"; ctx.fillRect(0, y, width, 1); }
      if (row % 2) { ctx.fillStyle = "rgba(255,255,255,0.02)"; ctx.fillRect(GUTTER, y, plot, LANE_H); }
      ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle";
      ctx.fillStyle = state === "live" ? "#d8dee6" : "#6b7681";
      const label = first ? `${lane.worker}/${lane.process}` : "";
      ctx.fillText(label.length > 22 ? "…" + label.slice(-21) : label, 6, y + LANE_H / 2);
      ctx.fillStyle = "#8a96a3"; ctx.fillText(`#${lane.slot}`, GUTTER - 80, y + LANE_H / 2);
      if (first && state !== "live") {
        ctx.fillStyle = state === "lost" ? "#ffb3ad" : "#8a96a3"; ctx.fillText(state, GUTTER - 56, y + LANE_H / 2);
      } else if (first && proc && proc.held > 0) {
        ctx.fillStyle = "#e3a13a"; ctx.fillText(`held ${proc.held}`, GUTTER - 56, y + LANE_H / 2);
      }
      this.drawBars(ctx, this.laneBars.get(lane.id) || [], y, now, t0, scale);
    });
  }

  drawAxis(ctx, now, t0, scale, height) {
    const steps = [5, 10, 15, 30, 60], step = steps.find((s) => s * scale >= 70) || 60;
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "top";
    for (let ago = 0; ago <= this.span; ago += step) {
      const x = GUTTER + (this.span - ago) * scale;
      ctx.fillStyle = "#2a3440"; ctx.fillRect(x, AXIS_H - 4, 1, height - AXIS_H + 4);
      ctx.fillStyle = "#8a96a3"; ctx.textAlign = ago === 0 ? "right" : "center";
      ctx.fillText(ago === 0 ? "now" : `-${ago}s`, x, 4);
    }
    ctx.textAlign = "left";
  }

  drawBars(ctx, list, y, now, t0, scale) {
    let lastX = -1, lastColour = "";
    for (let i = list.length - 1; i >= 0; i--) {
      const bar = list[i], end = bar.end === null ? now : bar.end;
      if (end < t0) { if (bar.start < t0 - 600) break; continue; }
      const x1 = GUTTER + Math.max(bar.start - t0, 0) * scale, x2 = GUTTER + (Math.min(end, now) - t0) * scale;
      const colour = this.colour(bar), w = x2 - x1 > 3 ? x2 - x1 - 1 : Math.max(x2 - x1, 1);  // a gap between runs
      if (Math.round(x1) === lastX && colour === lastColour && w <= 1) continue;
      lastX = Math.round(x1); lastColour = colour;
      ctx.fillStyle = colour; ctx.fillRect(x1, y + 3, w, LANE_H - 6);
      if (this.colourBy === "task" && bar.outcome !== "ok" && bar.outcome !== "running") {
        ctx.fillStyle = OUTCOME_COLOURS[bar.outcome] || OUTCOME_COLOURS.unknown;
        ctx.fillRect(x1, y + LANE_H - 6, w, 3);
      }
    }
  }

  barAt(clientX, clientY) {
    if (!this.geometry || !this.shown) return null;
    const rect = this.canvas.getBoundingClientRect(), x = clientX - rect.left, y = clientY - rect.top;
    const lane = this.shown[Math.floor((y - AXIS_H) / LANE_H)];
    if (!lane || x < GUTTER) return null;
    const t = this.geometry.t0 + (x - GUTTER) / this.geometry.scale, slack = 2 / this.geometry.scale, now = this.now();
    const list = this.laneBars.get(lane.id) || [];
    for (let i = list.length - 1; i >= 0; i--) {
      const b = list[i];
      if (b.start - slack <= t && t <= (b.end === null ? now : b.end) + slack) return { bar: b, lane, x, y };
    }
    return null;
  }

  hover(event) {
    const hit = this.barAt(event.clientX, event.clientY);
    if (!hit) { this.tooltip.hidden = true; return; }
    const b = hit.bar, ran = (b.end === null ? this.now() : b.end) - b.start;
    const lines = [this.names[b.task] || "?", `message ${b.messageId}`,
      `${hit.lane.worker}/${hit.lane.process} slot ${hit.lane.slot}`,
      `${OUTCOME_LABELS[b.outcome] || b.outcome}, ${b.end === null ? "running for" : "ran"} ${ran.toFixed(2)} s`];
    if (b.wait !== null && b.wait !== undefined) lines.push(`waited ${b.wait.toFixed(3)} s in ${b.queue || "its queue"}`);
    if (b.attempt > 1) lines.push(`attempt ${b.attempt}`);
    this.tooltip.textContent = lines.join("\n");
    this.tooltip.hidden = false;
    this.tooltip.style.left = Math.min(hit.x + 12, this.canvas.clientWidth - 260) + "px";
    this.tooltip.style.top = hit.y + 14 + "px";
  }

  renderLegend() {
    this.legend.replaceChildren();
    const add = (colour, text) => {
      const item = document.createElement("span"), swatch = document.createElement("i");
      swatch.style.background = colour; item.append(swatch, text); this.legend.append(item);
    };
    if (this.colourBy === "outcome") {
      for (const key of ["running", "ok", "retried", "dead", "back", "unknown"]) add(OUTCOME_COLOURS[key], OUTCOME_LABELS[key]);
    } else {
      this.names.slice(0, 24).forEach((name, i) => { if (name !== undefined) add(taskColour(i, false), name); });
      add(OUTCOME_COLOURS.dead, "underline: failed / dead-lettered");
    }
    const hoard = document.createElement("span");
    hoard.textContent = "held N: tasks a process holds that no slot has started"; this.legend.append(hoard);
  }

  // What a test or a benchmark reads: the bars drawn now, with their lanes.
  visibleBars() {
    const now = this.now(), t0 = now - this.span, out = [];
    for (const lane of this.visibleLanes(now)) {
      for (const b of this.laneBars.get(lane.id) || []) {
        if (b.end !== null && b.end < t0) continue;
        out.push({ worker: lane.worker, process: lane.process, slot: lane.slot, task: this.names[b.task],
          messageId: b.messageId, start: b.start, end: b.end, outcome: b.outcome, seen: b.seen });
      }
    }
    return out;
  }
}

window.FairqTimeline = Timeline;
