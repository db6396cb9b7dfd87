// Browser test of the web demo (run by `cargo xtask web --test`): loads the served page in
// headless Chromium, classifies every gallery image (real CIFAR-10 test images) through the page
// and checks the predictions against the native Rust model's (gallery.json), then classifies a
// file through the page's file picker. Two browser launches:
//   cpu     WebGPU unavailable (no --enable-unsafe-webgpu): the page must fall back to the CPU;
//   webgpu  --enable-unsafe-webgpu (Chromium's SwiftShader adapter): reported, and checked
//           like the CPU run whenever WebGPU did run.
// Screenshots and a JSON report go to --out.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    dist: { type: 'string' },
    out: { type: 'string', default: 'web-demo-test' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!args.url || !args.dist) {
  console.error('usage: node browser.mjs --url http://127.0.0.1:PORT/ --dist target/web-demo [--out DIR]');
  process.exit(2);
}
mkdirSync(args.out, { recursive: true });

const BASE_FLAGS = [
  '--headless', '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];
const RUNS = [
  { name: 'cpu', flags: [...BASE_FLAGS, '--disable-gpu'], mustRunOn: 'cpu' },
  { name: 'webgpu', flags: [...BASE_FLAGS, '--enable-unsafe-webgpu'], mustRunOn: null },
];
// The CPU path runs the same Rust code as the native model (different SIMD), WebGPU other
// kernels: probabilities agree to rounding.
const TOLERANCE = { cpu: 1e-4, webgpu: 2e-3 };

const native = JSON.parse(readFileSync(join(args.dist, 'gallery/gallery.json'), 'utf8'));

function compare(results, tolerance) {
  const problems = [];
  let maxDiff = 0;
  for (const expected of native) {
    const got = results.find((r) => r.file === expected.file);
    if (!got) { problems.push(`${expected.file}: not classified by the page`); continue; }
    if (got.top5[0].class !== expected.native_top5[0].class) {
      problems.push(`${expected.file}: page says ${got.top5[0].class}, native model ${expected.native_top5[0].class}`);
    }
    for (const score of expected.native_top5) {
      const mine = got.top5.find((s) => s.index === score.index);
      const diff = mine ? Math.abs(mine.probability - score.probability) : Infinity;
      maxDiff = Math.max(maxDiff, diff);
      if (diff > tolerance) {
        problems.push(`${expected.file}: p(${score.class}) ${mine?.probability} in the page, ${score.probability} native`);
      }
    }
  }
  return { problems, maxDiff };
}

async function runOnce(run) {
  const browser = await chromium.launch({ executablePath: args.chromium, headless: true, args: run.flags });
  const report = { run: run.name };
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 860 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(args.url, { waitUntil: 'load' });
    const started = Date.now();
    Object.assign(report, await page.evaluate(() => window.demo.ready));
    report.startMs = Date.now() - started;
    const results = await page.evaluate(() => window.demo.classifyGallery());
    report.images = results.length;
    report.meanMs = results.reduce((sum, r) => sum + r.ms, 0) / results.length;
    report.pageTop1 = results.filter((r) => r.top5[0].class === r.label).length;
    const { problems, maxDiff } = compare(results, TOLERANCE[report.backend]);
    report.maxProbabilityDiff = maxDiff;

    // The file picker: the first gallery image, picked as a user would.
    const first = native[0];
    await page.setInputFiles('#file', join(args.dist, 'gallery', first.file));
    await page.waitForFunction(() => document.getElementById('status').textContent === 'Done.', null, { timeout: 60000 });
    const picked = await page.$$eval('#top5 .name', (names) => names.map((n) => n.textContent));
    if (picked[0] !== first.native_top5[0].class) {
      problems.push(`file picker: page says ${picked[0]}, native model ${first.native_top5[0].class}`);
    }
    // Leave a gallery result on screen for the screenshot.
    await page.click(`.gallery button[data-file="${native[native.length - 3].file}"]`);
    await page.waitForFunction(() => /Correct|Wrong/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    report.screenshot = join(args.out, `web-demo-${run.name}.png`);
    await page.screenshot({ path: report.screenshot, fullPage: true });
    if (run.mustRunOn && report.backend !== run.mustRunOn) {
      problems.push(`expected the ${run.mustRunOn} backend, the page ran on ${report.backend} (${report.reason})`);
    }
    if (errors.length) problems.push(...errors.map((e) => `page error: ${e}`));
    report.problems = problems;
  } catch (e) {
    report.problems = [`${e.message ?? e}`];
  } finally {
    await browser.close();
  }
  return report;
}

const reports = [];
let failed = false;
for (const run of RUNS) {
  const report = await runOnce(run);
  reports.push(report);
  const summary = report.backend
    ? `ran on ${report.detail} (${report.reason}${report.fallbackAdapter ? ', software adapter' : ''}); ` +
      `${report.images} images, ${report.meanMs?.toFixed(1)} ms each after a ${report.warmupMs?.toFixed(0)} ms warm-up; ` +
      `top-1 ${report.pageTop1}/${report.images} correct; max |Δp| vs native ${report.maxProbabilityDiff?.toExponential(2)}`
    : 'did not start';
  console.log(`[${run.name}] ${summary}`);
  for (const problem of report.problems) console.log(`[${run.name}]   FAIL ${problem}`);
  // The WebGPU launch may legitimately end on the CPU; anything that ran must be right.
  if (report.problems.length && (run.mustRunOn || report.backend === 'webgpu')) failed = true;
  if (report.problems.length && !run.mustRunOn && report.backend !== 'webgpu') {
    console.log(`[${run.name}]   (WebGPU did not run here; not a failure of the demo)`);
  }
}
writeFileSync(join(args.out, 'browser-test.json'), JSON.stringify(reports, null, 2));
process.exit(failed ? 1 : 0);
