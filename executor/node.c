/*
 * Runtime "node": the sandboxed child execs node (version 20 or later) on
 * a bootstrap module given with --eval. The bootstrap reads the job from
 * descriptor 4, imports the script as an ES module (a data: URL, so no file
 * is involved), calls analyze(input, ctx) and writes the same JSON lines as
 * the Duktape runtime to descriptor 3. node runs under its permission model
 * (no file system, no child processes, no workers, no native addons), with
 * no environment, inside the namespaces, seccomp filter and limits that
 * sandbox-*.c set.
 */
#include "config.h"

#include <stdio.h>
#include <unistd.h>

#include "extern.h"

/* The bootstrap. A script that declares analyze without exporting it is
 * given an export; one that cannot take it (a syntax error) is imported as
 * written, which reports its own syntax error. */
static const char bootstrap[] =
    "import { readFileSync, writeSync } from 'node:fs';\n"
    "const send = (o) => writeSync(3, JSON.stringify(o) + '\\n');\n"
    "const text = (v) => (v === undefined ? '' : String(v));\n"
    "const ctx = Object.freeze({\n"
    "  log: (...a) => send({ type: 'log', level: a.length > 1 ? text(a[0]) : 'info',\n"
    "    message: text(a.length > 1 ? a[1] : a[0]) }),\n"
    "  progress: (percent, message) => send({ type: 'progress',\n"
    "    percent: Math.min(100, Math.max(0, Number(percent) || 0)), message: "
    "text(message) }),\n"
    "  emit: (event, data) => send({ type: 'emit', event: text(event), data: data "
    "?? null }),\n"
    "});\n"
    "const fail = (message) => { send({ type: 'error', message }); process.exit(1); };\n"
    "process.abort = () => fail('process.abort() was called');\n"
    "const exit = process.exit.bind(process);\n"
    "process.exit = (c) => exit(c > 127 ? 1 : c); /* over 127: a signal's */\n"
    "process.on('beforeExit', () => fail('analyze() returned a promise that never "
    "settles'));\n"
    "const load = (src) => import('data:text/javascript,' + "
    "encodeURIComponent(src));\n"
    "try {\n"
    "  const [script, input] = readFileSync(4, 'utf8').split('\\0');\n"
    "  let mod;\n"
    "  try { mod = await load(script + '\\n;export { analyze as "
    "__assayAnalyze };'); }\n"
    "  catch (e) { if (!(e instanceof SyntaxError)) throw e; mod = await "
    "load(script); }\n"
    "  const analyze = mod.__assayAnalyze ?? mod.default ?? mod.analyze;\n"
    "  if (typeof analyze !== 'function')\n"
    "    fail('the script does not define analyze(input, ctx)');\n"
    "  const value = await analyze(JSON.parse(input), ctx);\n"
    "  let json;\n"
    "  try { json = JSON.stringify(value); }\n"
    "  catch (e) { fail('result is not JSON (' + String(e?.message ?? e) + ')'); }\n"
    "  if (json === undefined && value !== undefined)\n"
    "    fail('result is not JSON (a ' + typeof value + ')');\n"
    "  writeSync(3, '{\"type\":\"result\",\"value\":' + (json ?? 'null') + '}\\n');\n"
    "  process.exit(0);\n"
    "} catch (e) {\n"
    "  send({ type: 'error', message: String(e), stack: e instanceof Error ? "
    "text(e.stack) : undefined });\n"
    "  process.exit(1);\n"
    "}\n";

void
node_exec(const char *node, const struct job_spec *spec)
{
	char heap[64];
	char *argv[] = {"node",
	                heap,
	                "--experimental-permission",
	                "--no-addons",
	                "--no-warnings",
	                "--input-type=module",
	                "--eval",
	                (char *)bootstrap,
	                NULL};
	char *envp[] = {NULL};

	snprintf(heap, sizeof heap, "--max-old-space-size=%ld", spec->memory_mb);
	execve(node, argv, envp);
}
