// The dead-letter panel: pick a queue, read each dead letter whole, replay one or all, purge.
// Everything shown is set as text, never as markup: a dead letter's arguments are anyone's input.
"use strict";

class FairqDeadLetters {
  constructor(fairq) {
    this.fairq = fairq; this.queue = null; this.counts = new Map(); this.letters = [];
    const $ = (id) => document.getElementById(id);
    this.el = { select: $("dlq-queue"), body: document.querySelector("#dlq-table tbody"), empty: $("dlq-empty"),
      message: $("dlq-message"), detail: $("dlq-detail"), dialog: $("purge-dialog"), question: $("purge-question") };
    this.el.select.addEventListener("change", () => { this.queue = this.el.select.value || null; this.load(); });
    $("dlq-refresh").addEventListener("click", () => { this.refreshQueues(); this.load(); });
    $("dlq-replay-all").addEventListener("click", () => this.replay(null));
    $("dlq-purge").addEventListener("click", () => this.askPurge());
    this.el.dialog.addEventListener("close", () => { if (this.el.dialog.returnValue === "purge") this.purge(); });
    setInterval(() => this.refreshQueues(), 5000);
  }

  say(text, bad = false) { this.el.message.textContent = text; this.el.message.className = "message" + (bad ? " error" : ""); }

  async request(path, body) {
    const options = body === undefined ? {} : { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.fairq.csrf } };
    const response = await fetch(path, options);
    const data = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  async refreshQueues() {
    let data;
    try { data = await this.request("/api/deadletters"); } catch (e) { return; }
    const select = this.el.select, before = this.queue;
    const changed = data.queues.some((q) => this.counts.get(q.queue) !== q.dead) || data.queues.length !== this.counts.size;
    this.counts = new Map(data.queues.map((q) => [q.queue, q.dead]));
    if (!changed) return;
    select.replaceChildren();
    for (const q of data.queues) {
      const option = document.createElement("option");
      option.value = q.queue; option.textContent = `${q.queue} (${q.dead})`;
      select.append(option);
    }
    if (!data.queues.length) { this.queue = null; this.show([], 0); return; }
    const pick = data.queues.find((q) => q.queue === before) || data.queues.find((q) => q.dead > 0) || data.queues[0];
    this.queue = pick.queue; select.value = pick.queue;
    this.load();
  }

  async load() {
    if (!this.queue) return;
    try {
      const data = await this.request("/api/deadletters/letters?queue=" + encodeURIComponent(this.queue));
      this.show(data.letters, data.total);
    } catch (e) { this.say(`cannot read ${this.queue}.dlq: ${e.message}`, true); }
  }

  cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    row.append(td);
    return td;
  }

  show(letters, total) {
    this.letters = letters;
    const body = this.el.body;
    body.replaceChildren();
    this.el.empty.hidden = letters.length > 0;
    this.el.detail.hidden = true;
    this.el.detail.parentElement.classList.remove("with-detail");
    letters.forEach((letter, index) => {
      const row = document.createElement("tr");
      row.dataset.messageId = letter.message_id || "";
      this.cell(row, letter.message_id, "mono");
      this.cell(row, letter.task, "nowrap");
      this.cell(row, letter.reason, "nowrap");
      const error = letter.error_type ? `${letter.error_type}: ${letter.error_message || ""}` : null;
      this.cell(row, error, "error").title = error || "";
      this.cell(row, letter.attempts, "num");
      this.cell(row, letter.dead_at ? letter.dead_at.replace("T", " ").slice(0, 19) : null, "nowrap");
      const td = document.createElement("td"), button = document.createElement("button");
      button.type = "button"; button.textContent = "Replay"; button.className = "replay";
      button.disabled = !letter.message_id;
      button.addEventListener("click", (e) => { e.stopPropagation(); this.replay(letter.message_id); });
      td.append(button); row.append(td);
      row.addEventListener("click", () => this.detail(index, row));
      body.append(row);
    });
    if (total > letters.length) this.say(`showing the oldest ${letters.length} of ${total}`);
  }

  detail(index, row) {
    const letter = this.letters[index], $ = (id) => document.getElementById(id);
    for (const other of this.el.body.children) other.classList.toggle("selected", other === row);
    $("dlq-detail-title").textContent = `${letter.task} — ${letter.reason}`;
    const fields = $("dlq-detail-fields");
    fields.replaceChildren();
    for (const [name, value] of [["message id", letter.message_id], ["queue", letter.queue], ["error", letter.error_type ?
      `${letter.error_type}: ${letter.error_message || ""}` : null], ["attempts", letter.attempts], ["worker", letter.worker],
      ["sent", letter.sent_at], ["dead at", letter.dead_at], ["bytes", letter.size]]) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = name; dd.textContent = value === null || value === undefined ? "–" : String(value);
      fields.append(dt, dd);
    }
    $("dlq-detail-args").textContent = letter.args !== null ?
      JSON.stringify({ args: letter.args, kwargs: letter.kwargs }, null, 2) : (letter.body || "–");
    $("dlq-detail-traceback").textContent = letter.traceback || "–";
    this.el.detail.hidden = false;
    this.el.detail.parentElement.classList.add("with-detail");
  }

  async replay(messageId) {
    if (!this.queue) return;
    try {
      const data = await this.request("/api/deadletters/replay", messageId ? { queue: this.queue, message_id: messageId } : { queue: this.queue });
      this.say(`replayed ${data.replayed} dead letter${data.replayed === 1 ? "" : "s"} to ${data.queue}`);
    } catch (e) { this.say(`replay failed: ${e.message}`, true); }
    this.counts.clear(); this.refreshQueues();
  }

  askPurge() {
    if (!this.queue) return;
    const n = this.counts.get(this.queue) || 0;
    this.el.question.textContent = `Delete ${n} dead letter${n === 1 ? "" : "s"} from ${this.queue}.dlq for good?`;
    this.el.dialog.returnValue = "";
    this.el.dialog.showModal();
  }

  async purge() {
    try {
      const data = await this.request("/api/deadletters/purge", { queue: this.queue, confirm: this.queue });
      this.say(`purged ${data.purged} dead letter${data.purged === 1 ? "" : "s"} from ${data.queue}.dlq`);
    } catch (e) { this.say(`purge failed: ${e.message}`, true); }
    this.counts.clear(); this.refreshQueues();
  }
}

window.FairqDeadLetters = FairqDeadLetters;
