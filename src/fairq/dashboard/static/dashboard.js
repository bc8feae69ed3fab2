// The page's live side: one event stream from the server (SSE), handed to the panels; the banner
// when the broker or the dashboard itself is away. EventSource reconnects by itself, and each new
// connection starts with a snapshot, so nothing here keeps state across a loss.
"use strict";

const $ = (id) => document.getElementById(id);
const fairq = {
  csrf: document.querySelector('meta[name="csrf-token"]').content,
  timeline: new FairqTimeline($("timeline"), $("tooltip"), $("timeline-empty"), $("legend")),
  broker: null, streamUp: false,
};
window.fairq = fairq;

function showState() {
  const link = $("link"), banner = $("banner");
  let problem = null;
  if (!fairq.streamUp) problem = "The dashboard server does not answer; reconnecting…";
  else if (fairq.broker && !fairq.broker.connected)
    problem = `The broker is unreachable (${fairq.broker.problem || "lost"}); reconnecting by itself…`;
  banner.hidden = problem === null;
  banner.textContent = problem || "";
  link.textContent = problem === null ? "live" : fairq.streamUp ? "broker down" : "offline";
  link.className = "pill " + (problem === null ? "live" : "down");
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => { fairq.streamUp = true; showState(); });
  source.addEventListener("error", () => { fairq.streamUp = false; showState(); });
  source.addEventListener("status", (e) => {
    fairq.broker = JSON.parse(e.data);
    $("broker").textContent = fairq.broker.broker;
    showState();
    if (fairq.broker.connected) fairq.deadLetters.refreshQueues();
  });
  source.addEventListener("snapshot", (e) => fairq.timeline.snapshot(JSON.parse(e.data)));
  source.addEventListener("timeline", (e) => fairq.timeline.delta(JSON.parse(e.data)));
  fairq.source = source;
}

$("span").addEventListener("change", (e) => { fairq.timeline.span = Number(e.target.value); fairq.timeline.draw(); });
$("colour").addEventListener("change", (e) => {
  fairq.timeline.colourBy = e.target.value; fairq.timeline.renderLegend(); fairq.timeline.draw();
});
setInterval(() => {
  const p99 = fairq.timeline.lagPercentile(0.99);
  $("lag").textContent = p99 === null ? "" : `events reach this page ${p99 < 1 ? (p99 * 1000).toFixed(0) + " ms" : p99.toFixed(1) + " s"} after they happen (p99)`;
}, 1000);

fairq.deadLetters = new FairqDeadLetters(fairq);
connect();
