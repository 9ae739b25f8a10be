/*
 * orchestrator-embed.js: the app half of the orchestrator's save bridge (an ES module).
 *
 *   import { JupyterEmbed } from "<gateway>/static/orchestrator-embed.js";
 *   const embed = new JupyterEmbed(iframe, { jupyterOrigin: "https://hub.example" });
 *   await embed.open(launchUrl);          // resolves when Jupyter's bridge is ready
 *   embed.addEventListener("dirty", e => ...e.detail.dirty);
 *   embed.addEventListener("saved", e => ...e.detail.by);   // "app" or "jupyter" (Ctrl-S)
 *   const { path } = await embed.save();  // resolves once the file is written
 *   await embed.revert();                 // reload from disk (after a restore command)
 *
 * Restoring a version while the notebook is open: save() first (unsaved edits reach
 * the disk, and the restore keeps them as a version), send the restore command, then
 * revert() so the iframe shows the restored content and no stale document is saved
 * over it.
 *
 * Only messages from the iframe's window AND from `jupyterOrigin` are read; everything
 * this module sends goes to `jupyterOrigin` only. The Jupyter side (a JupyterLab
 * extension) answers only the app origins the Hub was configured with.
 */

const CHANNEL = "orchestrator-embed/v1";

export class BridgeError extends Error {
  constructor(reason) {
    super(reason);
    this.name = "BridgeError";
    this.reason = reason;
  }
}

export class JupyterEmbed extends EventTarget {
  /**
   * @param {HTMLIFrameElement} iframe  the frame Jupyter is shown in
   * @param {{jupyterOrigin: string, timeoutMs?: number, readyTimeoutMs?: number}} options
   */
  constructor(iframe, { jupyterOrigin, timeoutMs = 30000, readyTimeoutMs = 180000 } = {}) {
    super();
    if (!iframe || !jupyterOrigin) {
      throw new TypeError("JupyterEmbed needs an iframe and the Jupyter origin");
    }
    this.iframe = iframe;
    this.jupyterOrigin = new URL(jupyterOrigin).origin;
    this.timeoutMs = timeoutMs;
    this.readyTimeoutMs = readyTimeoutMs;
    this.ready = false;
    this.dirty = false;
    this.path = null;
    this._nextId = 1;
    this._pending = new Map();
    this._readyWaiters = [];
    this._onMessage = (event) => this._receive(event);
    window.addEventListener("message", this._onMessage);
  }

  /** Load a launch link in the iframe; resolves with {path, dirty} once Jupyter is ready. */
  open(launchUrl) {
    if (new URL(launchUrl).origin !== this.jupyterOrigin) {
      return Promise.reject(new BridgeError("the launch URL is not on the Jupyter origin"));
    }
    this._reset("a new notebook was opened");
    const ready = this._waitReady();
    this.iframe.src = launchUrl;
    return ready;
  }

  /** Ask Jupyter to save the open notebook; resolves {path} when written, rejects BridgeError. */
  save() {
    return this._request("save");
  }

  /** Reload the open notebook from disk, dropping what the editor holds (use after a
   *  restore); resolves {path, dirty}. */
  revert() {
    return this._request("revert");
  }

  /** The open notebook's path and dirty flag, as Jupyter reports them. */
  state() {
    return this._request("state");
  }

  /** Stop listening and reject whatever is pending. */
  destroy() {
    window.removeEventListener("message", this._onMessage);
    this._reset("the embed was destroyed");
  }

  _reset(reason) {
    this.ready = false;
    this.dirty = false;
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(new BridgeError(reason));
    }
    this._pending.clear();
    for (const waiter of this._readyWaiters) {
      waiter.reject(new BridgeError(reason));
    }
    this._readyWaiters = [];
  }

  _waitReady() {
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      const timer = setTimeout(() => {
        this._readyWaiters = this._readyWaiters.filter((w) => w !== waiter);
        reject(new BridgeError("Jupyter did not become ready in time"));
      }, this.readyTimeoutMs);
      waiter.resolve = (value) => { clearTimeout(timer); resolve(value); };
      waiter.reject = (error) => { clearTimeout(timer); reject(error); };
      this._readyWaiters.push(waiter);
    });
  }

  _request(type) {
    if (!this.ready || !this.iframe.contentWindow) {
      return Promise.reject(new BridgeError("Jupyter is not ready"));
    }
    const id = String(this._nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new BridgeError(`no answer to '${type}' within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      this.iframe.contentWindow.postMessage({ channel: CHANNEL, type, id }, this.jupyterOrigin);
    });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  _receive(event) {
    if (event.origin !== this.jupyterOrigin || event.source !== this.iframe.contentWindow) {
      return;
    }
    const data = event.data;
    if (!data || typeof data !== "object" || data.channel !== CHANNEL) {
      return;
    }
    switch (data.type) {
      case "ready": {
        this.ready = true;
        this.path = data.path;
        this.dirty = Boolean(data.dirty);
        const waiters = this._readyWaiters;
        this._readyWaiters = [];
        waiters.forEach((w) => w.resolve({ path: data.path, dirty: this.dirty }));
        this._emit("ready", { path: data.path, dirty: this.dirty });
        break;
      }
      case "result": {
        const pending = this._pending.get(String(data.id));
        if (!pending) {
          return;
        }
        this._pending.delete(String(data.id));
        clearTimeout(pending.timer);
        if (data.ok) {
          pending.resolve({ path: data.path, dirty: Boolean(data.dirty) });
        } else {
          pending.reject(new BridgeError(String(data.reason || "Jupyter refused")));
        }
        break;
      }
      case "dirty":
        this.dirty = Boolean(data.dirty);
        this._emit("dirty", { path: data.path, dirty: this.dirty });
        break;
      case "saved":
        this.dirty = false;
        this._emit("saved", { path: data.path, by: data.by === "app" ? "app" : "jupyter" });
        break;
      default:
        break;
    }
  }
}
