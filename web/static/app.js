// The cluster overview: polls /api/cluster and /api/experiments on this node,
// which forwards to the leader; when there is no leader it shows this node's own view.
"use strict";

function text(tag, s, cls) {
  const el = document.createElement(tag);
  el.textContent = s;
  if (cls) el.className = cls;
  return el;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json();
  if (!r.ok) throw body;
  return body;
}

async function refreshCluster() {
  let ci, stale = false;
  try {
    ci = await getJSON("/api/cluster");
  } catch (e) {
    ci = await getJSON("/api/cluster?stale=true");
    stale = true;
  }
  document.getElementById("leader").textContent = ci.leader
    ? "leader: " + ci.leader.name + " (term " + ci.term + ")"
    : "no leader" + (stale ? " — showing this node's view" : "");
  const voters = ci.members.filter(m => m.voter).length;
  document.getElementById("summary").textContent = ci.members.length + " members, " + voters + " voters";
  const tbody = document.querySelector("#members tbody");
  tbody.replaceChildren(...ci.members.map(m => {
    const tr = document.createElement("tr");
    tr.append(
      text("td", (m.name || m.node_id) + (m.leader ? " ★" : "")),
      text("td", m.worker ? "worker" : "—"),
      text("td", m.voter ? "yes" : "no"),
      text("td", m.health, m.health),
      text("td", m.experiment || "—"),
      text("td", m.http_addr || "—"));
    return tr;
  }));
}

async function refreshExperiments() {
  const exps = await getJSON("/api/experiments?stale=true");
  document.getElementById("experiments").replaceChildren(
    ...exps.map(e => text("li", e.experiment + (e.description ? " — " + e.description : ""))));
}

document.getElementById("new-exp").addEventListener("submit", async ev => {
  ev.preventDefault();
  const input = document.getElementById("exp-name");
  const err = document.getElementById("exp-error");
  err.textContent = "";
  const r = await fetch("/api/experiments", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ experiment: input.value }),
  });
  if (!r.ok) {
    const e = await r.json();
    err.textContent = e.error + ": " + e.cause + ". " + e.remediation;
    return;
  }
  input.value = "";
  refreshExperiments();
});

async function tick() {
  try { await refreshCluster(); await refreshExperiments(); } catch (e) { /* node restarting: retry */ }
  setTimeout(tick, 1000);
}
tick();
