// The cluster's web UI: plain JavaScript over the admin API (no framework). Views are
// chosen by the URL's hash: #/overview, #/deployments, #/services, #/invocations,
// #/invocation/<id>, #/state. Every action asks for confirmation in the page.
"use strict";

const view = document.getElementById("view");
const statusLine = document.getElementById("status");

/** Calls the admin API; resolves with the JSON answer, rejects with its message. */
async function api(method, path, body) {
  const init = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    throw new Error((json && json.message) || text || response.statusText);
  }
  return json;
}

/** Rows of one SQL query (POST /query). */
async function sql(query) {
  return (await api("POST", "/query", { query })).rows;
}

/** `text` as a SQL string literal. */
function literal(text) {
  return "'" + String(text).replace(/'/g, "''") + "'";
}

function escapeHtml(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function say(message, isError) {
  statusLine.textContent = message || "";
  statusLine.className = isError ? "error" : "";
}

/** A table: `columns` are [header, (row) => html]. */
function table(id, columns, rows, empty) {
  if (!rows.length) return `<p id="${id}-empty">${escapeHtml(empty)}</p>`;
  const head = columns.map(([h]) => `<th scope="col">${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r) => "<tr>" + columns.map(([, cell]) => `<td>${cell(r)}</td>`).join("") + "</tr>").join("");
  return `<table id="${id}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Asks in the page; resolves true when confirmed. */
function confirmInPage(text) {
  const box = document.getElementById("confirm");
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  document.getElementById("confirm-text").textContent = text;
  box.hidden = false;
  no.focus();
  return new Promise((resolve) => {
    const done = (answer) => {
      box.hidden = true;
      yes.onclick = null;
      no.onclick = null;
      resolve(answer);
    };
    yes.onclick = () => done(true);
    no.onclick = () => done(false);
  });
}

const views = {
  async overview() {
    const cluster = await api("GET", "/cluster");
    document.getElementById("cluster-name").textContent = cluster.cluster_name ? `(${cluster.cluster_name})` : "";
    const nodes = table("nodes", [
      ["Node", (n) => escapeHtml(n.node_id)],
      ["Name", (n) => escapeHtml(n.name)],
      ["Address", (n) => escapeHtml(n.address)],
      ["Roles", (n) => escapeHtml(n.roles.join(", "))],
      ["Location", (n) => escapeHtml(n.location || "-")],
      ["Liveness", (n) => n.alive ? `<span class="alive">alive</span>` : `<span class="dead">dead</span> ${escapeHtml(n.detail)}`],
      ["Metadata server", (n) => escapeHtml(n.metadata_server_state)],
      ["Log server", (n) => escapeHtml(n.log_server_state)],
    ], cluster.nodes, "No node is registered yet.");
    const partitions = Object.entries(cluster.partitions || {}).map(([id, p]) => ({ id, ...p }));
    const partitionTable = table("partitions", [
      ["Partition", (p) => escapeHtml(p.id)],
      ["Leader", (p) => escapeHtml("N" + p.leader)],
      ["Epoch", (p) => escapeHtml(p.leader_epoch)],
      ["Followers", (p) => escapeHtml(p.followers.map((f) => "N" + f).join(", "))],
      ["Applied LSN (this node)", (p) => escapeHtml((cluster.processors || {})[p.id]?.applied_lsn ?? "-")],
      ["Latest snapshot LSN", (p) => {
        const lsn = (cluster.processors || {})[p.id]?.snapshot_lsn;
        return escapeHtml(lsn ? lsn : (lsn === 0 ? "none" : "-"));
      }],
    ], partitions, "No partition has a leader yet.");
    const logs = Object.entries(cluster.logs || {}).map(([id, chain]) => ({ id, chain }));
    const logTable = table("logs", [
      ["Log", (l) => escapeHtml(l.id)],
      ["Segments (base LSN: provider, replication, nodeset)", (l) => l.chain.segments
        .map((s) => escapeHtml(`${s.base_lsn}: ${s.kind}, r=${s.replication}, [${s.nodeset.map((n) => "N" + n).join(", ")}]`))
        .join("<br>")],
      ["Trim point", (l) => escapeHtml((cluster.log_points || {})[l.id]?.trim_point ?? "-")],
      ["Tail", (l) => escapeHtml((cluster.log_points || {})[l.id]?.tail ?? "-")],
    ], logs, "No log yet.");
    return `<h2>Nodes</h2>${nodes}<h2>Partitions</h2>${partitionTable}<h2>Logs</h2>${logTable}
      <p>Cluster controller: ${escapeHtml(cluster.cluster_controller || "none")}</p>`;
  },

  async deployments() {
    const answer = await api("GET", "/deployments");
    const rows = answer.deployments || [];
    const list = table("deployments", [
      ["Id", (d) => `<code>${escapeHtml(d.id)}</code>`],
      ["Endpoint", (d) => escapeHtml(d.uri)],
      ["Services", (d) => escapeHtml((d.services || []).map((s) => s.name).join(", "))],
      ["", (d) => `<button type="button" data-remove="${escapeHtml(d.id)}">Remove</button>`],
    ], rows, "No deployment is registered.");
    return `<h2>Register a deployment</h2>
      <form id="register-form">
        <label for="register-uri">Deployment URL</label>
        <input id="register-uri" name="uri" type="url" required placeholder="http://host:9080">
        <button type="submit" id="register-submit">Register</button>
      </form>
      <h2>Deployments</h2>${list}`;
  },

  async services() {
    const answer = await api("GET", "/services");
    return "<h2>Services</h2>" + table("services", [
      ["Name", (s) => escapeHtml(s.name)],
      ["Type", (s) => escapeHtml(s.ty)],
      ["Revision", (s) => escapeHtml(s.revision)],
      ["Deployment", (s) => `<code>${escapeHtml(s.deployment_id)}</code>`],
      ["Handlers", (s) => escapeHtml((s.handlers || []).map((h) => h.name).join(", "))],
    ], answer.services || [], "No service is registered.");
  },

  async invocations(params) {
    const service = params.get("service") || "";
    const status = params.get("status") || "";
    const services = await sql("SELECT name FROM sys_service ORDER BY name");
    const where = [];
    if (service) where.push(`target_service_name = ${literal(service)}`);
    if (status) where.push(`status = ${literal(status)}`);
    const rows = await sql(
      "SELECT id, target, status, created_at FROM sys_invocation" +
      (where.length ? " WHERE " + where.join(" AND ") : "") + " ORDER BY created_at DESC LIMIT 200");
    const option = (value, current) => `<option value="${escapeHtml(value)}"${value === current ? " selected" : ""}>${escapeHtml(value || "any")}</option>`;
    const statuses = ["", "pending", "scheduled", "ready", "running", "backing-off", "suspended", "paused", "completed"];
    return `<h2>Invocations</h2>
      <form id="invocation-filter">
        <label for="filter-service">Service</label>
        <select id="filter-service" name="service">${option("", service)}${services.map((s) => option(s.name, service)).join("")}</select>
        <label for="filter-status">Status</label>
        <select id="filter-status" name="status">${statuses.map((s) => option(s, status)).join("")}</select>
        <button type="submit" id="filter-apply">Show</button>
      </form>` + table("invocations", [
      ["Id", (i) => `<a href="#/invocation/${encodeURIComponent(i.id)}">${escapeHtml(i.id)}</a>`],
      ["Target", (i) => escapeHtml(i.target)],
      ["Status", (i) => `<span class="status-${escapeHtml(i.status)}">${escapeHtml(i.status)}</span>`],
      ["Created", (i) => escapeHtml(i.created_at)],
    ], rows, "No invocation matches.");
  },

  async invocation(params, id) {
    const [found] = await sql(`SELECT * FROM sys_invocation WHERE id = ${literal(id)}`);
    if (!found) return `<h2>Invocation ${escapeHtml(id)}</h2><p>No such invocation (it may have been purged).</p>`;
    const journal = await sql(`SELECT index, entry_type, name, completed, invoked_target, invoked_id, sleep_wakeup_at, promise_name FROM sys_journal WHERE id = ${literal(id)} ORDER BY index`);
    const fields = Object.entries(found).map(([k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("");
    const button = (action, label) => `<button type="button" id="${action}-invocation" data-id="${escapeHtml(id)}">${label}</button>`;
    const started = !["pending", "scheduled", "completed"].includes(found.status);
    const actions = found.status === "completed"
      ? button("restart-as-new", "Restart as new") + " " + button("purge", "Purge")
      : [
          started && found.status !== "paused" ? button("pause", "Pause") : "",
          ["paused", "suspended", "backing-off"].includes(found.status) ? button("resume", "Resume") : "",
          button("cancel", "Cancel"),
          button("kill", "Kill"),
        ].filter(Boolean).join(" ");
    return `<h2>Invocation <code id="invocation-id">${escapeHtml(id)}</code></h2>
      <p>${actions}</p>
      <table id="invocation"><tbody>${fields}</tbody></table>
      <h3>Journal</h3>` + table("journal", [
      ["Index", (e) => escapeHtml(e.index)],
      ["Entry", (e) => escapeHtml(e.entry_type)],
      ["Name", (e) => escapeHtml(e.name ?? "")],
      ["Completed", (e) => escapeHtml(e.completed === null || e.completed === undefined ? "" : (e.completed ? "yes" : "no"))],
      ["Details", (e) => escapeHtml([
        e.invoked_target && `calls ${e.invoked_target}${e.invoked_id ? ` (${e.invoked_id})` : ""}`,
        e.sleep_wakeup_at && `wakes up at ${e.sleep_wakeup_at}`,
        e.promise_name && `promise ${e.promise_name}`,
      ].filter(Boolean).join("; "))],
    ], journal, "The journal is empty (or was deleted at completion).");
  },

  async state(params) {
    const service = params.get("service") || "";
    const key = params.get("key") || "";
    let result = "";
    if (service && key) {
      const rows = await sql(`SELECT key, value_utf8, value_length FROM state WHERE service_name = ${literal(service)} AND service_key = ${literal(key)} ORDER BY key`);
      result = table("state", [
        ["Key", (r) => escapeHtml(r.key)],
        ["Value", (r) => r.value_utf8 === null ? `<em>${escapeHtml(r.value_length)} bytes of binary</em>` : `<code>${escapeHtml(r.value_utf8)}</code>`],
      ], rows, `${service}/${key} has no state.`);
    }
    return `<h2>State of a virtual object</h2>
      <form id="state-form">
        <label for="state-service">Service</label><input id="state-service" name="service" type="text" value="${escapeHtml(service)}" required>
        <label for="state-key">Key</label><input id="state-key" name="key" type="text" value="${escapeHtml(key)}" required>
        <button type="submit" id="state-show">Show</button>
      </form>${result}`;
  },
};

/** Renders the view the hash names. */
async function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, query] = hash.split("?");
  const [name, ...rest] = path.split("/");
  const params = new URLSearchParams(query || "");
  const render = views[name] || views.overview;
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.id === `nav-${name}` || (name === "invocation" && link.id === "nav-invocations"));
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  try {
    view.innerHTML = await render(params, decodeURIComponent(rest.join("/")));
    view.dataset.view = name;
    bind(name);
  } catch (error) {
    view.innerHTML = "";
    say(`Could not load this view: ${error.message}`, true);
  }
}

/** Wires the forms and buttons of the view just rendered. */
function bind(name) {
  const registerForm = document.getElementById("register-form");
  if (registerForm) {
    registerForm.onsubmit = async (event) => {
      event.preventDefault();
      const uri = document.getElementById("register-uri").value.trim();
      say(`Discovering ${uri}...`);
      try {
        const answer = await api("POST", "/deployments", { uri });
        say(`Registered ${answer.id}: ${(answer.services || []).map((s) => s.name).join(", ")}`);
        await route();
      } catch (error) {
        say(`Registration failed: ${error.message}`, true);
      }
    };
  }
  for (const button of document.querySelectorAll("[data-remove]")) {
    button.onclick = async () => {
      const id = button.dataset.remove;
      if (!(await confirmInPage(`Remove deployment ${id}? Its services stop being callable unless another deployment serves them.`))) return;
      try {
        await api("DELETE", `/deployments/${encodeURIComponent(id)}?force=true`);
        say(`Removed ${id}.`);
        await route();
      } catch (error) {
        say(`Removing failed: ${error.message}`, true);
      }
    };
  }
  for (const [buttonId, action, effect] of [
    ["cancel-invocation", "cancel", "asked to stop (it can run compensations)"],
    ["kill-invocation", "kill", "killed"],
    ["purge-invocation", "purge", "purged (its result is gone)"],
    ["pause-invocation", "pause", "paused (resume it to run it again)"],
    ["resume-invocation", "resume", "resumed"],
  ]) {
    const button = document.getElementById(buttonId);
    if (!button) continue;
    button.onclick = async () => {
      const id = button.dataset.id;
      const verb = action.charAt(0).toUpperCase() + action.slice(1);
      if (!(await confirmInPage(`${verb} invocation ${id}?`))) return;
      try {
        await api("PATCH", `/invocations/${encodeURIComponent(id)}/${action}`);
        say(`Invocation ${id} ${effect}.`);
        setTimeout(route, 500);
      } catch (error) {
        say(`${action} failed: ${error.message}`, true);
      }
    };
  }
  const restart = document.getElementById("restart-as-new-invocation");
  if (restart) {
    restart.onclick = async () => {
      const id = restart.dataset.id;
      if (!(await confirmInPage(`Start ${id}'s handler again with the same input, as a new invocation?`))) return;
      try {
        const answer = await api("PATCH", `/invocations/${encodeURIComponent(id)}/restart-as-new`);
        location.hash = `#/invocation/${encodeURIComponent(answer.new_invocation_id)}`;
        say(`Restarted ${id} as ${answer.new_invocation_id}.`);
      } catch (error) {
        say(`Restart as new failed: ${error.message}`, true);
      }
    };
  }
  for (const [formId, view] of [["invocation-filter", "invocations"], ["state-form", "state"]]) {
    const form = document.getElementById(formId);
    if (!form) continue;
    form.onsubmit = (event) => {
      event.preventDefault();
      const params = new URLSearchParams(new FormData(form));
      location.hash = `#/${view}?${params}`;
    };
  }
  view.focus();
}

window.addEventListener("hashchange", () => { say(""); route(); });
route();
