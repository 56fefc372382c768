// The network page in the browser: reads the API of the gateway it came from (with the gateway token as a bearer
// credential), draws each account and its live actor tree, and follows the live feed. Every string from an
// account, a peer or the registry is inserted with textContent or an attribute, never parsed as markup.

const TOKEN_KEY = "agent-registry.network-page.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const RECENT_MAX = 30;

const page = {
  token: null,
  machines: {},
  accounts: new Map(),
  recent: new Map(),
  drawn: new Map(),
  canWrite: false,
  /** Peer states in display order with their names, as the gateway sends them with the state. */
  peerStates: [],
  streamAbort: null,
  retryMs: 1000,
  svgIds: 0,
};

/** The words the page shows for a peer state (the state itself when the gateway sent none). */
function stateName(state) {
  return page.peerStates.find((entry) => entry.state === state)?.name ?? state;
}

// ---------- small DOM helpers (text only, never HTML) ----------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs ?? {})) node.setAttribute(key, String(value));
  return node;
}

function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  // A fresh text node is read out even when the same words come twice.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

function setConnection(text, kind) {
  const node = document.getElementById("connection");
  node.textContent = text;
  node.className = `connection ${kind ?? ""}`;
}

function when(ms) {
  if (!ms) return "never";
  const date = new Date(typeof ms === "number" ? ms : Date.parse(ms));
  return Number.isNaN(date.getTime()) ? String(ms) : date.toLocaleString();
}

function peerRef(peer) {
  return peer.hostname ?? (peer.nodeId !== null && peer.nodeId !== undefined ? `node-${peer.nodeId}` : "?");
}

// ---------- credentials ----------

function takeTokenFromFragment() {
  const hash = window.location.hash.slice(1);
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (!token) return null;
  // The fragment never reaches a server; strip it from the address bar and history anyway.
  history.replaceState(null, "", window.location.pathname + window.location.search);
  return token;
}

function showLogin(message) {
  page.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (page.streamAbort) page.streamAbort.abort();
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("login-error").textContent = message ?? "";
  setConnection("Not signed in", "down");
  document.getElementById("token").focus();
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${page.token}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`api/${path}`, {
    method: options.method ?? "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: "no-store",
    credentials: "omit",
    signal: options.signal,
  });
  if (response.status === 401) {
    showLogin("The gateway did not accept this token. Check it and try again.");
    throw new Error("unauthorized");
  }
  return response;
}

// ---------- machine diagrams ----------

function diagram(machineName, active, caption) {
  const layout = page.machines[machineName];
  if (!layout) return el("p", { class: "muted", text: `(no diagram for ${machineName})` });
  const on = new Set(active);
  const id = `m${++page.svgIds}`;
  const root = svg("svg", {
    class: "machine",
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    width: layout.width,
    height: layout.height,
    role: "img",
    "aria-labelledby": `${id}-title`,
  });
  const title = svg("title", { id: `${id}-title` });
  title.textContent = caption;
  root.append(title);
  const defs = svg("defs");
  const marker = svg("marker", {
    id: `${id}-arrow`,
    viewBox: "0 0 10 10",
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
  defs.append(marker);
  root.append(defs);

  for (const edge of layout.edges) {
    const path = svg("path", { d: edge.d, class: "edge", "marker-end": `url(#${id}-arrow)` });
    const tip = svg("title");
    tip.textContent = `${edge.from} → ${edge.to}: ${edge.labels.join("; ")}`;
    path.append(tip);
    root.append(path);
  }
  const boxes = new Map(layout.boxes.map((box) => [box.path, box]));
  const initial = boxes.get(layout.initial);
  if (initial) {
    const cx = initial.x + initial.w / 2;
    root.append(svg("circle", { cx, cy: initial.y - 14, r: 5, class: "start" }));
    root.append(
      svg("path", {
        d: `M${cx},${initial.y - 9} L${cx},${initial.y}`,
        class: "edge",
        "marker-end": `url(#${id}-arrow)`,
      }),
    );
  }
  for (const box of layout.boxes) {
    const group = svg("g", {
      class: `box${on.has(box.path) ? " active" : ""}${box.final ? " final" : ""}`,
    });
    group.append(svg("rect", { class: "frame", x: box.x, y: box.y, width: box.w, height: box.h, rx: 6 }));
    const label = svg("text", { x: box.x + box.w / 2, y: box.y + 17, "text-anchor": "middle" });
    label.textContent = box.label;
    group.append(label);
    for (const row of box.rows) {
      const rowGroup = svg("g", { class: `row${on.has(row.path) ? " active" : ""}` });
      const indent = 6 + row.depth * 12;
      rowGroup.append(
        svg("rect", { x: box.x + indent, y: row.y + 1, width: box.w - indent - 6, height: 18, rx: 4 }),
      );
      const text = svg("text", { x: box.x + indent + 6, y: row.y + 14 });
      text.textContent = row.label;
      rowGroup.append(text);
      group.append(rowGroup);
    }
    root.append(group);
  }
  return root;
}

function leaves(active) {
  return active.filter((path) => !active.some((other) => other.startsWith(`${path}.`)));
}

function transitionList(machineName) {
  const layout = page.machines[machineName];
  if (!layout) return null;
  const list = el("ul", { class: "transitions" });
  for (const t of layout.transitions) list.append(el("li", { text: `${t.from} → ${t.to}: ${t.label}` }));
  return el("details", {}, el("summary", { text: `Transitions of the ${machineName} machine (text)` }), list);
}

function actorItem(actor, children) {
  const state = leaves(actor.active).join(", ") || "(no state)";
  const caption = `${actor.id}: ${actor.machine ?? "actor"} machine, now in ${state}`;
  const item = el(
    "li",
    { class: "actor", "data-actor": actor.id },
    el(
      "div",
      { class: "actor-head" },
      el("strong", { class: "mono", text: actor.id }),
      el("span", { class: "muted", text: `${actor.machine ?? "actor"} machine` }),
      el("span", { class: "badge", "data-state": state, text: state }),
      actor.status !== "active" ? el("span", { class: "muted", text: `(${actor.status})` }) : null,
    ),
  );
  if (actor.machine) {
    item.append(
      el(
        "figure",
        {},
        diagram(actor.machine, actor.active, caption),
        el("figcaption", { text: `Active: ${state}` }),
      ),
    );
    const list = transitionList(actor.machine);
    if (list) item.append(list);
  }
  if (children) item.append(children);
  return item;
}

// ---------- one account ----------

// The URL in use; with several configured, which one and the last failover.
function registryText(r) {
  const f = r.registryFailover;
  if (!f) return r.registryUrl;
  const last = f.lastAt ? `last failover ${f.lastAt} from ${f.lastFrom}` : "no failover";
  return `${r.registryUrl} (${f.inUse} of ${f.configured} configured; ${last})`;
}

function registrationPanel(view) {
  const r = view.registration;
  const rows = [
    ["Lifecycle", view.lifecycle],
    ["Hostname", r.hostname ?? "(none)"],
    ["Agent id", r.agentId ?? "(not registered)"],
    ["Peer id", r.peerId ?? "(not registered)"],
    ["Key fingerprint", r.fingerprint],
    ["Registry", registryText(r)],
    ["Discoverable", r.discoverable ? "yes" : "no"],
    ["Last heartbeat", r.lastHeartbeatAt ?? "none yet"],
    ["Transport", view.transport ?? "(starting)"],
    ["Messaging", view.unavailableReason ?? "available"],
  ];
  if (r.lastError) rows.push(["Last error", r.lastError]);
  const list = el("dl");
  for (const [name, value] of rows) {
    list.append(
      el("dt", { text: name }),
      el("dd", { class: name === "Key fingerprint" ? "mono" : null, text: value }),
    );
  }
  return el(
    "section",
    { class: "panel", "aria-label": `Registration of ${view.accountId}` },
    el("h3", { text: "Registration" }),
    list,
  );
}

function pendingPanel(view) {
  const section = el("section", { class: "panel", "aria-label": `Pending requests of ${view.accountId}` });
  section.append(el("h3", { text: `Pending requests (${view.pending.length})` }));
  if (view.pending.length === 0) {
    section.append(el("p", { class: "muted", text: "No handshake request waits for you." }));
    return section;
  }
  const list = el("ul", { class: "requests" });
  for (const peer of view.pending) {
    const ref = peerRef(peer);
    const names = [peer.assistantName, peer.humanName ? `for ${peer.humanName}` : null]
      .filter(Boolean)
      .join(" ");
    const item = el(
      "li",
      { class: "request", "data-peer": ref },
      el(
        "div",
        {},
        el("strong", { class: "mono", text: ref }),
        names ? el("span", { text: ` (${names})` }) : null,
      ),
      el(
        "div",
        { class: "muted" },
        "Key fingerprint: ",
        el("span", {
          class: "mono",
          text: peer.offeredFingerprint ?? peer.fingerprint ?? "none offered (unverified)",
        }),
      ),
      peer.introduction
        ? el("blockquote", {
            "aria-label": `Introduction from ${ref} (written by their agent)`,
            text: peer.introduction,
          })
        : el("p", { class: "muted", text: "No introduction." }),
    );
    const actions = el("div", { class: "actions" });
    const approve = el("button", {
      type: "button",
      "data-focus": `${view.accountId}:approve:${ref}`,
      "aria-label": `Approve ${ref}`,
      disabled: !page.canWrite,
      text: "Approve",
    });
    const reject = el("button", {
      type: "button",
      class: "secondary",
      "data-focus": `${view.accountId}:reject:${ref}`,
      "aria-label": `Reject ${ref}`,
      disabled: !page.canWrite,
      text: "Reject",
    });
    approve.addEventListener("click", () => decide(view.accountId, ref, "approve", [approve, reject]));
    reject.addEventListener("click", () => decide(view.accountId, ref, "reject", [approve, reject]));
    actions.append(approve, reject);
    if (!page.canWrite)
      actions.append(el("span", { class: "muted", text: "Approving needs operator.write." }));
    item.append(actions);
    list.append(item);
  }
  section.append(list);
  return section;
}

function table(caption, headers, rows) {
  const head = el("tr");
  for (const h of headers) head.append(el("th", { scope: "col", text: h }));
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    row.forEach((cell, index) => {
      if (cell instanceof Node) tr.append(el("td", {}, cell));
      else
        tr.append(el(index === 0 ? "th" : "td", index === 0 ? { scope: "row", text: cell } : { text: cell }));
    });
    body.append(tr);
  }
  return el(
    "div",
    { class: "table-wrap" },
    el("table", {}, el("caption", { class: "visually-hidden", text: caption }), el("thead", {}, head), body),
  );
}

function peersPanel(view) {
  const section = el("section", { class: "panel", "aria-label": `Peers of ${view.accountId}` });
  section.append(el("h3", { text: `Peers (${view.peers.total})` }));
  const counts = page.peerStates
    .filter(({ state }) => view.peers.counts[state])
    .map(({ state, name }) => `${name}: ${view.peers.counts[state]}`);
  section.append(el("p", { class: "muted", text: counts.join(" · ") || "No peers yet." }));
  if (view.peers.shown.length > 0) {
    const rows = view.peers.shown.map((peer) => [
      peerRef(peer),
      el("span", {
        class: `badge ${peer.state}`,
        "data-peer-state": peer.state,
        text: stateName(peer.state),
      }),
      el("span", {
        class: "mono",
        text:
          peer.fingerprint ?? (peer.offeredFingerprint ? `offered ${peer.offeredFingerprint}` : "unverified"),
      }),
      [peer.assistantName, peer.humanName].filter(Boolean).join(" / ") || "—",
    ]);
    const wrap = table(`Peers of ${view.accountId}`, ["Peer", "Handshake", "Fingerprint", "Names"], rows);
    const trs = wrap.querySelectorAll("tbody tr");
    for (let index = 0; index < trs.length; index++) {
      trs[index].setAttribute("data-peer", peerRef(view.peers.shown[index]));
    }
    section.append(wrap);
    if (view.peers.shown.length < view.peers.total) {
      section.append(
        el("p", { class: "muted", text: `Showing ${view.peers.shown.length} of ${view.peers.total}.` }),
      );
    }
  }
  return section;
}

function outboxPanel(view) {
  if (!view.outbox) return null;
  const section = el("section", { class: "panel", "aria-label": `Outbox of ${view.accountId}` });
  const counts = Object.entries(view.outbox.counts)
    .map(([state, n]) => `${state}: ${n}`)
    .join(" · ");
  section.append(el("h3", { text: "Outbox" }), el("p", { class: "muted", text: counts || "empty" }));
  if (view.outbox.messages.length > 0) {
    section.append(
      table(
        `Outbox of ${view.accountId}`,
        ["To", "State", "Attempts", "Why", "Text"],
        view.outbox.messages.map((m) => [m.peer, m.state, String(m.attempts), m.reason ?? "—", m.preview]),
      ),
    );
  }
  return section;
}

function refusalsPanel(view) {
  const section = el("section", { class: "panel", "aria-label": `Refusals of ${view.accountId}` });
  section.append(el("h3", { text: "Refusals and alerts" }));
  const refused = Object.entries(view.refusals.refused).filter(([, n]) => n > 0);
  const unreadable = Object.entries(view.refusals.unreadable).filter(([, n]) => n > 0);
  if (refused.length === 0 && unreadable.length === 0 && view.refusals.alerts.length === 0) {
    section.append(el("p", { class: "muted", text: "Nothing refused." }));
    return section;
  }
  const list = el("ul");
  for (const [reason, n] of refused) list.append(el("li", { text: `refused, ${reason}: ${n}` }));
  for (const [reason, n] of unreadable) list.append(el("li", { text: `unreadable, ${reason}: ${n}` }));
  for (const alert of view.refusals.alerts) {
    list.append(
      el(
        "li",
        {},
        `${alert.kind === "suspended" ? "suspended" : "registry offers another key"}: `,
        el("span", { class: "mono", text: alert.peer }),
        " key ",
        el("span", { class: "mono", text: alert.fingerprint }),
        ` (${when(alert.at)})`,
      ),
    );
  }
  section.append(list);
  return section;
}

function recentPanel(view) {
  const entries = page.recent.get(view.accountId) ?? [];
  const section = el("section", { class: "panel", "aria-label": `Recent transitions of ${view.accountId}` });
  section.append(el("h3", { text: "Recent transitions" }));
  if (entries.length === 0) {
    section.append(el("p", { class: "muted", text: "None since this page opened." }));
    return section;
  }
  const list = el("ol", { class: "recent", reversed: true });
  for (const t of [...entries].reverse()) {
    list.append(
      el(
        "li",
        { "data-actor": t.actor, "data-from": t.from, "data-to": t.to },
        el("span", { class: "mono", text: t.actor }),
        `: ${t.from} → ${t.to} `,
        el("span", { class: "muted", text: new Date(t.at).toLocaleTimeString() }),
      ),
    );
  }
  section.append(list);
  return section;
}

function treePanel(view) {
  const section = el("section", {
    class: "panel tree-panel",
    "aria-label": `Actor tree of ${view.accountId}`,
  });
  section.append(el("h3", { text: "Live actor tree" }));
  const children = el("ul", { class: "tree" });
  for (const child of view.actors.children) children.append(actorItem(child, null));
  const resting = el(
    "li",
    { class: "actor" },
    el("strong", {
      text: `${view.actors.restingPeers} resting peer${view.actors.restingPeers === 1 ? "" : "s"}`,
    }),
    el("span", {
      class: "muted",
      text: " — kept as records (their handshake's saved state, in the peers table), woken as handshake actors when they have work.",
    }),
  );
  children.append(resting);
  if (view.actors.awakePeers > view.actors.children.filter((c) => c.id.startsWith("handshake:")).length) {
    children.append(
      el("li", {
        class: "muted",
        text: `${view.actors.awakePeers} handshakes awake; the first ones are shown.`,
      }),
    );
  }
  const tree = el("ul", { class: "tree" }, actorItem(view.actors.root, children));
  section.append(tree);
  return section;
}

function renderAccount(view) {
  const id = `account-${view.accountId.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const section = el("section", {
    class: "account",
    id,
    "data-account": view.accountId,
    "aria-labelledby": `${id}-h`,
  });
  section.append(
    el(
      "div",
      { class: "account-head" },
      el("h2", { id: `${id}-h` }, "Account ", el("span", { class: "mono", text: view.accountId })),
      el("span", {
        class: `badge ${view.lifecycle}`,
        "data-lifecycle": view.lifecycle,
        text: view.lifecycle,
      }),
    ),
  );
  if (view.error) {
    section.append(el("p", { class: "error", text: `Could not read this account: ${view.error}` }));
    return section;
  }
  section.append(
    el(
      "div",
      { class: "grid" },
      pendingPanel(view),
      registrationPanel(view),
      peersPanel(view),
      refusalsPanel(view),
      outboxPanel(view),
      recentPanel(view),
    ),
    treePanel(view),
  );
  return section;
}

function render() {
  const container = document.getElementById("accounts");
  const focused = document.activeElement?.getAttribute?.("data-focus");
  const open = new Set(
    [...container.querySelectorAll("details[open]")].map((d) =>
      d.closest("[data-actor]")?.getAttribute("data-actor"),
    ),
  );
  const ids = [...page.accounts.keys()].sort();
  // Only accounts whose data changed are drawn again: a button the user is about to press stays in place.
  const fresh = ids.map((accountId) => {
    const view = page.accounts.get(accountId);
    const recent = page.recent.get(accountId)?.version ?? 0;
    const drawn = page.drawn.get(accountId);
    if (drawn && drawn.view === view && drawn.recent === recent && drawn.canWrite === page.canWrite) {
      return drawn.node;
    }
    const node = renderAccount(view);
    page.drawn.set(accountId, { view, recent, canWrite: page.canWrite, node });
    return node;
  });
  for (const accountId of [...page.drawn.keys()]) {
    if (!page.accounts.has(accountId)) page.drawn.delete(accountId);
  }
  container.replaceChildren(...fresh);
  if (ids.length === 0)
    container.append(
      el("p", { class: "muted", text: "No agent-registry account is running in this gateway." }),
    );
  for (const details of container.querySelectorAll("details")) {
    if (open.has(details.closest("[data-actor]")?.getAttribute("data-actor"))) details.open = true;
  }
  if (focused) {
    const again = [...container.querySelectorAll("[data-focus]")].find(
      (n) => n.getAttribute("data-focus") === focused,
    );
    if (again) again.focus();
  }
}

// ---------- actions ----------

async function decide(accountId, peer, action, buttons) {
  for (const b of buttons) b.disabled = true;
  announce(`${action === "approve" ? "Approving" : "Rejecting"} ${peer}…`);
  try {
    const response = await api(action, { method: "POST", body: { accountId, peer } });
    const body = await response.json();
    if (!body.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
    announce(`${peer} is now ${body.peer?.state ? stateName(body.peer.state) : "updated"} for ${accountId}.`);
  } catch (error) {
    if (error.message === "unauthorized") return;
    for (const b of buttons) b.disabled = !page.canWrite;
    announce(`Could not ${action} ${peer}: ${error.message}`);
  }
}

// ---------- live feed ----------

function applyFrame(event, data) {
  if (event === "account") {
    page.accounts.set(data.accountId, data);
    render();
  } else if (event === "removed") {
    page.accounts.delete(data.accountId);
    render();
  } else if (event === "transitions") {
    for (const t of data) {
      const list = page.recent.get(t.accountId) ?? [];
      list.push(t);
      while (list.length > RECENT_MAX) list.shift();
      list.version = (list.version ?? 0) + 1;
      page.recent.set(t.accountId, list);
    }
    render();
  }
}

async function follow() {
  const controller = new AbortController();
  page.streamAbort = controller;
  try {
    const response = await api("events", { signal: controller.signal });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    setConnection("Live", "live");
    page.retryMs = 1000;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf("\n\n");
      while (end !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length > 0) applyFrame(event, JSON.parse(data.join("\n")));
        end = buffer.indexOf("\n\n");
      }
    }
  } catch (error) {
    if (controller.signal.aborted || error.message === "unauthorized") return;
  }
  if (!page.token) return;
  setConnection("Reconnecting…", "down");
  setTimeout(follow, page.retryMs);
  page.retryMs = Math.min(page.retryMs * 2, 30_000);
}

async function start() {
  document.getElementById("login").hidden = true;
  setConnection("Connecting…");
  try {
    const [machines, state] = await Promise.all([api("machines"), api("state")]);
    if (state.status === 403 || machines.status === 403) {
      const body = await state.json().catch(() => ({}));
      showLogin(body.error?.message ?? "This credential may not read the network page.");
      return;
    }
    page.machines = (await machines.json()).machines;
    const body = await state.json();
    page.canWrite = body.canWrite === true;
    page.peerStates = Array.isArray(body.peerStates) ? body.peerStates : [];
    page.accounts = new Map(body.accounts.map((a) => [a.accountId, a]));
    render();
    follow();
  } catch (error) {
    if (error.message === "unauthorized") return;
    setConnection(`Cannot reach the gateway: ${error.message}`, "down");
    setTimeout(start, 5000);
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("token").value.trim();
  if (!value) return;
  page.token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
  document.getElementById("token").value = "";
  start();
});

page.token = takeTokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY);
if (page.token) {
  sessionStorage.setItem(TOKEN_KEY, page.token);
  start();
} else {
  showLogin("");
}
