/*
 * orchestrator-embed-bridge: the Jupyter half of the orchestrator's save bridge.
 *
 * Runs inside JupyterLab when it is embedded in an app page (an iframe). It obeys
 * ONLY messages that come from the embedding parent window AND from one of the app
 * origins the Hub configured (page config "orchestratorEmbedOrigins"), and offers a
 * fixed set of actions: "save" (write the open notebook, answer when written),
 * "revert" (reload it from disk, e.g. after the app restored a version, so that the
 * stale document cannot be saved over the restore) and "state" (path and dirty flag).
 * Anything else, and any message from another window
 * or origin (a popup opener, a sibling frame), is ignored; no JupyterLab command is
 * ever run on request.
 *
 * Messages (both ways) are plain objects tagged {channel: "orchestrator-embed/v1"}:
 *   app -> jupyter: {type: "save" | "revert" | "state", id}
 *   jupyter -> app: {type: "ready", path, dirty}
 *                   {type: "result", id, ok: true, path, dirty}
 *                   {type: "result", id, ok: false, reason}
 *                   {type: "dirty", path, dirty}
 *                   {type: "saved", path, by: "app" | "jupyter"}
 */
import { ILabShell } from '@jupyterlab/application';
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';

const CHANNEL = 'orchestrator-embed/v1';
const ACTIONS = new Set(['save', 'revert', 'state']);

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

const plugin = {
  id: 'orchestrator-embed-bridge:plugin',
  description: 'Save bridge for apps that embed JupyterLab (origin-checked, fixed actions).',
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
    console.debug(`orchestrator-embed: active (embedded=${embedded}, origins=${allowed.size})`);
  }
};

export default plugin;
