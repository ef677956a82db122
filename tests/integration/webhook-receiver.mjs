// A webhook receiver for the tests and the benchmark: it verifies every
// delivery with the Standard Webhooks reference library (not with Assay's
// code) and answers as it is told.
//   node webhook-receiver.mjs PORTFILE
// writes the port it listens on (127.0.0.1) to PORTFILE, then serves:
//   POST /control {"secrets": ["whsec_…"], "answers": [500, 500], "default": 200,
//                  "hang": 1}
//       secrets: what deliveries are verified against (each on its own);
//       answers: statuses for the next deliveries, in order, then default;
//       hang: that many next deliveries get no answer at all
//   GET /deliveries: every delivery received, in order: {id, timestamp,
//       signatures, verified: [bool per secret], type, run, status, at}
//   any other POST: a delivery
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const modules = process.env.ASSAY_NODE_MODULES;
const { Webhook } = await import(path.join(modules, "standardwebhooks/dist/index.js"));

let secrets = [];
let answers = [];
let fallback = 200;
let hang = 0;
const received = [];

function verify(secret, body, headers) {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    if (req.url === "/control") {
      const c = JSON.parse(body);
      if (c.secrets) secrets = c.secrets;
      if (c.answers) answers = c.answers;
      if (c.default) fallback = c.default;
      if (c.hang !== undefined) hang = c.hang;
      res.end("{}");
      return;
    }
    if (req.method === "GET" && req.url === "/deliveries") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(received));
      return;
    }
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    let payload = {};
    try {
      payload = JSON.parse(body);
    } catch {}
    const d = {
      id: headers["webhook-id"],
      timestamp: headers["webhook-timestamp"],
      signatures: (headers["webhook-signature"] || "").split(" ").length,
      verified: secrets.map((s) => verify(s, body, headers)),
      type: payload.type,
      run: payload.data?.run?.id,
      run_status: payload.data?.run?.status,
      path: req.url,
      at: Date.now(),
      status: null,
    };
    received.push(d);
    if (hang > 0) {
      hang--;
      d.status = "hung";
      return; // never answered: the sender gives up on its timeout
    }
    d.status = answers.length ? answers.shift() : fallback;
    res.statusCode = d.status;
    res.end("ok");
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(process.argv[2], String(server.address().port));
});
