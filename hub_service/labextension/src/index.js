/*
 * orchestrator-embed-bridge: the Jupyter half of the orchestrator's save bridge.
 *
 * Message half: runs when JupyterLab is embedded in an app page (an iframe). It obeys
 * ONLY messages that come from the embedding parent window AND from one of the app
 * origins the Hub configured (page config "orchestratorEmbedOrigins"), and offers a
 * fixed set of actions: "save" (write the open notebook, answer when written),
 * "revert" (reload it from disk, e.g. after the app restored a version, so that the
 * stale document cannot be saved over the restore) and "state" (path and dirty flag).
 * Anything else, and any message from another window or origin (a popup opener, a
 * sibling frame), is ignored; no JupyterLab command is ever run on request.
 *
 * Messages (both ways) are plain objects tagged {channel: "orchestrator-embed/v1"}:
 *   app -> jupyter: {type: "save" | "revert" | "state", id}
 *   jupyter -> app: {type: "ready", path, dirty}
 *                   {type: "result", id, ok: true, path, dirty}
 *                   {type: "result", id, ok: false, reason}
 *                   {type: "dirty", path, dirty}
 *                   {type: "saved", path, by: "app" | "jupyter"}
 *
 * Flush channel (every JupyterLab page, embedded or not): before the orchestrator culls
 * an idle server it asks the server to flush, and each open page writes its unsaved
 * documents. The page long-polls GET {base}orchestrator/bridge/wait?page=<id> (first
 * without `after` to learn the current flush id, then with after=<id>; the server
 * answers {flush: <id>} or, after ~20 s, {flush: null, current: <id>}). On a flush id it
 * saves every dirty document open in the main area, then POSTs {page, flush, saved:
 * [path], failed: [{path, reason}]} to {base}orchestrator/bridge/done. <id> of a page is
 * random per page load. On an error it waits 1 s, doubling up to 30 s, and goes on.
 * These requests do not count as activity on the server (see hub_service/bridge_api.py).
 */
import { ILabShell } from '@jupyterlab/application';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { ServerConnection } from '@jupyterlab/services';

const CHANNEL = 'orchestrator-embed/v1';
const ACTIONS = new Set(['save', 'revert', 'state']);
const BRIDGE_PATH = 'orchestrator/bridge';
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30000;
const MAX_REASON_CHARS = 2000;

function configuredOrigins() {
  const raw = PageConfig.getOption('orchestratorEmbedOrigins');
  let list = [];
  try {
    list = typeof raw === 'string' && raw ? JSON.parse(raw) : raw || [];
  } catch (err) {
    list = [];
  }
  return new Set(Array.isArray(list) ? list.filter(o => typeof o === 'string') : []);
}

function parentOriginCandidates(allowed) {
  // Chromium and WebKit tell us the embedding origin; elsewhere, post to every allowed
  // origin: the browser delivers only to the one the parent really has.
  const ancestors = window.location.ancestorOrigins;
  if (ancestors && ancestors.length > 0) {
    return allowed.has(ancestors[0]) ? [ancestors[0]] : [];
  }
  return Array.from(allowed);
}

function newPageId() {
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function bridgeRequest(settings, endpoint, init, query) {
  const url =
    URLExt.join(settings.baseUrl, BRIDGE_PATH, endpoint) +
    (query ? URLExt.objectToQueryString(query) : '');
  const response = await ServerConnection.makeRequest(url, init, settings);
  if (!response.ok) {
    throw await ServerConnection.ResponseError.create(response);
  }
  return response.json();
}

// Save every dirty document open in the main area (a document shown twice is saved once).
async function saveOpenDocuments(labShell, docManager) {
  const contexts = new Set();
  for (const widget of labShell.widgets('main')) {
    const context = docManager.contextForWidget(widget);
    if (context && !context.isDisposed) {
      contexts.add(context);
    }
  }
  const saved = [];
  const failed = [];
  await Promise.all(
    Array.from(contexts, async context => {
      if (!context.model.dirty) {
        return;
      }
      try {
        await context.save();
        if (context.model.dirty) {
          failed.push({ path: context.path, reason: 'edited again while saving' });
        } else {
          saved.push(context.path);
        }
      } catch (error) {
        const reason = String((error && error.message) || error).slice(0, MAX_REASON_CHARS);
        failed.push({ path: context.path, reason });
      }
    })
  );
  return { saved, failed };
}

// Answer the orchestrator's flush requests for as long as the page lives.
async function runFlushLoop(labShell, docManager) {
  const settings = ServerConnection.makeSettings();
  const page = newPageId();
  let after = null; // unknown until the first answer: never act on an old request
  let backoff = FIRST_BACKOFF_MS;
  for (;;) {
    try {
      const query = after === null ? { page } : { page, after };
      const answer = await bridgeRequest(settings, 'wait', { method: 'GET' }, query);
      if (typeof answer.flush === 'number') {
        const report = await saveOpenDocuments(labShell, docManager);
        await bridgeRequest(settings, 'done', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ page, flush: answer.flush, ...report })
        });
        console.debug(`orchestrator-embed: flush ${answer.flush} done`, report);
        after = answer.flush;
      } else if (typeof answer.current === 'number') {
        after = answer.current;
      }
      backoff = FIRST_BACKOFF_MS;
    } catch (error) {
      // A failed report keeps `after`: the next wait hands the same flush back.
      console.warn(`orchestrator-embed: flush channel: ${error}; retrying in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }
}

const plugin = {
  id: 'orchestrator-embed-bridge:plugin',
  description: 'Save bridge for embedding apps (origin-checked) and the orchestrator flush channel.',
  autoStart: true,
  requires: [ILabShell, IDocumentManager],
  activate: (app, labShell, docManager) => {
    const embedded = window.parent !== window;
    const allowed = configuredOrigins();
    if (!embedded) {
      console.debug('orchestrator-embed: not embedded; bridge idle');
    }
    let parentOrigins = embedded ? parentOriginCandidates(allowed) : [];
    let appSaving = false;
    const watched = new WeakSet();

    const send = message => {
      if (!embedded) {
        return;
      }
      for (const origin of parentOrigins) {
        window.parent.postMessage({ channel: CHANNEL, ...message }, origin);
      }
    };

    const currentContext = () => {
      const widget = labShell.currentWidget;
      return widget ? docManager.contextForWidget(widget) : undefined;
    };

    const watch = context => {
      if (!context || watched.has(context)) {
        return;
      }
      watched.add(context);
      context.model.stateChanged.connect((model, change) => {
        if (change.name === 'dirty') {
          send({ type: 'dirty', path: context.path, dirty: change.newValue });
        }
      });
      context.saveState.connect((_ctx, state) => {
        if (state === 'completed') {
          send({ type: 'saved', path: context.path, by: appSaving ? 'app' : 'jupyter' });
        }
      });
    };

    const actions = {
      state: async () => {
        const context = currentContext();
        if (!context) {
          throw new Error('no notebook is open');
        }
        return { path: context.path, dirty: context.model.dirty };
      },
      save: async () => {
        const context = currentContext();
        if (!context) {
          throw new Error('no notebook is open');
        }
        watch(context);
        appSaving = true;
        try {
          await context.save();
        } finally {
          appSaving = false;
        }
        if (context.model.dirty) {
          throw new Error('the notebook was not saved');
        }
        return { path: context.path, dirty: false };
      },
      revert: async () => {
        const context = currentContext();
        if (!context) {
          throw new Error('no notebook is open');
        }
        watch(context);
        await context.revert();
        return { path: context.path, dirty: context.model.dirty };
      }
    };

    window.addEventListener('message', event => {
      const data = event.data;
      if (!data || typeof data !== 'object' || data.channel !== CHANNEL) {
        return;
      }
      if (!embedded || event.source !== window.parent || !allowed.has(event.origin)) {
        console.warn(`orchestrator-embed: ignored message from ${event.origin}`);
        return;
      }
      parentOrigins = [event.origin];
      const reply = message =>
        event.source.postMessage({ channel: CHANNEL, ...message }, event.origin);
      if (!ACTIONS.has(data.type)) {
        reply({ type: 'result', id: data.id, ok: false, reason: `unsupported action: ${String(data.type)}` });
        return;
      }
      actions[data.type]().then(
        result => reply({ type: 'result', id: data.id, ok: true, ...result }),
        error => reply({ type: 'result', id: data.id, ok: false, reason: String(error.message || error) })
      );
    });

    if (embedded) {
      // Announce "ready" once the notebook named in the URL (/lab/tree/PATH) is open.
      const treePath = PageConfig.getOption('treePath');
      const announceIfOpen = () => {
        const context = currentContext();
        if (!context || (treePath && context.path !== treePath)) {
          return false;
        }
        watch(context);
        labShell.collapseLeft();
        labShell.mode = 'single-document';
        const announce = () => send({ type: 'ready', path: context.path, dirty: context.model.dirty });
        context.ready.then(announce, announce);
        return true;
      };
      labShell.currentChanged.connect(() => watch(currentContext()));
      app.restored.then(() => {
        if (announceIfOpen()) {
          return;
        }
        const onChange = () => {
          if (announceIfOpen()) {
            labShell.currentChanged.disconnect(onChange);
          }
        };
        labShell.currentChanged.connect(onChange);
      });
    }
    const startFlushLoop = () => void runFlushLoop(labShell, docManager);
    app.restored.then(startFlushLoop, startFlushLoop);
    console.debug(`orchestrator-embed: active (embedded=${embedded}, origins=${allowed.size})`);
  }
};

export default plugin;
