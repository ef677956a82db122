// The README's flow through a client that openapi-typescript generates from
// htdocs/openapi.json (into ./schema.d.ts, with its default options), used
// through openapi-fetch. `tsc --strict` type-checks it: the document must
// make a client in which these calls are typed as written here. Compiled
// and run with ASSAY_URL and ASSAY_API_KEY set, it drives the live API and
// prints one line per step; it exits non-zero at the first surprise.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

// What this program reads of node's globals (no @types/node needed).
declare const process: { env: Record<string, string | undefined>; exitCode?: number };

const client = createClient<paths>({
  baseUrl: process.env.ASSAY_URL,
  headers: { Authorization: `Bearer ${process.env.ASSAY_API_KEY}` },
  // ?status= takes several statuses comma-separated (explode: false).
  querySerializer: { array: { style: "form", explode: false } },
});

type Outcome<T> = { data?: T; error?: unknown; response: Response };

// The body of an answer with the expected status, or an exception.
function expect<T>(step: string, got: Outcome<T>, status: number): T {
  if (got.response.status !== status || got.data === undefined)
    throw new Error(`${step}: ${got.response.status} ${JSON.stringify(got.error)}`);
  console.log(`ok   ${step}: ${status}`);
  return got.data;
}

async function main(): Promise<void> {
  const created = await client.POST("/api/v1/analyses", {
    body: { title: "sum", script: "function analyze(input) { return input.a + input.b; }" },
  });
  const analysis = expect("create an analysis", created, 201).analysis;
  if (created.response.headers.get("Location") !== `/api/v1/analyses/${analysis.id}`)
    throw new Error(`Location: ${created.response.headers.get("Location")}`);

  // Only the required members and an object input; the rest take their defaults.
  const submitted = await client.POST("/api/v1/runs", {
    params: { header: { "Idempotency-Key": `flow-${Date.now()}-${Math.random().toString(36).slice(2)}` } },
    body: { name: "first", analysis_id: analysis.id, input: { a: 1, b: 2 } },
  });
  let run = expect("submit a run", submitted, 201).run;

  for (let i = 0; i < 300 && !["completed", "failed", "canceled"].includes(run.status); i++) {
    await new Promise((done) => setTimeout(done, 100));
    run = expect("get the run", await client.GET("/api/v1/runs/{id}", { params: { path: { id: run.id } } }), 200).run;
  }
  if (run.status !== "completed") throw new Error(`the run is ${run.status}: ${run.error_message}`);

  const listed = await client.GET("/api/v1/runs", {
    params: { query: { status: ["completed", "failed"], analysis_id: analysis.id, limit: 10 } },
  });
  const runs = expect("list runs by status", listed, 200).runs;
  if (runs.length !== 1 || runs[0].id !== run.id) throw new Error(`listed ${JSON.stringify(runs)}`);

  // A run that waits to be started, canceled before it is.
  const waiting = await client.POST("/api/v1/runs", {
    body: { name: "second", analysis_id: analysis.id, input: "not started", start: false },
  });
  const second = expect("submit a run that waits", waiting, 201).run;
  const canceled = await client.POST("/api/v1/runs/{id}/cancel", { params: { path: { id: second.id } } });
  if (expect("cancel it", canceled, 202).run.status !== "canceled") throw new Error("not canceled");
  const again = await client.POST("/api/v1/runs/{id}/cancel", { params: { path: { id: second.id } } });
  if (again.response.status !== 409 || again.error?.code !== "RUN_STATE_CONFLICT")
    throw new Error(`cancel again: ${again.response.status}`);
  console.log("ok   cancel it again: 409");

  const result = await client.GET("/api/v1/runs/{id}/result", { params: { path: { id: run.id } } });
  if (expect("get the result", result, 200).result.result !== 3) throw new Error(`result ${JSON.stringify(result.data)}`);

  const token = await client.POST("/api/v1/runs/{id}/events/token", { params: { path: { id: run.id } } });
  const events = expect("create an events token", token, 201);
  if (token.response.headers.get("Location") !== events.events_url) throw new Error("Location is not events_url");
}

main().catch((e: unknown) => {
  console.log(`FAIL ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
