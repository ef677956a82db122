/*
 * Runtime "node": the sandboxed child execs node (version 20 or later) on
 * a bootstrap module given with --eval, and that one process then serves
 * the jobs of its tenant in turn. Each job runs in a worker_threads Worker
 * of its own (a new V8 isolate with the job's heap limit), gone before the
 * next job starts: a job must never see what an earlier one left behind
 * (globals, rewritten built-ins, timers, module state), and a script must
 * never start a Worker itself. node runs under its permission model (no
 * file system, no child processes, no native addons, Workers for the
 * bootstrap only), with no environment, inside the namespaces, seccomp
 * filter and limits that sandbox-*.c set.
 *
 * The bridge is descriptor 3, a stream socket with a JSON line per message
 * each way. In: {"type":"job","memory_mb","nonce","script","input"}, the next one
 * only after this job's result; {"type":"reply","id","result" or "error"},
 * the answer to a call. Out, in the order the script made them: "log",
 * "progress", "emit" and {"type":"call","id","method","params"}; then
 * {"type":"result","value","nonce"} (the job's nonce, which only this main
 * thread holds), or {"type":"error","message","stack"} and exit
 * status 1 (message "memory limit" when the job's heap is full). A script's
 * process.exit(c) ends the process with status c (1 over 127) and no
 * result; end of file on descriptor 3 ends it with status 0. Only the main
 * thread writes, a whole line at a time. A "check" line is a job whose
 * Worker only parses the script and answers whether it parses.
 */
#include "config.h"

#include <unistd.h>

#include "extern.h"

/* The bootstrap. The main thread reads the job and reply lines and writes
 * every line out; job() is the text that each job's Worker runs: it hides
 * the Worker constructor, builds ctx, imports the script and calls it. A
 * script that declares analyze without exporting it is given an export;
 * one that cannot take it (a syntax error) is imported as written, which
 * reports its own syntax error. */
static const char bootstrap[] =
    "import { Socket } from 'node:net';\n"
    "import { createInterface } from 'node:readline';\n"
    "import { Worker } from 'node:worker_threads';\n"
    "\n"
    "/* One job, in a Worker of its own; only this function's text goes there. */\n"
    "async function job() {\n"
    "  const { default: threads } = await import('node:worker_threads');\n"
    "  const { parentPort: port, workerData: { flight } } = threads;\n"
    "  threads.Worker = class Worker {\n"
    "    constructor() { throw new Error('worker threads are restricted'); }\n"
    "  };\n"
    "  (await import('node:module')).syncBuiltinESMExports();\n"
    "  const exit = process.exit.bind(process);\n"
    "  /* Started ahead of its job, which it waits for here. */\n"
    "  const data = await new Promise((ok) => port.once('message', ok));\n"
    "  /* At most FLIGHT bytes on their way out: past that the script waits\n"
    "   * for the main thread to write them (the executor's output limit then\n"
    "   * stops a flood before memory does). */\n"
    "  const post = (kind, line) => {\n"
    "    Atomics.add(flight, 0, line.length);\n"
    "    port.postMessage([kind, line]);\n"
    "    for (let v; (v = Atomics.load(flight, 0)) > 1048576;)\n"
    "      Atomics.wait(flight, 0, v, 100);\n"
    "  };\n"
    "  const send = (o) => post('line', JSON.stringify(o));\n"
    "  const fail = (message, stack) => {\n"
    "    post('error', JSON.stringify({ type: 'error', message, stack }));\n"
    "    exit(1);\n"
    "  };\n"
    "  /* A check: the script is parsed as the module it would be, never run.\n"
    "   * It imports a name that the empty module does not export, so linking,\n"
    "   * which comes after parsing and before any evaluation, always fails;\n"
    "   * failing there means it parsed. V8 gives a module's syntax error no\n"
    "   * position: the same text, its module syntax blanked, is parsed as a\n"
    "   * classic script, and when that fails with the same words its line\n"
    "   * and column are taken from node's arrow (where(): {line, column},\n"
    "   * or {} when the classic parse says something else). */\n"
    "  async function where(src, e) {\n"
    "    const { Script } = await import('node:vm');\n"
    "    const blank = (m) => m.replace(/[^\\n]/g, ' ');\n"
    "    const text = src\n"
    "      .replace(/^[ \\t]*import\\s+(?:[\\s\\S]*?\\sfrom\\s*)?(['\"])[^'\"\\n]*\\1[ "
    "\\t]*;?/gm, blank)\n"
    "      .replace(/\\bexport\\s+(?:default\\s+)?(?=[\\w{*])/g, blank);\n"
    "    /* As it is, then in an async function (top-level await) */\n"
    "    for (const head of ['', '(async function () { \"use strict\"; ']) {\n"
    "      try {\n"
    "        new Script(head + text + (head ? '\\n})' : ''), { filename: 'script' });\n"
    "      } catch (c) {\n"
    "        const [at, , arrow] = String(c.stack).split('\\n');\n"
    "        const line = Number(/^script:(\\d+)$/.exec(at)?.[1]);\n"
    "        /* At the end of the input the arrow is blank, as wide as the line */\n"
    "        const caret = /^( *)(\\^|$)/.exec(arrow ?? '');\n"
    "        const column = (caret ? caret[1].length + 1 : 0) -\n"
    "          (line === 1 ? head.length : 0);\n"
    "        if (c.message === e?.message && line > 0 && column > 0)\n"
    "          return { line, column };\n"
    "      }\n"
    "    }\n"
    "    return {};\n"
    "  }\n"
    "  if (data.check) {\n"
    "    const guard = 'import { __assayNever } from \"data:text/javascript,\";';\n"
    "    let value = { ok: true };\n"
    "    const url = 'data:text/javascript,' + encodeURIComponent(guard + data.script);\n"
    "    try {\n"
    "      await import(url);\n"
    "      value = { ok: false, message: 'the script could not be checked' };\n"
    "    } catch (e) {\n"
    "      if (!String(e?.message).includes('__assayNever'))\n"
    "        value = { ok: false, message: String(e).split(url).join('the script'),\n"
    "          ...(await where(data.script, e)) };\n"
    "    }\n"
    "    post('result', '{\"type\":\"result\",\"value\":' + JSON.stringify(value) + "
    "'}');\n"
    "    exit(0);\n"
    "  }\n"
    "  /* call(): a request that the executor answers with a reply line. Ids\n"
    "   * never repeat in the process; a pending call keeps the job alive. */\n"
    "  const pending = new Map();\n"
    "  let id = data.firstCall;\n"
    "  const call = (method, params) => new Promise((resolve, reject) => {\n"
    "    if (pending.size === 0) port.ref();\n"
    "    pending.set(id, { resolve, reject });\n"
    "    post('call', JSON.stringify({ type: 'call', id: id++, method,\n"
    "      params: params ?? null }));\n"
    "  });\n"
    "  port.on('message', (m) => {\n"
    "    const c = pending.get(m.id);\n"
    "    if (c === undefined) return;\n"
    "    pending.delete(m.id);\n"
    "    if (pending.size === 0) port.unref();\n"
    "    if ('error' in m) c.reject(new Error(m.error)); else c.resolve(m.result);\n"
    "  }).unref();\n"
    "  const text = (v) => (v === undefined ? '' : String(v));\n"
    "  const ctx = Object.freeze({\n"
    "    log: (...a) => send({ type: 'log',\n"
    "      level: a.length > 1 ? text(a[0]) : 'info',\n"
    "      message: text(a.length > 1 ? a[1] : a[0]) }),\n"
    "    progress: (percent, message) => send({ type: 'progress',\n"
    "      percent: Math.min(100, Math.max(0, Number(percent) || 0)),\n"
    "      message: text(message) }),\n"
    "    emit: (event, data) => send({ type: 'emit', event: text(event),\n"
    "      data: data ?? null }),\n"
    "    /* Calls the executor performs: a file's bytes come as base64. */\n"
    "    files: Object.freeze({\n"
    "      read: (path) => call('files.read', { path: text(path) }).then((r) =>\n"
    "        typeof r?.$bytes === 'string'\n"
    "          ? new Uint8Array(Buffer.from(r.$bytes, 'base64')) : r),\n"
    "      list: (prefix) => call('files.list', { prefix: text(prefix) }),\n"
    "      search: (query) => call('files.search', { query: text(query) }),\n"
    "    }),\n"
    "    fetch: (path, o = {}) => call('fetch', { path: text(path),\n"
    "      method: o.method === undefined ? undefined : text(o.method),\n"
    "      body: o.body === undefined || typeof o.body === 'string' ? o.body\n"
    "        : JSON.stringify(o.body) }),\n"
    "  });\n"
    "  process.abort = () => fail('process.abort() was called');\n"
    "  process.on('beforeExit',\n"
    "    () => fail('analyze() returned a promise that never settles'));\n"
    "  const load = (src) => import('data:text/javascript,' +\n"
    "    encodeURIComponent(src));\n"
    "  try {\n"
    "    let mod;\n"
    "    try { mod = await load(data.script +\n"
    "      '\\n;export { analyze as __assayAnalyze };'); }\n"
    "    catch (e) { if (!(e instanceof SyntaxError)) throw e;\n"
    "      mod = await load(data.script); }\n"
    "    const analyze = mod.__assayAnalyze ?? mod.default ?? mod.analyze;\n"
    "    if (typeof analyze !== 'function')\n"
    "      fail('the script does not define analyze(input, ctx)');\n"
    "    const value = await analyze(data.input, ctx);\n"
    "    let json;\n"
    "    try { json = JSON.stringify(value); }\n"
    "    catch (e) {\n"
    "      fail('result is not JSON (' + String(e?.message ?? e) + ')');\n"
    "    }\n"
    "    if (json === undefined && value !== undefined)\n"
    "      fail('result is not JSON (a ' + typeof value + ')');\n"
    "    post('result', '{\"type\":\"result\",\"value\":' + (json ?? 'null') + '}');\n"
    "    exit(0);\n"
    "  } catch (e) {\n"
    "    fail(String(e), e instanceof Error ? text(e.stack) : undefined);\n"
    "  }\n"
    "}\n"
    "\n"
    "const bridge = new Socket({ fd: 3, allowHalfOpen: true });\n"
    "/* A line out; flight: the back-pressure counter of the Worker it came from. */\n"
    "const write = (line, flight) => bridge.write(line + '\\n', () => {\n"
    "  if (!flight) return;\n"
    "  Atomics.sub(flight, 0, line.length);\n"
    "  Atomics.notify(flight, 0);\n"
    "});\n"
    "let current = null; /* the running job's Worker */\n"
    "let nonce = null; /* its job's, for its result line; never the script's */\n"
    "let spare = null; /* the next job's, started ahead */\n"
    "let calls = 0; /* call lines written so far */\n"
    "const quit = (code, line) => {\n"
    "  current = null;\n"
    "  bridge.end(line && line + '\\n', () => process.exit(code));\n"
    "};\n"
    "const failure = (e) => e?.code === 'ERR_WORKER_OUT_OF_MEMORY'\n"
    "  ? { type: 'error', message: 'memory limit' }\n"
    "  : { type: 'error', message: String(e),\n"
    "      stack: e instanceof Error ? String(e.stack) : undefined };\n"
    "\n"
    "function spawn(memory_mb) {\n"
    "  const flight = new Int32Array(new SharedArrayBuffer(4));\n"
    "  const worker = new Worker(`(${job})()`, { eval: true,\n"
    "    workerData: { flight },\n"
    "    resourceLimits: { maxOldGenerationSizeMb: memory_mb } });\n"
    "  const own = (f) => (...a) => worker === current && f(...a);\n"
    "  worker.memory_mb = memory_mb;\n"
    "  worker.on('message', own(([kind, line]) => {\n"
    "    if (kind === 'error') return quit(1, line);\n"
    "    if (kind === 'call') calls++;\n"
    "    if (kind !== 'result') return write(line, flight);\n"
    "    const signed = line.slice(0, -1) + ',\"nonce\":' + JSON.stringify(nonce) + "
    "'}';\n"
    "    current = null; /* the next job line comes once this Worker is gone */\n"
    "    worker.terminate().then(() => {\n"
    "      write(signed);\n"
    "      spare = spawn(memory_mb);\n"
    "    });\n"
    "  }));\n"
    "  worker.on('error', own((e) => quit(1, JSON.stringify(failure(e)))));\n"
    "  worker.on('exit', (code) => {\n"
    "    if (worker === spare) spare = null;\n"
    "    else if (worker === current) quit(code > 127 ? 1 : code);\n"
    "  });\n"
    "  return worker;\n"
    "}\n"
    "\n"
    "function start(m) {\n"
    "  if (current !== null)\n"
    "    return quit(1, JSON.stringify({ type: 'error',\n"
    "      message: 'sandbox breach: a job arrived while one was running' }));\n"
    "  const worker = spare?.memory_mb === m.memory_mb ? spare : spawn(m.memory_mb);\n"
    "  if (spare !== null && spare !== worker) spare.terminate();\n"
    "  spare = null;\n"
    "  current = worker;\n"
    "  nonce = m.nonce;\n"
    "  worker.postMessage({ script: m.script, input: m.input, firstCall: calls + 1,\n"
    "    check: m.type === 'check' });\n"
    "}\n"
    "\n"
    "bridge.on('error', () => process.exit(1));\n"
    "createInterface({ input: bridge })\n"
    "  .on('line', (line) => {\n"
    "    const m = JSON.parse(line);\n"
    "    if (m.type === 'job' || m.type === 'check') start(m);\n"
    "    else if (m.type === 'reply') current?.postMessage(m);\n"
    "  })\n"
    "  .on('close', () => process.exit(0));\n";

/* No --max-old-space-size: that flag would override every Worker's own
 * heap limit. The main thread needs little; the data limit
 * (sandbox-rlimit.c) bounds the process. spec is not used: each job line
 * carries its own memory limit. */
void
node_exec(const char *node, const struct job_spec *spec)
{
	char *argv[] = {"node",
	                "--experimental-permission",
	                "--allow-worker",
	                "--no-addons",
	                "--no-warnings",
	                "--input-type=module",
	                "--eval",
	                (char *)bootstrap,
	                NULL};
	char *envp[] = {NULL};

	execve(node, argv, envp);
}
