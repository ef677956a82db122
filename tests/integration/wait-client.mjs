// Many concurrent waits (GET /api/v1/runs/{id}?wait=N) from one process,
// for the wait test: a curl process per request would cost more than the
// server does.
//   node wait-client.mjs URL[,URL...] COUNT [--header 'Name: value'] [--timeout S]
// Sends COUNT requests at once, spread over the URLs in turn, each on its
// own connection. At the end one JSON line: {"sent", "answered", "errors",
// "status": {HTTP status: n}, "run_status": {run status: n}, "run_ids_match":
// how many answers name the run their URL asked for, "first_ms", "last_ms":
// when the first and the last answer came (ms since the epoch)}. Exit 1 on
// timeout.
import http from 'node:http';

const args = process.argv.slice(2);
const urls = args[0].split(',');
const count = Number(args[1]);
const headers = {};
let timeout = 90;
for (let i = 2; i < args.length; i++) {
  if (args[i] === '--header') {
    const h = args[++i], c = h.indexOf(':');
    headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
  } else if (args[i] === '--timeout') timeout = Number(args[++i]);
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const result = { sent: 0, answered: 0, errors: 0, status: {}, run_status: {},
  run_ids_match: 0, first_ms: null, last_ms: null };
const count_in = (o, k) => { o[k] = (o[k] || 0) + 1; };

function done(code) {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}
setTimeout(() => done(1), timeout * 1000);

function settle() {
  if (result.answered + result.errors === count) done(result.errors ? 1 : 0);
}

for (let i = 0; i < count; i++) {
  const url = urls[i % urls.length];
  const id = new URL(url).pathname.split('/').pop();
  const req = http.get(url, { agent, headers }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      const now = Date.now();
      result.answered++;
      result.first_ms = result.first_ms ?? now;
      result.last_ms = now;
      count_in(result.status, res.statusCode);
      try {
        const run = JSON.parse(Buffer.concat(chunks).toString()).run;
        count_in(result.run_status, run.status);
        if (run.id === id) result.run_ids_match++;
      } catch {
        count_in(result.run_status, 'none');
      }
      settle();
    });
  });
  req.on('error', () => { result.errors++; settle(); });
  result.sent++;
}
