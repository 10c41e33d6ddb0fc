// Kafka view: topics with watermarks and sink lag; the latest messages of one topic.
"use strict";

const FAULT_HEADER = "openpipe-fault";

function lagCell(lag) {
  return el("span", { className: lag > 0 ? "lag-some" : "lag-zero", text: formatCount(lag) });
}

async function showMessages(topic) {
  const box = document.getElementById("messages");
  const limit = Number(document.getElementById("message-limit").value) || 20;
  document.getElementById("messages-title").textContent = `Latest messages of ${topic}`;
  box.replaceChildren(el("p", { className: "muted", text: "reading…" }));
  try {
    const data = await apiJson(`/api/kafka/topics/${encodeURIComponent(topic)}/messages?limit=${limit}`);
    if (!data.messages.length) {
      box.replaceChildren(el("p", { className: "muted", text: "The topic is empty." }));
      return;
    }
    box.replaceChildren(...data.messages.map((m) => el("div", { className: "message" }, [
      el("div", {}, [
        el("span", { className: "badge", text: `p${m.partition} @ ${m.offset}` }),
        el("span", { className: "badge", text: m.timestamp || "no timestamp" }),
        el("span", { className: "badge", text: "key " + (m.key ?? "∅") }),
        ...m.headers.map((h) => el("span", {
          className: "badge" + (h.key === FAULT_HEADER ? " fault" : ""), text: `${h.key}: ${h.value ?? "∅"}` })),
      ]),
      el("pre", { text: m.value === null ? "(tombstone)"
        : m.value.format === "json" ? JSON.stringify(m.value.value, null, 2)
        : `[${m.value.format}${m.value.truncated ? ", truncated" : ""}] ${m.value.value}` }),
    ])));
  } catch (err) {
    box.replaceChildren(el("div", { className: "error", text: err.message }));
  }
}

async function loadTopics() {
  const status = document.getElementById("kafka-status");
  const table = document.getElementById("topics");
  try {
    const data = await apiJson("/api/kafka/topics");
    status.textContent = data.sink_offsets_available
      ? "Lag = high watermark − the sink's stored next offset, per partition."
      : "No sink_offsets table yet: sink lag appears once the sinks have run. " + (data.sink_offsets_error || "");
    table.replaceChildren(el("thead", {}, el("tr", {}, ["topic", "partitions (low–high)", "messages", "sink lag"].map((h) => el("th", { text: h })))));
    const body = el("tbody");
    for (const t of data.topics) {
      body.append(el("tr", {}, [
        el("td", {}, el("a", { href: "#", text: t.name, onclick: (e) => { e.preventDefault(); showMessages(t.name); } })),
        el("td", { text: t.partitions.map((p) => `${p.partition}: ${p.low}–${p.high}`).join("  ") }),
        el("td", { className: "num", text: formatCount(t.messages) }),
        el("td", {}, t.sinks.length ? t.sinks.flatMap((s) => [`${s.sink}: `, lagCell(s.lag), el("br")]) : "—"),
      ]));
    }
    table.append(body);
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
  }
}

document.getElementById("refresh").addEventListener("click", loadTopics);
loadTopics();
