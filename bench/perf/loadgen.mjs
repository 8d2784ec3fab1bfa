#!/usr/bin/env node
// One load-generator worker of `make bench` (bench/perf): a separate Node process on the npm `ws` client, so that
// the clients never share the Python servers' interpreter and several workers share the load.
//
// Usage: node bench/perf/loadgen.mjs '<config JSON>'. It prints one JSON line per step on stdout and reads
// "stop\n" on stdin. Modes (config.mode):
//
//   subscribe  open config.count sockets (socket i to config.urls[(config.offset + i) % urls.length]), subscribe
//              each (REST: config.subscribe as the message; GraphQL, graphql-transport-ws: connection_init with
//              config.token, then subscribe to config.query), print {"ready":n,"failed":k}, then record every event
//              frame: its marker (the `stock` the write set) and the time it arrived (ms since the epoch, sub-ms),
//              as float64 pairs in config.out. On "status": {"status":true,"frames":n,"heard":sockets that had an
//              event frame,"closed":k}; on "stop": {"done":true,"frames":n,"closed":k,"errors":[...]}.
//   connect    config.concurrency loops, until config.seconds have passed: connect (no token in the URL), send
//              {"type":"auth","access_token":config.token}, wait for {"type":"auth","status":"ok"}, close; prints
//              {"done":true,"connects":n,"failed":k,"latencies_ms":[...]}.
//   bare       as connect, without auth: connect, wait for the open, close (the baselines' bare-connect rate).
//
// The marker is read from a REST frame's data[0].stock, a GraphQL next's payload.data.<c>_mutated.data.stock, or a
// baseline frame's data[0].stock (the baselines send the REST frame shape).

import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import WebSocket from 'ws';

const config = JSON.parse(process.argv[2]);
const now = () => performance.timeOrigin + performance.now();
const say = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

class Records {
  constructor() {
    this.chunks = [];
    this.current = new Float64Array(1 << 16);
    this.used = 0;
    this.count = 0;
  }

  add(marker, at) {
    if (this.used === this.current.length) {
      this.chunks.push(this.current);
      this.current = new Float64Array(this.current.length);
      this.used = 0;
    }
    this.current[this.used++] = marker;
    this.current[this.used++] = at;
    this.count += 1;
  }

  bytes() {
    const parts = [...this.chunks, this.current.subarray(0, this.used)];
    return Buffer.concat(parts.map((part) => Buffer.from(part.buffer, part.byteOffset, part.byteLength)));
  }
}

function markerOf(frame) {
  if (frame.type === 'subscription' && frame.event === 'update' && Array.isArray(frame.data)) {
    return frame.data[0]?.stock;
  }
  if (frame.type === 'next') {
    const data = frame.payload?.data;
    const mutated = data && data[config.field];
    return mutated?.event === 'update' ? mutated.data?.stock : undefined;
  }
  return undefined;
}

function subscribeOne(index, records, state) {
  return new Promise((resolve) => {
    const url = config.urls[(config.offset + index) % config.urls.length];
    const graphql = config.kind === 'graphql';
    const ws = new WebSocket(url, graphql ? 'graphql-transport-ws' : undefined, { perMessageDeflate: false });
    let ready = false;
    let heard = false; // received an event frame (the coordinator's warm-up waits for every socket to have one)
    const settle = (ok, why) => {
      if (ready) return;
      ready = true;
      if (!ok) state.errors.push(why);
      resolve(ok);
    };
    const timer = setTimeout(() => settle(false, 'subscribe timeout'), config.timeoutMs ?? 60000);
    ws.on('open', () => {
      if (graphql) {
        ws.send(JSON.stringify({ type: 'connection_init', payload: { access_token: config.token } }));
      } else {
        ws.send(JSON.stringify(config.subscribe));
      }
    });
    ws.on('message', (raw) => {
      const at = now();
      const frame = JSON.parse(raw.toString());
      const marker = markerOf(frame);
      if (marker !== undefined) {
        records.add(Number(marker), at);
        if (!heard) {
          heard = true;
          state.heard += 1;
        }
        return;
      }
      if (frame.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (frame.type === 'connection_ack') {
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: config.query } }));
        clearTimeout(timer);
        settle(true);
      } else if (frame.type === 'subscription' && frame.event === 'init') {
        clearTimeout(timer);
        settle(true);
      } else if (frame.type === 'error' || frame.type === 'subscription') {
        state.unexpected += 1;
        if (state.examples.length < 5) state.examples.push(frame);
      }
    });
    ws.on('error', (error) => {
      clearTimeout(timer);
      settle(false, String(error.message || error));
    });
    ws.on('close', (code) => {
      if (ready) state.closed += 1;
      clearTimeout(timer);
      settle(false, `closed ${code}`);
    });
    state.sockets.push(ws);
  });
}

async function subscribeMode() {
  const records = new Records();
  const state = { sockets: [], errors: [], closed: 0, unexpected: 0, examples: [], heard: 0 };
  let ok = 0;
  let next = 0;
  const workers = Array.from({ length: Math.min(config.connectConcurrency ?? 50, config.count) }, async () => {
    while (next < config.count) {
      const index = next++;
      if (await subscribeOne(index, records, state)) ok += 1;
    }
  });
  await Promise.all(workers);
  say({ ready: ok, failed: config.count - ok, errors: state.errors.slice(0, 5) });
  await commands({ status: () => say({ status: true, frames: records.count, heard: state.heard, closed: state.closed }) });
  writeFileSync(config.out, records.bytes());
  for (const ws of state.sockets) ws.terminate();
  say({
    done: true,
    frames: records.count,
    closed: state.closed,
    unexpected: state.unexpected,
    examples: state.examples,
    errors: state.errors.slice(0, 5),
  });
}

function connectOnce(url, auth) {
  return new Promise((resolve) => {
    const started = now();
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let finished = false;
    const finish = (ok) => {
      if (finished) return;
      finished = true;
      ws.terminate();
      resolve(ok ? now() - started : null);
    };
    ws.on('open', () => {
      if (!auth) {
        finish(true);
        return;
      }
      ws.send(JSON.stringify({ type: 'auth', access_token: config.token }));
    });
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.type === 'auth') finish(frame.status === 'ok');
    });
    ws.on('error', () => finish(false));
    ws.on('close', () => finish(false));
  });
}

async function connectMode(auth) {
  const deadline = now() + config.seconds * 1000;
  const latencies = [];
  let failed = 0;
  let index = config.offset ?? 0;
  const loops = Array.from({ length: config.concurrency }, async () => {
    while (now() < deadline) {
      const url = config.urls[index++ % config.urls.length];
      const latency = await connectOnce(url, auth);
      if (latency === null) failed += 1;
      else latencies.push(latency);
    }
  });
  await Promise.all(loops);
  say({ done: true, connects: latencies.length, failed, latencies_ms: latencies });
}

// Until "stop" (or the end of stdin); other lines name a handler ("status").
function commands(handlers) {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      const command = line.trim();
      if (command === 'stop') resolve();
      else handlers[command]?.();
    });
    lines.on('close', resolve);
  });
}

if (config.mode === 'subscribe') await subscribeMode();
else if (config.mode === 'connect') await connectMode(true);
else if (config.mode === 'bare') await connectMode(false);
else {
  say({ error: `unknown mode ${config.mode}` });
  process.exit(2);
}
process.exit(0);
