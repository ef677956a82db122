// Swagger UI in headless Chromium: open /api-docs/, authorize with an API
// key, run "Try it out" on POST /api/v1/runs and report the status shown.
//   node swagger-try.mjs URL KEY ANALYSIS_ID SCREENSHOT.png
import { createRequire } from 'node:module';

const require = createRequire(process.env.ASSAY_NODE_MODULES + '/');
const { chromium } = require('playwright-core');
const [url, key, analysis, shot] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage();
  await page.goto(url + '/api-docs/');
  await page.locator('.info .title', { hasText: 'Assay API' }).waitFor();
  // Authorize: the bearer scheme's field in the dialog.
  await page.locator('button.authorize').first().click();
  const dialog = page.locator('.dialog-ux');
  await dialog.locator('input').first().fill(key);
  await dialog.locator('button.authorize').first().click();
  await dialog.locator('button.btn-done').first().click();
  // POST /api/v1/runs: Try it out, a body, Execute.
  const op = page.locator('#operations-runs-createRun');
  await op.locator('.opblock-summary').click();
  await op.locator('button.try-out__btn').click();
  await op.locator('textarea.body-param__text').fill(
    JSON.stringify({ name: 'from swagger ui', analysis_id: analysis, start: false }));
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table tr.response .response-col_status').first();
  await status.waitFor();
  console.log((await status.innerText()).trim());
  await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
}
