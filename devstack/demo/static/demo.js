// The demo app's page: everything an app does to embed notebooks through the orchestrator.
const gatewayUrl = document.querySelector('meta[name="orchestrator-gateway"]').content;
const { JupyterEmbed } = await import(`${gatewayUrl}/static/orchestrator-embed.js`);

const $ = (selector) => document.querySelector(selector);
const state = {
  user: null, path: null, embed: null, events: null, ready: false, lastSave: null, restored: null,
  opening: null,
};
const STREAM_WAIT_MS = 5000;
let openCount = 0;
window.demo = state; // for curious people and for the browser tests

function log(message) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  $("#log").prepend(item);
}

function setStatus(text, kind = "idle") {
  $("#status").textContent = text;
  $("#status").dataset.state = kind;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new Error(error.message || `HTTP ${response.status}`);
  }
  return data;
}

const userPath = (suffix) => `/api/users/${encodeURIComponent(state.user)}${suffix}`;

function renderNotebooks(notebooks) {
  const list = $("#notebooks");
  list.replaceChildren();
  if (notebooks.length === 0) {
    list.innerHTML = '<li class="empty">No saved notebooks yet.</li>';
  }
  for (const notebook of notebooks) {
    const item = document.createElement("li");
    item.dataset.path = notebook.path;
    item.classList.toggle("current", notebook.path === state.path);
    item.innerHTML = `<span></span><button type="button">Open</button>`;
    item.querySelector("span").textContent = notebook.path;
    item.querySelector("button").addEventListener("click", () => openNotebook(notebook.path));
    list.append(item);
  }
}

function versionItem(version) {
  const item = document.createElement("li");
  item.dataset.versionId = version.id;
  item.dataset.origin = version.origin;
  const when = new Date(version.created_at || version.saved_at).toLocaleTimeString();
  item.innerHTML = `<span><code></code> <span class="meta"></span></span>
    <span><button type="button" class="changes">Changes</button>
    <button type="button" class="restore">Restore</button></span>`;
  item.querySelector("code").textContent = version.id.slice(0, 8);
  const summary = version.changes ? ` · ${changeText(version.changes)}` : "";
  item.querySelector(".meta").textContent =
    `${when} · ${version.origin} · ${version.size} B${summary}`;
  item.querySelector(".changes").addEventListener("click", () => showChanges(version.id));
  item.querySelector(".restore").addEventListener("click", () => restoreVersion(version.id));
  return item;
}

// "+1 -1 ~1": cells added, removed and changed (notebook.saved's summary).
function changeText(changes) {
  return `+${changes.cells_added} -${changes.cells_removed} ~${changes.cells_changed}`;
}

// Which cells a version changed against the one before (the gateway's diff).
async function showChanges(versionId) {
  const list = $("#changed-cells");
  $("#changes").hidden = false;
  $("#changes-title").textContent = versionId.slice(0, 8);
  list.innerHTML = '<li class="empty">Comparing…</li>';
  try {
    const diff = await api("GET", `/api/versions/${versionId}/diff`);
    $("#changes-title").textContent =
      `${versionId.slice(0, 8)} vs ${diff.from.id.slice(0, 8)} · ${changeText(diff.summary)}`;
    list.replaceChildren(...diff.cells.map((cell) => {
      const item = document.createElement("li");
      item.dataset.change = cell.change;
      item.innerHTML = '<span class="kind"></span> <code></code>';
      item.querySelector(".kind").textContent = cell.change;
      item.querySelector("code").textContent = cell.preview || "(empty cell)";
      return item;
    }));
  } catch (error) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = error.message;
    list.replaceChildren(item);
  }
}

async function refreshNotebooks() {
  const data = await api("GET", userPath("/notebooks"));
  renderNotebooks(data.notebooks);
}

async function refreshVersions() {
  $("#versions-path").textContent = state.path || "";
  const list = $("#versions");
  if (!state.path) {
    list.innerHTML = '<li class="empty">Open a notebook.</li>';
    return;
  }
  const data = await api("GET", `${userPath("/versions")}?path=${encodeURIComponent(state.path)}`);
  list.replaceChildren(...data.versions.map(versionItem));
  if (data.versions.length === 0) {
    list.innerHTML = '<li class="empty">No versions yet: edit and Save.</li>';
  }
}

// The ``data`` of an event's CloudEvents envelope.
const payload = (event) => JSON.parse(event.data).data;

function onSavedEvent(event) {
  const data = payload(event);
  log(`notebook.saved ${data.path} (${data.origin}) → version ${data.version_id.slice(0, 8)}`);
  refreshNotebooks().catch((error) => log(`could not list notebooks: ${error.message}`));
  if (data.path !== state.path || document.querySelector(`[data-version-id="${data.version_id}"]`)) {
    return;
  }
  const list = $("#versions");
  list.querySelector(".empty")?.remove();
  const item = versionItem({ ...data, id: data.version_id });
  item.classList.add("fresh");
  list.prepend(item);
}

// The bar's value for a phase; ``spawning`` spans 10..90 with the Hub's percentage.
function progressValue(progress) {
  const floors = { queued: 5, waiting_for_spawn_slot: 10, writing: 95, done: 100 };
  if (progress.phase === "spawning") {
    return 10 + 0.8 * (progress.percent ?? 0);
  }
  return floors[progress.phase] ?? 0;
}

function progressText(progress) {
  switch (progress.phase) {
    case "queued":
      return "Waiting for your earlier request…";
    case "waiting_for_spawn_slot":
      return progress.position
        ? `Waiting for a free slot (${progress.position} in line)…`
        : "Waiting for a free slot…";
    case "spawning": {
      const message = progress.message || "Starting your Jupyter server…";
      return progress.percent == null ? message : `${message} (${progress.percent}%)`;
    }
    case "writing":
      return "Opening the notebook…";
    default:
      return "Done";
  }
}

// An open in flight: the bar shows, indeterminate until the first progress event.
function beginProgress() {
  state.opening = { id: ++openCount, commandId: null };
  const bar = $("#open-progress-bar");
  bar.removeAttribute("value");
  bar.dataset.percent = "0";
  $("#open-progress-message").textContent = "Starting…";
  $("#open-progress").hidden = false;
  return state.opening.id;
}

function endProgress(id) {
  if (state.opening?.id === id) {
    state.opening = null;
    $("#open-progress").hidden = true;
  }
}

function onProgressEvent(event) {
  const data = payload(event);
  const opening = state.opening;
  if (!opening || data.command_type !== "open" || data.user !== state.user) {
    return;
  }
  // A command queued behind an earlier one is ours: the earlier one's events are not.
  if (data.progress.phase === "queued" && !opening.commandId) {
    opening.commandId = data.command_id;
  }
  if (opening.commandId && data.command_id !== opening.commandId) {
    return;
  }
  if (data.progress.phase === "done") {
    endProgress(opening.id);
    return;
  }
  const bar = $("#open-progress-bar");
  const value = Math.round(progressValue(data.progress));
  if (value < Number(bar.dataset.percent)) {
    return; // never backwards during one open: events are best effort, a late one is stale
  }
  bar.value = value;
  bar.dataset.percent = String(value);
  $("#open-progress-message").textContent = progressText(data.progress);
}

const clockTime = (iso) =>
  new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

function onCullScheduled(event) {
  const data = payload(event);
  if (data.user !== state.user) {
    return;
  }
  const at = clockTime(data.deadline);
  const notice = $("#cull-notice");
  notice.textContent = data.reason === "max_age"
    ? `This notebook will be closed at ${at}: its server has reached its maximum age`
    : `This notebook will be closed for inactivity at ${at} unless you keep working`;
  notice.dataset.deadline = data.deadline;
  notice.hidden = false;
  log(`server.cull_scheduled (${data.reason}) at ${at}`);
}

function onServerStopped(event) {
  const data = payload(event);
  if (data.user !== state.user) {
    return;
  }
  $("#cull-notice").hidden = true;
  log(`server.stopped (${data.reason})`);
  if (state.opening || !state.embed) {
    return; // an open in flight starts the server again; nothing is shown to close
  }
  const culled = data.reason === "idle" || data.reason === "max_age";
  closeNotebook();
  setStatus(
    culled ? "Closed for inactivity; open it again to continue"
      : "Jupyter stopped; open the notebook again to continue",
    "closed",
  );
}

function subscribe() {
  state.events?.close();
  state.streamOpen = false;
  state.events = new EventSource(userPath("/events"));
  state.events.addEventListener("notebook.saved", onSavedEvent);
  state.events.addEventListener("command.progressed", onProgressEvent);
  state.events.addEventListener("server.ready", (event) => {
    const data = payload(event);
    log(`server.ready${data.seconds == null ? "" : ` after ${data.seconds.toFixed(1)} s`}`);
  });
  state.events.addEventListener("server.spawn_failed", (event) => {
    log(`server.spawn_failed: ${payload(event).reason}`);
  });
  state.events.addEventListener("server.cull_scheduled", onCullScheduled);
  state.events.addEventListener("server.stopped", onServerStopped);
  state.events.addEventListener("open", () => {
    state.streamOpen = true;
    log(`listening to ${state.user}'s events`);
  });
  state.events.addEventListener("error", () => {
    state.streamOpen = false; // the browser reconnects by itself
  });
}

// Resolves once the event stream is connected (or after ``STREAM_WAIT_MS``: progress
// is a nicety, the open goes ahead without it).
function streamConnected() {
  const events = state.events;
  if (!events || events.readyState === EventSource.OPEN) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      log("event stream not connected: opening without progress");
      resolve();
    }, STREAM_WAIT_MS);
    events.addEventListener("open", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

async function loadUser(user) {
  state.user = user;
  state.path = null;
  await closeNotebook();
  subscribe();
  await refreshNotebooks();
  await refreshVersions();
  log(`user ${user} loaded`);
}

function ensureEmbed(launchUrl) {
  const origin = new URL(launchUrl).origin;
  if (state.embed && state.embed.jupyterOrigin === origin) {
    return state.embed;
  }
  state.embed?.destroy();
  state.embed = new JupyterEmbed($("#jupyter"), { jupyterOrigin: origin });
  state.embed.addEventListener("dirty", (e) =>
    e.detail.dirty ? setStatus("Unsaved changes", "dirty") : null);
  state.embed.addEventListener("saved", (e) => {
    if (e.detail.by === "jupyter") {
      log(`saved inside Jupyter: ${e.detail.path}`);
      setStatus("Saved in Jupyter", "saved");
    }
  });
  return state.embed;
}

async function closeNotebook() {
  state.ready = false;
  $("#save").disabled = true;
  state.embed?.destroy();
  state.embed = null;
  $("#jupyter").src = "about:blank";
}

async function openNotebook(path) {
  if (!state.user) {
    return;
  }
  await closeNotebook();
  state.path = path;
  $("#current-path").textContent = path;
  setStatus("Starting Jupyter…");
  const openId = beginProgress();
  try {
    // The stream must be connected before the command exists, or its progress is missed.
    await streamConnected();
    let view;
    try {
      view = await api("POST", userPath("/open"), { path });
    } finally {
      endProgress(openId);
    }
    $("#cull-notice").hidden = true;
    setStatus("Loading Jupyter…");
    const embed = ensureEmbed(view.result.launch_url);
    await embed.open(view.result.launch_url);
    state.ready = true;
    $("#save").disabled = false;
    setStatus(embed.dirty ? "Unsaved changes" : "Ready", embed.dirty ? "dirty" : "idle");
    log(`opened ${path}`);
  } catch (error) {
    setStatus(`Could not open: ${error.message}`, "error");
  }
  await refreshNotebooks();
  await refreshVersions();
}

async function save() {
  $("#save").disabled = true;
  setStatus("Saving…");
  try {
    await state.embed.save();
    const view = await api("POST", userPath("/save"), { path: state.path });
    state.lastSave = view.result;
    const id = view.result.version_id.slice(0, 8);
    setStatus(view.result.new_version ? `Saved as version ${id}` : `No changes (version ${id})`, "saved");
  } catch (error) {
    setStatus(`Save failed: ${error.message}`, "error");
  } finally {
    $("#save").disabled = !state.ready;
  }
}

async function restoreVersion(versionId) {
  const path = state.path;
  const embed = state.ready ? state.embed : null;
  const id = versionId.slice(0, 8);
  setStatus(`Restoring ${id}…`);
  try {
    if (embed && embed.dirty) {
      // Unsaved edits reach the disk first; the restore keeps them as a version.
      await embed.save();
      log("unsaved edits written before the restore");
    }
    await api("POST", userPath("/restore"), { path, version_id: versionId });
    log(`restored ${path} to ${id}`);
  } catch (error) {
    setStatus(`Restore failed: ${error.message}`, "error");
    return;
  }
  if (!embed) {
    await openNotebook(path);
    return;
  }
  try {
    // The editor still holds the old document: reload it, so it shows the restored
    // version and a later save cannot write the old content over it.
    await embed.revert();
    state.restored = versionId;
    setStatus(`Restored version ${id}`, "saved");
  } catch (error) {
    setStatus(`Reload after restore failed: ${error.message}`, "error");
  }
}

for (const user of JSON.parse(document.querySelector('meta[name="demo-users"]').content)) {
  const option = document.createElement("option");
  option.value = user;
  $("#user-suggestions").append(option);
}
$("#user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadUser($("#user").value.trim()).catch((error) => setStatus(error.message, "error"));
});
$("#new-form").addEventListener("submit", (event) => {
  event.preventDefault();
  openNotebook($("#new-path").value.trim());
});
$("#save").addEventListener("click", save);
document.body.dataset.demoReady = "true";
