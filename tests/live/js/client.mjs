#!/usr/bin/env node
// A live-test driver for the real npm `graphql-ws` client (over `ws`) against a running server.
//
// It runs one scenario and prints one JSON line per observed event on stdout, then exits:
//   {"event":"connecting","retry":false}
//   {"event":"connection_params","call":1,"keys":["access_token"]}   (credentials are never printed)
//   {"event":"connected","retry":false,"payload":null}
//   {"event":"next","payload":{"data":{...}}}
//   {"event":"ping"|"pong","received":true,"payload":null}            (with --log-pings)
//   {"event":"closed","code":4403,"reason":"Forbidden","clean":true}
//   {"event":"should_retry","code":4403,"reason":"Forbidden","retry":true}
//   {"event":"error","errors":[...]} | {"event":"error","code":4401,"reason":"..."} | {"event":"error","message":"..."}
//   {"event":"complete"}
//   {"event":"exit","reason":"done"|"complete"|"error"|"timeout","code":0}
//
// Usage (every option can also come from the environment, e.g. GQL_URL, GQL_AUTH, GQL_EMAIL):
//   node tests/live/js/client.mjs --url ws://127.0.0.1:8000/graphql --auth access_token \
//     --email editor@example.com --password editor-password \
//     --scenario subscribe --count 1 --query 'subscription { products_mutated { key event } }'
//
// --auth says how credentials reach the server; connectionParams (and the URL, for `url`) is a function that
// runs on every (re)connect, so a reconnect after token expiry (close 4403) always carries a fresh token:
//   none           no connection_init payload (public role)
//   access_token   POST /auth/login, then connection_init {access_token}
//   refresh_token  POST /auth/login, then connection_init {refresh_token}
//   password       connection_init {email, password}
//   url            POST /auth/login, then connect to <url>?access_token=<token> (strict mode); no payload
// Scenarios: subscribe (exit after --count `next` payloads), query (exit when the operation completes),
// connect (eager client, exit on the first connection_ack).
// --from-connection N counts only the `next` payloads received on the N-th connection or later (default 1): a test
// that retries writes until it sees an event may cause more than one on an earlier connection.
// Exit codes: 0 done/complete, 1 operation error, 2 bad usage, 3 timeout.

import { writeSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const OPTIONS = {
  url: { type: 'string' },
  http: { type: 'string' },
  auth: { type: 'string' },
  email: { type: 'string' },
  password: { type: 'string' },
  scenario: { type: 'string' },
  query: { type: 'string' },
  variables: { type: 'string' },
  count: { type: 'string' },
  'from-connection': { type: 'string' },
  timeout: { type: 'string' },
  'keep-alive': { type: 'string' },
  'retry-attempts': { type: 'string' },
  'retry-wait-ms': { type: 'string' },
  'log-pings': { type: 'boolean' },
};
const AUTH_KINDS = ['none', 'access_token', 'refresh_token', 'password', 'url'];
const SCENARIOS = ['subscribe', 'query', 'connect'];

let finished = false;

function emit(line) {
  // Nothing after the `exit` line; synchronous writes, so every line is on stdout before the process exits.
  if (finished && line.event !== 'exit') return;
  writeSync(1, `${JSON.stringify(line)}\n`);
}

function usage(message) {
  process.stderr.write(`client.mjs: ${message}\n`);
  process.exit(2);
}

function option(values, name, fallback) {
  const envName = `GQL_${name.toUpperCase().replaceAll('-', '_')}`;
  return values[name] ?? process.env[envName] ?? fallback;
}

function number(values, name, fallback) {
  const raw = option(values, name, undefined);
  if (raw === undefined) return fallback;
  const parsed = Number(raw);
  if (!Number.isFinite(parsed) || parsed < 0) usage(`--${name} must be a non-negative number, not ${raw}`);
  return parsed;
}

function describeError(err) {
  if (Array.isArray(err)) return { errors: err };
  if (err && typeof err === 'object' && 'code' in err && 'reason' in err) {
    return { code: err.code, reason: err.reason };
  }
  if (err && typeof err === 'object' && 'message' in err) return { message: String(err.message) };
  if (err && typeof err === 'object' && err.error instanceof Error) return { message: err.error.message };
  return { message: String(err) };
}

let values;
try {
  ({ values } = parseArgs({ options: OPTIONS, strict: true, allowPositionals: false }));
} catch (err) {
  usage(err.message);
}

const url = option(values, 'url');
if (!url) usage('--url is required (ws://host:port/graphql)');
let parsedUrl;
try {
  parsedUrl = new URL(url);
} catch {
  usage(`--url is not a URL: ${url}`);
}
const http = (option(values, 'http') ?? `${parsedUrl.protocol === 'wss:' ? 'https' : 'http'}://${parsedUrl.host}`)
  .replace(/\/+$/, '');
const auth = option(values, 'auth', 'none');
if (!AUTH_KINDS.includes(auth)) usage(`--auth must be one of ${AUTH_KINDS.join(', ')}`);
const email = option(values, 'email');
const password = option(values, 'password');
if (auth !== 'none' && (!email || !password)) usage(`--auth ${auth} needs --email and --password`);
const scenario = option(values, 'scenario', 'subscribe');
if (!SCENARIOS.includes(scenario)) usage(`--scenario must be one of ${SCENARIOS.join(', ')}`);
const query = option(values, 'query');
if (!query && scenario !== 'connect') usage(`--scenario ${scenario} needs --query`);
let variables;
try {
  variables = JSON.parse(option(values, 'variables', '{}'));
} catch (err) {
  usage(`--variables is not JSON: ${err.message}`);
}
const count = number(values, 'count', 1);
const fromConnection = number(values, 'from-connection', 1);
const timeoutSeconds = number(values, 'timeout', 20);
const keepAlive = number(values, 'keep-alive', 10_000);
const retryAttempts = number(values, 'retry-attempts', 5);
const retryWaitMs = number(values, 'retry-wait-ms', undefined);
const logPings = Boolean(option(values, 'log-pings', false));

async function login() {
  const response = await fetch(`${http}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  const body = await response.json().catch(() => null);
  if (response.status !== 200 || !body?.data?.access_token) {
    throw new Error(`login failed with HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.data;
}

let paramsCalls = 0;
async function connectionParams() {
  paramsCalls += 1;
  let payload;
  if (auth === 'access_token') payload = { access_token: (await login()).access_token };
  else if (auth === 'refresh_token') payload = { refresh_token: (await login()).refresh_token };
  else if (auth === 'password') payload = { email, password };
  emit({ event: 'connection_params', call: paramsCalls, keys: payload ? Object.keys(payload) : [] });
  return payload;
}

let urlCalls = 0;
async function connectUrl() {
  if (auth !== 'url') return url;
  urlCalls += 1;
  const { access_token: token } = await login();
  const fresh = new URL(url);
  fresh.searchParams.set('access_token', token);
  emit({ event: 'url', call: urlCalls });
  return fresh.toString();
}

let client;
let connections = 0;

async function finish(reason, code) {
  if (finished) return;
  finished = true;
  emit({ event: 'exit', reason, code });
  try {
    await Promise.race([client?.dispose(), new Promise((resolve) => setTimeout(resolve, 1000))]);
  } finally {
    process.exit(code);
  }
}

const timer = setTimeout(() => {
  emit({ event: 'timeout', seconds: timeoutSeconds });
  finish('timeout', 3);
}, timeoutSeconds * 1000);
timer.unref?.();

client = createClient({
  url: auth === 'url' ? connectUrl : url,
  webSocketImpl: WebSocket,
  lazy: scenario !== 'connect',
  onNonLazyError: (err) => {
    emit({ event: 'error', ...describeError(err) });
    finish('error', 1);
  },
  keepAlive,
  connectionParams,
  retryAttempts,
  ...(retryWaitMs === undefined
    ? {}
    : { retryWait: () => new Promise((resolve) => setTimeout(resolve, retryWaitMs)) }),
  // Like the library's default (retry on any close event, not on socket errors such as a refused
  // handshake), but visible. graphql-ws only asks this for codes it does not treat as fatal: 4403 comes
  // here, 4400/4401/4406/4409/4429/4500 are never retried.
  shouldRetry: (errOrCloseEvent) => {
    const closeLike =
      errOrCloseEvent && typeof errOrCloseEvent === 'object' && 'code' in errOrCloseEvent && 'reason' in errOrCloseEvent;
    emit({ event: 'should_retry', ...describeError(errOrCloseEvent), retry: Boolean(closeLike) });
    return Boolean(closeLike);
  },
  on: {
    connecting: (isRetry) => emit({ event: 'connecting', retry: Boolean(isRetry) }),
    connected: (_socket, payload, wasRetry) => {
      connections += 1;
      emit({ event: 'connected', retry: Boolean(wasRetry), payload: payload ?? null });
      if (scenario === 'connect') finish('done', 0);
    },
    closed: (event) => {
      const { code, reason, wasClean } = event ?? {};
      emit({ event: 'closed', code: code ?? null, reason: reason ?? '', clean: Boolean(wasClean) });
    },
    ping: (received, payload) => {
      if (logPings) emit({ event: 'ping', received, payload: payload ?? null });
    },
    pong: (received, payload) => {
      if (logPings) emit({ event: 'pong', received, payload: payload ?? null });
    },
    error: (err) => emit({ event: 'socket_error', ...describeError(err) }),
  },
});

if (scenario !== 'connect') {
  let received = 0;
  client.subscribe(
    { query, variables },
    {
      next: (payload) => {
        emit({ event: 'next', payload });
        if (connections >= fromConnection) received += 1;
        if (scenario === 'subscribe' && received >= count) finish('done', 0);
      },
      error: (err) => {
        emit({ event: 'error', ...describeError(err) });
        finish('error', 1);
      },
      complete: () => {
        emit({ event: 'complete' });
        finish('complete', 0);
      },
    },
  );
}
