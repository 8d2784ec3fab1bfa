// What a browser page on another origin does with the server: log in over HTTP (CORS), then the REST socket, the
// GraphQL socket (the npm graphql-ws client) and the logs socket. Everything observed lands in window.seen, which
// the test reads (page.wait_for_function / page.evaluate); nothing here waits on a clock.
'use strict';

window.seen = { login: null, rest: null, logs: null, graphql: null };

// POST /auth/login with a JSON body: a "non-simple" request, so the browser sends a CORS preflight first.
window.login = async (server, email, password) => {
  try {
    const response = await fetch(`${server}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    const body = await response.json();
    window.seen.login = { ok: true, status: response.status, token: body.data ? body.data.access_token : null };
  } catch (error) {
    window.seen.login = { ok: false, error: String(error) };
  }
  return window.seen.login;
};

// A JSON socket (REST or logs): authenticates with its first message, then sends `after_auth`; answers pings.
function jsonSocket(name, url, token, afterAuth) {
  const state = { opened: false, error: false, closed: null, frames: [] };
  window.seen[name] = state;
  const socket = new WebSocket(url);
  socket.onopen = () => {
    state.opened = true;
    socket.send(JSON.stringify({ type: 'auth', access_token: token }));
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    state.frames.push(frame);
    if (frame.type === 'auth' && frame.status === 'ok') socket.send(JSON.stringify(afterAuth));
    if (frame.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
  };
  socket.onerror = () => { state.error = true; };
  socket.onclose = (event) => { state.closed = { code: event.code, clean: event.wasClean }; };
}

window.openRest = (url, token, product) => jsonSocket('rest', url, token, {
  type: 'subscribe',
  collection: 'products',
  query: { fields: ['id', 'stock'], filter: { id: { _eq: product } } },
  uid: 'p',
});

window.openLogs = (url, token) => jsonSocket('logs', url, token, { type: 'subscribe', log_level: 'info' });

window.openGraphql = (url, token, query) => {
  const state = { connected: false, closed: [], errors: [], next: [] };
  window.seen.graphql = state;
  const client = graphqlWs.createClient({
    url,
    connectionParams: { access_token: token },
    lazy: false,
    retryAttempts: 0,
    on: {
      connected: () => { state.connected = true; },
      closed: (event) => { state.closed.push({ code: event.code }); },
    },
  });
  client.subscribe({ query }, {
    next: (value) => { state.next.push(value); },
    error: (error) => { state.errors.push(error instanceof Event ? error.type : String(error)); },
    complete: () => {},
  });
};
