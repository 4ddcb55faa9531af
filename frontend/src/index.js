/*
 * Skriptoteket's tool page front end: connects to the page's kernel and draws the tool app's widgets.
 *
 * Why not Voila's own front end: Voila 0.5 boots a JupyterLab application on every page (~3.9 MB of JavaScript
 * evaluated, three federated extensions, a style loader with Font Awesome), which alone took ≈ 600 ms of the
 * page's main thread on this project's 2-core machine. The tool page needs none of it: its one cell output is a
 * widget tree of @jupyter-widgets/controls (no Output widget, no third-party widgets, no MathJax). This file does
 * only what that page needs, the way Voila's widget manager does it (docs/teacher-path.md, "The tool page's front
 * end"): connect to the kernel named in the page config, fetch every widget's state over the control comm, draw
 * the views where the cell outputs are, and shut the kernel down when the page goes away.
 */
import * as base from '@jupyter-widgets/base';
import { ManagerBase } from '@jupyter-widgets/base-manager';
import * as controls from '@jupyter-widgets/controls';
import { KernelConnection } from '@jupyterlab/services/lib/kernel/default';
import { ServerConnection } from '@jupyterlab/services/lib/serverconnection';
import { Widget } from '@lumino/widgets';

import '@jupyter-widgets/controls/css/widgets.css';
import '@jupyter-widgets/controls/css/lumino.css';
import './tool-page.css';

const WIDGET_VIEW = 'application/vnd.jupyter.widget-view+json';
const CONNECT_TIMEOUT_MS = 30000; // a kernel that was culled, died or is unreachable through the proxy
const MODULES = { '@jupyter-widgets/base': base, '@jupyter-widgets/controls': controls };

class ToolPageManager extends ManagerBase {
  constructor(kernel) {
    super();
    this.kernel = kernel;
    // widgets the app creates later (a result, an action's form) arrive as comm_open messages
    kernel.registerCommTarget(this.comm_target_name, async (comm, msg) => {
      await this.handle_comm_open(new base.shims.services.Comm(comm), msg);
    });
  }

  async loadClass(className, moduleName, moduleVersion) {
    const module = MODULES[moduleName];
    if (!module || !module[className]) {
      throw new Error(`widget class ${className} from ${moduleName}@${moduleVersion} is not on the tool page`);
    }
    return module[className];
  }

  async _create_comm(target, modelId, data, metadata, buffers) {
    const comm = this.kernel.createComm(target, modelId);
    if (data || metadata) {
      comm.open(data, metadata, buffers);
    }
    return new base.shims.services.Comm(comm);
  }

  async _get_comm_info() {
    const reply = await this.kernel.requestCommInfo({ target_name: this.comm_target_name });
    return reply.content.status === 'ok' ? reply.content.comms : {};
  }

  loadFromKernel() {
    return this._loadFromKernel();
  }
}

function pageConfig() {
  const el = document.getElementById('jupyter-config-data');
  return el ? JSON.parse(el.textContent) : {};
}

function xsrfToken() {
  const match = document.cookie.match('\\b_xsrf=([^;]*)\\b');
  return (match && match[1]) || '';
}

/** A cell output that is not a widget: the tool app only shows widgets, so this is text (never HTML). */
function drawPlain(container, data) {
  const pre = document.createElement('pre');
  pre.textContent = data['text/plain'] || '';
  container.appendChild(pre);
}

async function drawOutputs(manager) {
  const scripts = document.querySelectorAll('script[type="application/vnd.voila.cell-output+json"]');
  for (const script of scripts) {
    const output = JSON.parse(script.textContent);
    const container = script.parentElement;
    container.removeChild(script);
    const view = output.data && output.data[WIDGET_VIEW];
    if (!view) {
      drawPlain(container, output.data || { 'text/plain': output.text || '' }); // a stream has text, not data
      continue;
    }
    if (!manager.has_model(view.model_id)) {
      // not in the states we got (seen under heavy load with Voila's front end as "widget model not found"):
      // ask the kernel once more rather than leave the page without its form
      await manager.loadFromKernel();
    }
    const model = await manager.get_model(view.model_id);
    const widgetView = await manager.create_view(model);
    Widget.attach(widgetView.luminoWidget, container);
  }
}

/** The socket is open; rejects if the connection gives up or takes longer than `timeoutMs`. */
function connected(kernel, timeoutMs) {
  if (kernel.connectionStatus === 'connected') {
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const done = (error) => {
      kernel.connectionStatusChanged.disconnect(onStatus);
      clearTimeout(timer);
      error ? reject(error) : resolve();
    };
    const onStatus = (_, status) => {
      if (status === 'connected') {
        done();
      } else if (status === 'disconnected') {
        done(new Error('the connection to the tool\'s kernel was lost'));
      }
    };
    const timer = setTimeout(() => done(new Error('no connection to the tool\'s kernel')), timeoutMs);
    kernel.connectionStatusChanged.connect(onStatus);
  });
}

/** Instead of a form that never comes: the template's bilingual "could not open, reload" message. */
function showFailure(error) {
  console.error('Skriptoteket: the tool page could not be drawn:', error);
  document.getElementById('loading')?.remove();
  const message = document.getElementById('skr-open-failed');
  if (message) {
    message.hidden = false;
  }
}

function showCells() {
  document.getElementById('loading')?.remove();
  const cells = document.getElementById('rendered_cells');
  if (cells) {
    cells.style.display = '';
  }
}

/**
 * Runs once the page is complete (DOMContentLoaded), so the kernel's cell has finished and every widget exists.
 * The template still loads this script early (right after the page config), so it is compiled while the page
 * streams in. Connecting to the kernel at that early point instead was measured slower: the page's HTML came
 * ~150 ms later (the server then also serves this websocket while the kernel finishes its cell), more than the
 * ~50 ms the overlap saved (docs/teacher-path.md, "The tool page's front end").
 */
function start() {
  const config = pageConfig();
  if (!config.kernelId) {
    showCells(); // a page without a kernel: nothing to connect to
    return;
  }
  // the page's own timeline on its clock, for probes of the open time (docs/teacher-path.md, "Measured")
  const moments = (window.skriptoteketMoments = { start: performance.now() });
  const serverSettings = ServerConnection.makeSettings({
    baseUrl: config.baseUrl,
    wsUrl: config.baseUrl.replace(/^http/, 'ws'),
    appendToken: false,
  });
  // The kernel's model is known from the page config: no GET api/kernels/<id> before connecting.
  // Comm messages stay on the kernel's main shell, in order, where ipywidgets' handlers and the tool app's event
  // loop expect them: @jupyterlab/services 7.6 would otherwise ask a kernel that offers subshells (ipykernel 7)
  // for one per comm target (an engineer's probe logged ~30 refused create_subshell_request per page load).
  const kernel = new KernelConnection({
    model: { id: config.kernelId, name: 'python3' },
    serverSettings,
    commsOverSubshells: 'disabled',
  });
  const manager = new ToolPageManager(kernel);
  window.addEventListener('beforeunload', () => {
    // as Voila's front end does: the page's kernel is not reused, so stop it now instead of at culling time
    const data = new FormData();
    data.append('_xsrf', xsrfToken());
    navigator.sendBeacon(`${config.baseUrl}voila/api/shutdown/${kernel.id}`, data);
    kernel.dispose();
  });
  (async () => {
    try {
      // Sent once the socket is open rather than queued until KernelConnection's own kernel_info reply (its
      // default): one round trip less. The server handles the socket's messages only after its nudge has seen
      // the kernel's iopub, so the state reply cannot be missed.
      await connected(kernel, CONNECT_TIMEOUT_MS);
      await manager.loadFromKernel();
      moments.states = performance.now();
      await drawOutputs(manager);
      moments.drawn = performance.now();
      showCells();
    } catch (error) {
      showFailure(error);
    }
  })();
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
