// Validate recorded API responses against the OpenAPI document.
//   node validate-responses.mjs OPENAPI.json RESPONSES.jsonl
// Each line of RESPONSES.jsonl: {"method","path","status","type","body"}.
// A response must match a documented path, method and status; its content
// type must be documented there, and a JSON body must satisfy the schema.
// Prints one line per problem and a summary; exits 1 on any problem.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.ASSAY_NODE_MODULES + '/');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const [docPath, recPath] = process.argv.slice(2);
const doc = JSON.parse(readFileSync(docPath, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(doc, 'openapi.json');

// As assay-api matches: a path that a template without parameters names
// is that template's alone (/api/v1/runs/batch is no run's {id}).
const routes = Object.keys(doc.paths).map((p) => ({
  template: p,
  // {path} (a file's) takes the rest of the path, slashes included.
  re: new RegExp('^' + p.replace(/\{path\}$/, '.+').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
})).sort((a, b) => a.template.includes('{') - b.template.includes('{'));
const resolve = (obj) => {
  while (obj && obj.$ref) {
    obj = obj.$ref.slice(2).split('/').reduce((o, k) => o[k.replace(/~1/g, '/')], doc);
  }
  return obj;
};

let problems = 0, checked = 0;
const seen = new Set();
for (const line of readFileSync(recPath, 'utf8').split('\n')) {
  if (!line.trim()) continue;
  const r = JSON.parse(line);
  const path = r.path.split('?')[0].replace(/^\/api\/(?!v1\/)/, '/api/v1/');
  if (path === '/openapi.json' || path.startsWith('/api-docs')) continue; // static files
  const route = routes.find((x) => x.re.test(path));
  const where = `${r.method} ${path} -> ${r.status}`;
  const say = (msg) => { if (!seen.has(where + msg)) { seen.add(where + msg); console.log(`FAIL ${where}: ${msg}`); } problems++; };
  if (!route) { if (r.status !== 404) say('path not documented'); continue; }
  const method = r.method.toLowerCase();
  const op = doc.paths[route.template][method];
  if (!op) { if (r.status !== 405) say('method not documented'); continue; }
  const resp = resolve(op.responses[String(r.status)]);
  if (!resp) { say('status not documented'); continue; }
  checked++;
  if (!resp.content || r.body === '' || r.method === 'HEAD') continue;
  const type = (r.type || '').split(';')[0].trim();
  const media = Object.keys(resp.content).find((t) => t === type) ||
    Object.keys(resp.content).find((t) => t === '*/*'); // a file: any type
  if (!media) { say(`content type ${type} not documented`); continue; }
  if (!type.endsWith('json') || media === '*/*') continue;
  let body;
  try { body = JSON.parse(r.body); } catch { say('body is not JSON'); continue; }
  const pointer = '#/paths/' + route.template.replace(/\//g, '~1') + '/' + method +
    '/responses/' + r.status;
  const schemaRef = op.responses[String(r.status)].$ref
    ? op.responses[String(r.status)].$ref + `/content/${media.replace(/\//g, '~1')}/schema`
    : pointer + `/content/${media.replace(/\//g, '~1')}/schema`;
  const validate = ajv.getSchema('openapi.json' + schemaRef);
  if (!validate(body)) say(ajv.errorsText(validate.errors));
}
console.log(`${checked} responses checked against the document, ${problems} problems`);
process.exit(problems ? 1 : 0);
