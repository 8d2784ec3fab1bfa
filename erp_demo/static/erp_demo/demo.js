// The live demo page (served at / by erp_demo.views.demo). It learns the sockets' paths and auth modes from
// GET /server/info, logs in over HTTP (/auth/login, /auth/refresh, /auth/logout), and keeps three sockets open:
// the REST socket (the products and sales orders tables, the edit form), the GraphQL socket (the npm graphql-ws
// client, vendored) and, for admins, the logs socket. Sockets reconnect with exponential backoff and full jitter;
// the access token is refreshed before it expires. Data from the server reaches the DOM as text only
// (textContent, dataset), never as HTML. Tests read the DOM's ids and data attributes, and window.demo.
'use strict';

(() => {
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 10_000;
  const REFRESH_LEAD_MS = 30_000; // refresh this long before expiry...
  const REFRESH_LEAD_SHARE = 0.2; // ...or this share of the token's lifetime, whichever is smaller
  const REFRESH_RETRY_MS = 2_000; // after a network failure of /auth/refresh (the server restarting), while it lasts
  const REAUTH_GRACE_MS = 5_000; // an auth error this soon after a refresh re-sends the fresh token, no new refresh
  const GRAPHQL_EVENTS_KEPT = 20;
  const LOG_LINES_KEPT = 200;
  const CLOSES_KEPT = 50; // window.demo's record of each socket's closes (for debugging and tests)
  const COLLECTIONS = ['products', 'sales_orders'];
  const SUBSCRIPTION_QUERY = { fields: ['*'], sort: ['id'] };
  // The public role may not read a product's stock, and GraphQL refuses a selection of fields one may not read.
  const GRAPHQL_USER_QUERY = 'subscription { products_mutated { key event data { id name stock price } } }';
  const GRAPHQL_PUBLIC_QUERY = 'subscription { products_mutated { key event data { id name price } } }';
  const LEVEL_NAMES = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

  // Tokens live only in this closure: window.demo shows the page's state for debugging, never a credential.
  let session = null; // { email, admin, access, refresh, expiresAt, lifetime, refreshedAt }
  let refreshTimer = null;
  let refreshing = null; // the refresh in flight: concurrent triggers share it (a rotated token works once)
  let editCounter = 0;
  const pendingEdits = new Map(); // uid -> product id

  const demo = {
    info: null, // { rest, graphql, logs }: each { authentication, path } or false (disabled)
    user: 'public',
    admin: false,
    tokenExpiresAt: null,
    tokenRefreshedAt: null,
    refreshes: 0,
    sockets: {},
    rows: { products: new Map(), sales_orders: new Map() },
    columns: { products: [], sales_orders: [] },
    graphqlEvents: [],
    edits: [],
  };
  window.demo = demo;
  for (const name of ['rest', 'graphql', 'logs']) {
    demo.sockets[name] = { state: 'starting', detail: '', opens: 0, closes: [] };
  }

  // -- small helpers ------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function clock(date) {
    return date.toTimeString().slice(0, 8);
  }

  function backoffDelay(attempt) {
    // Full jitter: a uniformly random wait up to the capped exponential bound, so clients that lost the server at
    // the same moment do not come back at the same moment.
    return Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  }

  function seconds(ms) {
    return `${(ms / 1000).toFixed(1)} s`;
  }

  function wsUrl(path, token) {
    const url = new URL(path, window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // Only strict mode puts the token here (it must be there at connect); every other mode sends it in a message.
    if (token) url.searchParams.set('access_token', token);
    return url.href;
  }

  function display(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'object') return JSON.stringify(value);
    const text = String(value);
    // Django's JSON datetimes ("2026-12-03T22:31:08.123Z"): shown to the second, in UTC like the server.
    const datetime = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(text);
    return datetime ? `${datetime[1]} ${datetime[2]}` : text;
  }

  function errorText(body, status) {
    const error = body && Array.isArray(body.errors) && body.errors[0];
    return error && error.message ? error.message : `HTTP ${status}`;
  }

  async function request(method, path, body, token) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null; // an HTML error page: the status says enough
    }
    return { status: response.status, body: parsed };
  }

  // -- what the page shows about each socket ------------------------------------------------------------------

  function showSocket(name, state, detail) {
    const socket = demo.sockets[name];
    socket.state = state;
    socket.detail = detail || state;
    const cell = $(`${name}-state`);
    cell.dataset.state = state;
    cell.textContent = socket.detail;
    $(`${name}-user`).textContent = demo.user;
  }

  function showSocketInfo() {
    for (const name of ['rest', 'graphql', 'logs']) {
      const info = demo.info[name];
      $(`${name}-path`).textContent = info ? info.path : '—';
      $(`${name}-mode`).textContent = info ? info.authentication : 'disabled';
    }
  }

  function recordClose(name, event) {
    const closes = demo.sockets[name].closes;
    closes.push({ code: event.code, reason: event.reason });
    if (closes.length > CLOSES_KEPT) closes.shift();
  }

  function setPanel(listId, noteId, state, text) {
    $(listId).dataset.state = state;
    $(noteId).textContent = text;
  }

  // -- a JSON socket (REST and logs): auth by mode, ping/pong, reconnect with backoff --------------------------

  class JsonSocket {
    constructor(name, { blocked, onReady, onFrame, onDown }) {
      this.name = name;
      this.blocked = blocked; // () => null, or { state, text } when this socket must not be opened now
      this.onReady = onReady; // authenticated (or public): subscribe
      this.onFrame = onFrame;
      this.onDown = onDown; // the connection was lost (not a deliberate close)
      this.conn = null;
      this.timer = null;
      this.attempts = 0;
    }

    get info() {
      return demo.info[this.name];
    }

    start() {
      this.stop();
      this.attempts = 0;
      const reason = this.blocked();
      if (reason) {
        showSocket(this.name, reason.state, reason.text);
        return;
      }
      this.open();
    }

    stop() {
      clearTimeout(this.timer);
      this.timer = null;
      const conn = this.conn;
      this.conn = null;
      if (conn) {
        conn.deliberate = true;
        conn.ws.close(1000);
      }
    }

    open() {
      this.timer = null;
      const strict = this.info.authentication === 'strict';
      const token = strict && session ? session.access : null;
      const conn = { ws: new WebSocket(wsUrl(this.info.path, token)), deliberate: false, ready: false };
      this.conn = conn;
      demo.sockets[this.name].opens += 1;
      showSocket(this.name, 'connecting', this.attempts ? 'reconnecting…' : 'connecting…');
      conn.ws.onopen = () => this.opened(conn, strict);
      conn.ws.onmessage = (event) => this.received(conn, event.data);
      conn.ws.onclose = (event) => this.closed(conn, event);
    }

    opened(conn, strict) {
      // Handshake mode needs an auth message first; in public mode it makes a logged-in user's connection theirs.
      // Strict mode's URL token has already authenticated this connection.
      if (session && !strict) {
        this.send({ type: 'auth', access_token: session.access });
      } else {
        this.ready(conn);
      }
    }

    ready(conn) {
      conn.ready = true;
      this.attempts = 0; // only a connection that got this far resets the backoff (a 4401 loop keeps backing off)
      showSocket(this.name, 'connected', 'connected');
      this.onReady();
    }

    received(conn, text) {
      if (conn !== this.conn) return;
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        return;
      }
      if (frame.type === 'ping') {
        this.send({ type: 'pong' }); // the heartbeat: an idle socket that does not answer is closed 4408
      } else if (frame.type === 'auth') {
        this.authFrame(conn, frame);
      } else {
        this.onFrame(frame);
      }
    }

    authFrame(conn, frame) {
      if (frame.status === 'ok') {
        if (!conn.ready) this.ready(conn);
        return;
      }
      // TOKEN_EXPIRED (expiry, or the session was revoked) or AUTH_FAILED: a refreshed token restores the
      // connection (re-sent here, or used by the reconnect); a refresh that fails ends the login (endSession).
      const code = frame.error && frame.error.code;
      demo.sockets[this.name].lastError = code || 'error';
      if (session) recoverAuth(this);
    }

    closed(conn, event) {
      recordClose(this.name, event);
      if (conn !== this.conn || conn.deliberate) return;
      this.conn = null;
      this.onDown();
      const delay = backoffDelay(this.attempts);
      this.attempts += 1;
      const why = event.reason ? `${event.code} ${event.reason}` : `${event.code}`;
      showSocket(this.name, 'reconnecting', `reconnecting in ${seconds(delay)} (closed ${why})`);
      this.timer = setTimeout(() => this.open(), delay);
    }

    send(message) {
      if (!this.conn || this.conn.ws.readyState !== WebSocket.OPEN) return false;
      this.conn.ws.send(JSON.stringify(message));
      return true;
    }

    get isReady() {
      return Boolean(this.conn && this.conn.ready);
    }

    reauth(token) {
      // A live connection takes the refreshed token in place: no reconnect, subscriptions go on.
      if (this.isReady) this.send({ type: 'auth', access_token: token });
    }
  }

  // -- the REST socket: the two tables and the edit form ------------------------------------------------------

  const rest = new JsonSocket('rest', {
    blocked: restBlocked,
    onReady: () => COLLECTIONS.forEach(subscribe),
    onFrame: restFrame,
    onDown: restDown,
  });

  function restBlocked() {
    const info = demo.info.rest;
    if (!info) {
      COLLECTIONS.forEach((c) => clearPanel(c, 'off', 'The REST socket is disabled on this server.'));
      return { state: 'disabled', text: 'disabled on this server' };
    }
    if (!session && info.authentication !== 'public') {
      // In handshake and strict mode every connection must log in; a visitor without a login cannot use it.
      const text = `Log in to see live data: this server requires a login on the REST socket (${info.authentication} mode).`;
      COLLECTIONS.forEach((c) => clearPanel(c, 'login-required', text));
      return { state: 'login-required', text: `login required (${info.authentication} mode)` };
    }
    return null;
  }

  function subscribe(collection) {
    setPanel(collection, `${collection}-note`, 'loading', 'Loading…');
    rest.send({ type: 'subscribe', collection, query: SUBSCRIPTION_QUERY, uid: collection });
  }

  function restFrame(frame) {
    if (frame.type === 'subscription') subscriptionFrame(frame);
    else if (frame.type === 'subscribe' && frame.status === 'error') subscribeError(frame);
    else if (frame.type === 'items') itemsReply(frame);
  }

  function subscriptionFrame(frame) {
    const collection = frame.uid;
    if (!COLLECTIONS.includes(collection)) return;
    const data = Array.isArray(frame.data) ? frame.data : [];
    if (frame.event === 'init') initRows(collection, data);
    else if (frame.event === 'create' || frame.event === 'update') data.forEach((row) => upsertRow(collection, row));
    else if (frame.event === 'delete') data.forEach((key) => removeRow(collection, key));
    else if (frame.event === 'resync') subscribe(collection); // events may have been missed: a fresh init
  }

  function subscribeError(frame) {
    const collection = frame.uid;
    if (!COLLECTIONS.includes(collection)) return;
    const error = frame.error || {};
    if (error.code === 'FORBIDDEN') {
      clearPanel(collection, 'no-access', 'No access: your role may not read this collection.');
    } else {
      clearPanel(collection, 'error', `${error.code || 'ERROR'}: ${error.message || 'subscription failed'}`);
    }
  }

  function restDown() {
    for (const collection of COLLECTIONS) {
      // The rows stay on screen, marked stale, until the resubscription's init replaces them.
      if ($(collection).dataset.state === 'live') {
        setPanel(collection, `${collection}-note`, 'stale', 'Connection lost: showing the last rows seen, reconnecting…');
      }
    }
    for (const uid of pendingEdits.keys()) showEditResult(uid, 'error', 'The connection was lost before the reply.');
  }

  // -- tables ---------------------------------------------------------------------------------------------------

  function compareKeys(a, b) {
    const x = Number(a);
    const y = Number(b);
    if (Number.isFinite(x) && Number.isFinite(y)) return x - y;
    return String(a).localeCompare(String(b));
  }

  function initRows(collection, rows) {
    const map = demo.rows[collection];
    map.clear();
    for (const row of rows) map.set(String(row.id), row);
    demo.columns[collection] = [];
    rows.forEach((row) => addColumns(collection, row));
    renderTable(collection);
    setPanel(collection, `${collection}-note`, 'live', 'Live: changes by anyone appear here as they commit.');
  }

  function addColumns(collection, row) {
    // The columns are the fields the server sends this user (the public role gets no stock), in the server's order.
    const columns = demo.columns[collection];
    let added = false;
    for (const field of Object.keys(row)) {
      if (!columns.includes(field)) {
        columns.push(field);
        added = true;
      }
    }
    return added;
  }

  function renderTable(collection) {
    const table = $(collection);
    const header = document.createElement('tr');
    for (const field of demo.columns[collection]) {
      const th = document.createElement('th');
      th.dataset.field = field;
      th.scope = 'col';
      th.textContent = field;
      header.append(th);
    }
    table.tHead.replaceChildren(header);
    const keys = [...demo.rows[collection].keys()].sort(compareKeys);
    table.tBodies[0].replaceChildren(...keys.map((key) => rowElement(collection, demo.rows[collection].get(key))));
    updateBadge(collection);
  }

  function rowElement(collection, row, changed = false) {
    const tr = document.createElement('tr');
    tr.dataset.id = String(row.id);
    if (changed) tr.classList.add('changed'); // a CSS animation: it plays once, no timer
    if (collection === 'products' && String(row.id) === $('edit-id').value) tr.classList.add('selected');
    for (const field of demo.columns[collection]) {
      const td = document.createElement('td');
      td.dataset.field = field;
      td.textContent = display(row[field]);
      tr.append(td);
    }
    return tr;
  }

  function findRow(collection, key) {
    return $(collection).tBodies[0].querySelector(`tr[data-id="${CSS.escape(String(key))}"]`);
  }

  function upsertRow(collection, row) {
    // A row may be new to this table although the event is an update: the init shows at most the server's
    // default limit of rows, events come for every row this user may read.
    const key = String(row.id);
    demo.rows[collection].set(key, row);
    if (addColumns(collection, row)) {
      renderTable(collection);
      return;
    }
    const tr = rowElement(collection, row, true);
    const old = findRow(collection, key);
    if (old) {
      old.replaceWith(tr);
    } else {
      const tbody = $(collection).tBodies[0];
      const next = [...tbody.rows].find((other) => compareKeys(other.dataset.id, key) > 0);
      tbody.insertBefore(tr, next || null);
      updateBadge(collection);
    }
  }

  function removeRow(collection, key) {
    demo.rows[collection].delete(String(key));
    const tr = findRow(collection, key);
    if (tr) tr.remove();
    updateBadge(collection);
  }

  function clearPanel(collection, state, text) {
    demo.rows[collection].clear();
    demo.columns[collection] = [];
    renderTable(collection);
    setPanel(collection, `${collection}-note`, state, text);
  }

  function updateBadge(collection) {
    const count = demo.rows[collection].size;
    $(`${collection}-badge`).textContent = count ? `${count}` : '';
  }

  // -- the edit form: saves through the REST socket's items action ---------------------------------------------

  function selectProduct(event) {
    const tr = event.target.closest('tr[data-id]');
    if (!tr) return;
    const row = demo.rows.products.get(tr.dataset.id);
    if (!row) return;
    for (const other of $('products').tBodies[0].querySelectorAll('tr.selected')) other.classList.remove('selected');
    tr.classList.add('selected');
    $('edit-id').value = String(row.id);
    $('edit-name').value = String(row.name ?? '');
    $('edit-price').value = String(row.price ?? '');
    const stock = $('edit-stock');
    const readable = 'stock' in row; // the public role cannot read (or write) it
    stock.disabled = !readable;
    stock.value = readable ? String(row.stock ?? '') : '';
    stock.placeholder = readable ? '' : 'not readable';
    $('edit-save').disabled = false;
    showEditResult(null, 'idle', '');
  }

  function resetEditForm() {
    $('edit-form').reset(); // another user: other rights, other fields
    $('edit-stock').disabled = false;
    $('edit-stock').placeholder = '';
    $('edit-save').disabled = true;
    showEditResult(null, 'idle', '');
  }

  function editData() {
    const data = { name: $('edit-name').value, price: $('edit-price').value.trim() };
    const stock = $('edit-stock');
    if (!stock.disabled) {
      const text = stock.value.trim();
      // A whole number goes as a number; anything else as typed, so that the server's validation answers it.
      data.stock = /^-?\d+$/.test(text) ? Number(text) : text;
    }
    return data;
  }

  function saveProduct(event) {
    event.preventDefault();
    const row = demo.rows.products.get($('edit-id').value);
    if (!row) {
      showEditResult(null, 'error', 'Click a product row first.');
      return;
    }
    editCounter += 1;
    const uid = `edit-${editCounter}`;
    const message = {
      type: 'items', action: 'update', collection: 'products', id: row.id, data: editData(), query: { fields: ['*'] }, uid,
    };
    if (!rest.isReady || !rest.send(message)) {
      showEditResult(null, 'error', 'The REST socket is not connected.');
      return;
    }
    pendingEdits.set(uid, row.id);
    showEditResult(uid, 'pending', `Saving product #${row.id}…`);
  }

  function itemsReply(frame) {
    const uid = frame.uid;
    if (!pendingEdits.has(uid)) return;
    if (frame.status === 'error') {
      const error = frame.error || {};
      showEditResult(uid, 'error', `${error.code || 'ERROR'}: ${error.message || 'the save failed'}`);
      return;
    }
    const row = frame.data;
    if (row && typeof row === 'object' && 'id' in row) upsertRow('products', row); // the subscription's event follows
    showEditResult(uid, 'ok', `Saved product #${pendingEdits.get(uid)} at ${clock(new Date())}.`);
  }

  function showEditResult(uid, status, text) {
    const result = $('edit-result');
    result.dataset.status = status;
    result.textContent = text;
    if (uid && status !== 'pending') {
      pendingEdits.delete(uid);
      demo.edits.push({ uid, status, text });
    }
  }

  // -- the GraphQL socket (graphql-ws) ----------------------------------------------------------------------

  const graphql = { client: null, unsubscribe: null, generation: 0, attempts: 0, timer: null };

  function startGraphql() {
    stopGraphql();
    const info = demo.info.graphql;
    const list = 'graphql-events';
    $('graphql-query').textContent = session ? GRAPHQL_USER_QUERY : GRAPHQL_PUBLIC_QUERY;
    if (!info) {
      showSocket('graphql', 'disabled', 'disabled on this server');
      setPanel(list, 'graphql-note', 'off', 'The GraphQL socket is disabled on this server.');
      return;
    }
    if (!session && info.authentication !== 'public') {
      showSocket('graphql', 'login-required', `login required (${info.authentication} mode)`);
      setPanel(list, 'graphql-note', 'login-required',
        `Log in to subscribe: this server requires a login on the GraphQL socket (${info.authentication} mode).`);
      return;
    }
    if (!window.graphqlWs) {
      showSocket('graphql', 'error', 'the graphql-ws client did not load');
      return;
    }
    openGraphql(info);
  }

  function openGraphql(info) {
    const query = session ? GRAPHQL_USER_QUERY : GRAPHQL_PUBLIC_QUERY;
    const strict = info.authentication === 'strict';
    graphql.generation += 1;
    const generation = graphql.generation;
    const current = () => generation === graphql.generation; // a disposed client's callbacks change nothing
    const client = window.graphqlWs.createClient({
      url: () => wsUrl(info.path, strict && session ? session.access : null),
      // A function: each (re)connect sends the token of that moment. Token expiry closes this socket 4403 and the
      // client reconnects with the refreshed token.
      connectionParams: () => (session ? { access_token: session.access } : undefined),
      retryAttempts: Infinity,
      shouldRetry: () => true, // graphql-ws gives up on an unreachable server by default: a restart is not fatal
      retryWait: (retries) => waitToReconnect(generation, retries),
      on: {
        connecting: (isRetry) => current() && showSocket('graphql', 'connecting', isRetry ? 'reconnecting…' : 'connecting…'),
        connected: () => current() && graphqlConnected(),
        closed: (event) => current() && recordClose('graphql', event),
      },
    });
    demo.sockets.graphql.opens += 1;
    graphql.client = client;
    graphql.unsubscribe = client.subscribe({ query }, {
      next: (value) => current() && graphqlNext(value),
      error: (error) => current() && graphqlError(error),
      complete: () => {},
    });
  }

  function waitToReconnect(generation, retries) {
    const delay = backoffDelay(retries);
    if (generation === graphql.generation) {
      showSocket('graphql', 'reconnecting', `reconnecting in ${seconds(delay)}`);
      setPanel('graphql-events', 'graphql-note', 'stale', 'Connection lost: reconnecting…');
    }
    return new Promise((resolve) => setTimeout(resolve, delay));
  }

  function graphqlConnected() {
    graphql.attempts = 0;
    showSocket('graphql', 'connected', 'connected');
    setPanel('graphql-events', 'graphql-note', 'live', 'Subscribed: every product change appears here (newest first).');
  }

  function graphqlNext(value) {
    const mutated = value && value.data && value.data.products_mutated;
    if (!mutated) return;
    demo.graphqlEvents.unshift(mutated);
    demo.graphqlEvents.length = Math.min(demo.graphqlEvents.length, GRAPHQL_EVENTS_KEPT);
    const li = document.createElement('li');
    li.dataset.key = display(mutated.key);
    li.dataset.event = display(mutated.event);
    li.textContent = graphqlEventText(mutated);
    const list = $('graphql-events');
    list.prepend(li);
    while (list.children.length > GRAPHQL_EVENTS_KEPT) list.lastElementChild.remove();
  }

  function graphqlEventText(mutated) {
    const time = clock(new Date());
    if (mutated.event === 'resync') return `${time} resync: events may have been missed; re-read the products`;
    const data = mutated.data;
    const fields = data
      ? Object.entries(data).filter(([name]) => name !== 'id').map(([name, value]) => `${name} ${display(value)}`)
      : [];
    return `${time} ${mutated.event} product #${display(mutated.key)}${fields.length ? ': ' : ''}${fields.join(', ')}`;
  }

  function graphqlError(error) {
    if (Array.isArray(error)) {
      // The operation was refused (GraphQL errors): the socket stays, this subscription ends.
      const first = error[0] || {};
      const code = first.extensions && first.extensions.code;
      const state = code === 'FORBIDDEN' ? 'no-access' : 'error';
      const text = code === 'FORBIDDEN' ? 'No access: your role may not read products.' : first.message || 'error';
      setPanel('graphql-events', 'graphql-note', state, text);
      showSocket('graphql', 'idle', 'no subscription running'); // the client closes an unused socket
      return;
    }
    // A close graphql-ws treats as final (4400, 4429, 4500...): start a new client after a backoff.
    const code = error && error.code;
    const delay = backoffDelay(graphql.attempts);
    graphql.attempts += 1;
    showSocket('graphql', 'reconnecting', `reconnecting in ${seconds(delay)} (closed ${code || 'with an error'})`);
    const generation = graphql.generation;
    graphql.timer = setTimeout(() => generation === graphql.generation && startGraphqlAgain(), delay);
  }

  function startGraphqlAgain() {
    const attempts = graphql.attempts;
    startGraphql();
    graphql.attempts = attempts; // keep backing off until a connection succeeds
  }

  function stopGraphql() {
    graphql.generation += 1;
    clearTimeout(graphql.timer);
    if (graphql.unsubscribe) graphql.unsubscribe();
    if (graphql.client) graphql.client.dispose();
    graphql.client = null;
    graphql.unsubscribe = null;
    graphql.attempts = 0;
  }

  // -- the logs socket (admins only) -----------------------------------------------------------------------------

  const logs = new JsonSocket('logs', {
    blocked: logsBlocked,
    onReady: () => logs.send({ type: 'subscribe', log_level: 'info' }),
    onFrame: logsFrame,
    onDown: () => setPanel('log-lines', 'logs-note', 'stale', 'Connection lost: reconnecting…'),
  });

  function logsBlocked() {
    // A non-admin never opens this socket: its panel stays hidden.
    $('logs-panel').hidden = !(session && session.admin && demo.info.logs);
    if (!demo.info.logs) return { state: 'disabled', text: 'disabled on this server' };
    if (!session || !session.admin) return { state: 'admins-only', text: 'admins only' };
    return null;
  }

  function logsFrame(frame) {
    if (frame.type !== 'logs') return;
    if (frame.status === 'error') {
      const error = frame.error || {};
      setPanel('log-lines', 'logs-note', 'error', `${error.code || 'ERROR'}: ${error.message || ''}`);
    } else if (frame.event === 'subscribe') {
      setPanel('log-lines', 'logs-note', 'live', `Streaming every server process's lines at ${frame.log_level} and above.`);
    } else if (frame.data) {
      appendLogLine(frame.data, frame.uid);
    }
  }

  function appendLogLine(data, node) {
    const list = $('log-lines');
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    const li = document.createElement('li');
    const level = LEVEL_NAMES[data.level] || String(data.level);
    li.dataset.level = level;
    const time = typeof data.time === 'number' ? clock(new Date(data.time)) : '';
    li.textContent = `${time} ${level.toUpperCase()} ${display(data.msg)}`;
    if (node) li.title = `server process ${node}`;
    list.append(li);
    while (list.children.length > LOG_LINES_KEPT) list.firstElementChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight; // follow the tail unless the reader scrolled up
  }

  // -- the session: login, refresh before expiry, logout ----------------------------------------------------

  async function fetchInfo(token) {
    const reply = await request('GET', '/server/info', undefined, token);
    if (reply.status !== 200 || !reply.body || !reply.body.data) throw new Error(errorText(reply.body, reply.status));
    return reply.body.data;
  }

  function socketInfo(data) {
    const websocket = data.websocket || {}; // false: every socket is disabled
    return { rest: websocket.rest || false, graphql: websocket.graphql || false, logs: websocket.logs || false };
  }

  async function login(email, password) {
    const reply = await request('POST', '/auth/login', { email, password });
    if (reply.status !== 200 || !reply.body || !reply.body.data) throw new Error(errorText(reply.body, reply.status));
    const tokens = reply.body.data;
    // /server/info adds this process's event counters for superusers only (PROTOCOL §9): the page's one way to
    // know whether to open the logs socket, which a non-admin must not open.
    const info = await fetchInfo(tokens.access_token);
    stopAll();
    session = { email, admin: Boolean(info.events), refreshedAt: 0 };
    takeTokens(tokens);
    startAll();
  }

  function takeTokens(tokens) {
    session.access = tokens.access_token;
    session.refresh = tokens.refresh_token; // rotated: the previous one is blacklisted now
    session.lifetime = tokens.expires;
    session.expiresAt = Date.now() + tokens.expires;
    demo.tokenExpiresAt = new Date(session.expiresAt).toISOString();
    scheduleRefresh();
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    const lead = Math.min(REFRESH_LEAD_MS, session.lifetime * REFRESH_LEAD_SHARE);
    refreshTimer = setTimeout(refreshSession, Math.max(0, session.expiresAt - lead - Date.now()));
  }

  function refreshSession() {
    if (!refreshing) refreshing = refreshTokens().finally(() => { refreshing = null; });
    return refreshing;
  }

  async function refreshTokens() {
    const current = session;
    if (!current) return;
    let reply;
    try {
      reply = await request('POST', '/auth/refresh', { refresh_token: current.refresh });
    } catch {
      reply = null; // no answer at all (the server restarting)
    }
    if (session !== current) return; // logged out meanwhile
    if (!reply && Date.now() < current.expiresAt - REFRESH_RETRY_MS) {
      refreshTimer = setTimeout(refreshSession, REFRESH_RETRY_MS);
      return;
    }
    if (!reply || reply.status !== 200 || !reply.body || !reply.body.data) {
      const why = reply ? errorText(reply.body, reply.status) : 'the server did not answer';
      endSession(`Your session ended (token refresh failed: ${why}); you are browsing as the public role.`);
      return;
    }
    takeTokens(reply.body.data);
    current.refreshedAt = Date.now();
    demo.refreshes += 1;
    demo.tokenRefreshedAt = new Date(current.refreshedAt).toISOString();
    showAccount(`token refreshed at ${clock(new Date(current.refreshedAt))}`);
    rest.reauth(current.access);
    logs.reauth(current.access);
  }

  function recoverAuth(socket) {
    if (Date.now() - session.refreshedAt < REAUTH_GRACE_MS) {
      socket.reauth(session.access); // an error about the token this refresh just replaced
    } else {
      refreshSession();
    }
  }

  function endSession(message) {
    clearTimeout(refreshTimer);
    stopAll();
    session = null;
    startAll(message);
  }

  async function logout() {
    const current = session;
    if (!current) return;
    clearTimeout(refreshTimer);
    stopAll(); // first: the logout revokes this session's sockets, and these closes are deliberate
    session = null;
    startAll('Logged out.');
    try {
      await request('POST', '/auth/logout', { refresh_token: current.refresh });
    } catch {
      // Unreachable server: the refresh token still expires; nothing on this page holds it any more.
    }
  }

  function stopAll() {
    rest.stop();
    stopGraphql();
    logs.stop();
  }

  function startAll(message) {
    demo.user = session ? session.email : 'public';
    demo.admin = Boolean(session && session.admin);
    showAccount(message);
    resetEditForm();
    // Another identity, other rights: nothing read under the previous one stays on screen.
    COLLECTIONS.forEach((collection) => clearPanel(collection, 'loading', 'Connecting…'));
    setPanel('log-lines', 'logs-note', 'loading', 'Connecting…');
    $('log-lines').replaceChildren();
    $('graphql-events').replaceChildren();
    demo.graphqlEvents.length = 0;
    rest.start();
    startGraphql();
    logs.start();
  }

  function showAccount(message) {
    $('session-user').textContent = demo.user;
    $('logout').hidden = !session;
    $('login-form').hidden = Boolean(session);
    for (const button of document.querySelectorAll('.fill-login')) button.disabled = Boolean(session);
    for (const name of ['rest', 'graphql', 'logs']) $(`${name}-user`).textContent = demo.user;
    const status = $('token-status');
    if (message) status.textContent = message;
    else if (session) status.textContent = `token valid until ${clock(new Date(session.expiresAt))}`;
    else status.textContent = '';
    if (!session) demo.tokenExpiresAt = null;
  }

  // -- wiring -------------------------------------------------------------------------------------------------

  async function submitLogin(event) {
    event.preventDefault();
    const error = $('login-error');
    const button = $('login-submit');
    error.hidden = true;
    button.disabled = true;
    try {
      await login($('login-email').value.trim(), $('login-password').value);
      $('login-password').value = '';
    } catch (failure) {
      error.textContent = `Login failed: ${failure.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  function fillLogin(event) {
    const button = event.target.closest('.fill-login');
    if (!button) return;
    $('login-email').value = button.dataset.email;
    $('login-password').value = button.dataset.password;
    $('login-form').requestSubmit();
  }

  function wire() {
    $('login-form').addEventListener('submit', submitLogin);
    $('demo-accounts').addEventListener('click', fillLogin);
    $('logout').addEventListener('click', logout);
    $('products').tBodies[0].addEventListener('click', selectProduct);
    $('edit-form').addEventListener('submit', saveProduct);
  }

  async function init() {
    wire();
    try {
      demo.info = socketInfo(await fetchInfo(null));
    } catch (failure) {
      const banner = $('page-error');
      banner.textContent = `GET /server/info failed (${failure.message}): reload the page to try again.`;
      banner.hidden = false;
      return;
    }
    showSocketInfo();
    startAll();
  }

  demo.login = login; // for the browser console
  demo.logout = logout;
  init();
})();
