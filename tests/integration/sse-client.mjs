// EventSource clients (npm eventsource) for the stream tests and benchmark.
//   node sse-client.mjs URL[,URL...] COUNT [--header 'Name: value'] [--timeout S]
//                       [--print] [--latency] [--delays FILE]
// Opens COUNT streams, spread over the URLs in turn. Each stream is closed
// by the client at its run's terminal event (EventSource would otherwise
// reconnect); it reconnects by itself, with Last-Event-ID, when the server
// goes away. --print writes "STREAM ID TYPE" per event as it arrives.
// --latency: events whose data has "t" (ms since the epoch, set when the
// event was written) give their delivery delay. At the end one JSON line:
// {"opened", "finished", "events", "errors", "ids": {stream: [ids...]},
//  "latency_ms": {"p50", "p99", "n"}}; --delays also writes every delay
// (ms, one per line) to FILE, to merge several clients. Exit 1 on timeout.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.ASSAY_NODE_MODULES + '/');
const EventSource = require('eventsource');

const args = process.argv.slice(2);
const urls = args[0].split(',');
const count = Number(args[1]);
const headers = {};
let timeout = 60, print = false, latency = false, delaysFile = null;
for (let i = 2; i < args.length; i++) {
  if (args[i] === '--header') {
    const h = args[++i], c = h.indexOf(':');
    headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
  } else if (args[i] === '--timeout') timeout = Number(args[++i]);
  else if (args[i] === '--print') print = true;
  else if (args[i] === '--latency') latency = true;
  else if (args[i] === '--delays') { latency = true; delaysFile = args[++i]; }
}

const terminal = new Set(['completed', 'failed', 'canceled']);
const ids = {}, delays = [];
let opened = 0, finished = 0, events = 0, errors = 0;

function done(code) {
  delays.sort((a, b) => a - b);
  if (delaysFile) writeFileSync(delaysFile, delays.join('\n') + '\n');
  const q = (p) => (delays.length ? delays[Math.min(delays.length - 1, Math.floor(p * delays.length))] : null);
  console.log(JSON.stringify({
    opened, finished, events, errors,
    ids: count <= 50 ? ids : undefined,
    latency_ms: latency ? { p50: q(0.5), p99: q(0.99), n: delays.length } : undefined,
  }));
  process.exit(code);
}

for (let n = 0; n < count; n++) {
  const es = new EventSource(urls[n % urls.length], { headers });
  let first = true;
  ids[n] = [];
  es.onopen = () => { if (first) { opened++; first = false; if (print) console.log(`${n} open`); } };
  es.onerror = () => { errors++; };
  const onEvent = (e) => {
    events++;
    ids[n].push(Number(e.lastEventId));
    if (print) console.log(`${n} ${e.lastEventId} ${e.type}`);
    if (latency) {
      try {
        const t = JSON.parse(e.data).t;
        if (t) delays.push(Date.now() - t);
      } catch { /* not a timed event */ }
    }
    if (terminal.has(e.type)) {
      es.close();
      if (++finished === count) done(0);
    }
  };
  for (const type of ['created', 'pending', 'running', 'completed', 'failed', 'canceled',
    'cancel_requested', 'log', 'progress', 'emit', 'script_error']) {
    es.addEventListener(type, onEvent);
  }
}
setTimeout(() => done(1), timeout * 1000);
