// The demo app's page: everything an app does to embed notebooks through the orchestrator.
const gatewayUrl = document.querySelector('meta[name="orchestrator-gateway"]').content;
const { JupyterEmbed } = await import(`${gatewayUrl}/static/orchestrator-embed.js`);

const $ = (selector) => document.querySelector(selector);
const state = {
  user: null, path: null, embed: null, events: null, ready: false, lastSave: null, restored: null,
};
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
    <button type="button" class="restore">Restore</button>`;
  item.querySelector("code").textContent = version.id.slice(0, 8);
  item.querySelector(".meta").textContent = `${when} · ${version.origin} · ${version.size} B`;
  item.querySelector("button").addEventListener("click", () => restoreVersion(version.id));
  return item;
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

function onSavedEvent(event) {
  const data = JSON.parse(event.data).data;
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

function subscribe() {
  state.events?.close();
  state.streamOpen = false;
  state.events = new EventSource(userPath("/events"));
  state.events.addEventListener("notebook.saved", onSavedEvent);
  state.events.addEventListener("open", () => {
    state.streamOpen = true;
    log(`listening to ${state.user}'s saves`);
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
  try {
    const view = await api("POST", userPath("/open"), { path });
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
