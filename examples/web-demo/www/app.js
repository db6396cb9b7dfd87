// RepOpt-VGG in the browser: WebGPU through Burn's wgpu backend, or Burn's CPU backend in wasm
// when WebGPU is missing. `?backend=cpu|webgpu|auto` overrides the automatic choice.
import init, { WebClassifier } from './pkg/repopt_web_demo.js';

const $ = (id) => document.getElementById(id);
let classifier = null;
let card = null;
let gallery = [];

// Picks the backend: WebGPU when the browser offers an adapter, else the CPU.
async function chooseBackend(wanted) {
  if (wanted === 'cpu') return { backend: 'cpu', reason: 'CPU requested' };
  if (!('gpu' in navigator)) {
    return { backend: wanted === 'webgpu' ? 'webgpu' : 'cpu', reason: 'this browser has no WebGPU (navigator.gpu)' };
  }
  let adapter = null;
  try { adapter = await navigator.gpu.requestAdapter(); } catch (e) { /* reported below */ }
  if (!adapter) {
    return { backend: wanted === 'webgpu' ? 'webgpu' : 'cpu', reason: 'WebGPU offers no adapter here' };
  }
  const info = adapter.info || {};
  const name = [info.vendor, info.architecture, info.device].filter(Boolean).join(' ');
  return { backend: 'webgpu', reason: name || 'WebGPU adapter', fallbackAdapter: !!adapter.isFallbackAdapter };
}

// RGBA pixels of `source` (a Blob) at the model's input size: centre-cropped to a square and
// scaled; an image already at the input size is copied pixel for pixel.
async function pixels(source) {
  const bitmap = await createImageBitmap(source, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const size = card.image_size;
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const side = Math.min(bitmap.width, bitmap.height);
  ctx.imageSmoothingEnabled = side !== size;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, size, size);
  bitmap.close();
  return ctx.getImageData(0, 0, size, size);
}

function showPreview(image) {
  const canvas = $('preview');
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext('2d').putImageData(image, 0, 0);
}

function showTop5(top5) {
  const list = $('top5');
  list.replaceChildren(...top5.map((score) => {
    const li = document.createElement('li');
    const pct = (100 * score.probability).toFixed(1);
    li.innerHTML = `<span class="name"></span><span class="bar"><span class="fill"></span></span><span class="pct">${pct} %</span>`;
    li.querySelector('.name').textContent = score.class;
    li.querySelector('.fill').style.width = `${Math.max(0.5, 100 * score.probability)}%`;
    return li;
  }));
}

// Classifies one image: returns the top-5 and the wall time of the model call.
async function classify(image) {
  const started = performance.now();
  const top5 = JSON.parse(await classifier.classify(new Uint8Array(image.data.buffer), image.width, image.height, 5));
  return { top5, ms: performance.now() - started };
}

async function classifyAndShow(source, truth) {
  try {
    const image = await pixels(source);
    showPreview(image);
    const { top5, ms } = await classify(image);
    showTop5(top5);
    $('time').textContent = `${ms.toFixed(1)} ms`;
    $('truth').textContent = truth ?? '–';
    setStatus(truth ? (top5[0].class === truth ? 'Correct.' : `Wrong: it is a ${truth}.`) : 'Done.');
    return { top5, ms };
  } catch (e) {
    setStatus(`Could not classify this image: ${e.message ?? e}`, true);
    throw e;
  }
}

function setStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

function setupInput() {
  const drop = $('drop');
  const file = $('file');
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') file.click(); });
  file.addEventListener('change', () => { if (file.files[0]) classifyAndShow(file.files[0]); });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const dropped = [...e.dataTransfer.files].find((f) => f.type.startsWith('image/'));
    if (dropped) classifyAndShow(dropped); else setStatus('That is not an image file.', true);
  });
}

async function setupGallery() {
  const response = await fetch('gallery/gallery.json');
  if (!response.ok) {
    $('gallery').textContent = 'No gallery was built (see the README).';
    return;
  }
  gallery = await response.json();
  $('gallery').replaceChildren(...gallery.map((entry) => {
    const button = document.createElement('button');
    button.title = entry.label;
    button.dataset.file = entry.file;
    button.innerHTML = `<img alt="${entry.label}" src="gallery/${entry.file}">`;
    button.addEventListener('click', async () => {
      document.querySelectorAll('.gallery button').forEach((b) => b.classList.toggle('selected', b === button));
      const blob = await (await fetch(`gallery/${entry.file}`)).blob();
      const { top5 } = await classifyAndShow(blob, entry.label);
      mark(button, top5[0].class === entry.label);
    });
    return button;
  }));
}

function mark(button, right) {
  let badge = button.querySelector('.mark');
  if (!badge) {
    badge = document.createElement('span');
    button.append(badge);
  }
  badge.className = `mark ${right ? 'right' : 'wrong'}`;
  badge.textContent = right ? '✓' : '✗';
}

// Classifies every gallery image through the same path as a click (used by the browser test).
async function classifyGallery() {
  const results = [];
  for (const button of document.querySelectorAll('.gallery button')) {
    const entry = gallery.find((g) => g.file === button.dataset.file);
    const blob = await (await fetch(`gallery/${entry.file}`)).blob();
    document.querySelectorAll('.gallery button').forEach((b) => b.classList.toggle('selected', b === button));
    const { top5, ms } = await classifyAndShow(blob, entry.label);
    mark(button, top5[0].class === entry.label);
    results.push({ file: entry.file, label: entry.label, top5, ms });
  }
  return results;
}

function describe(card) {
  const p = card.provenance;
  const commands = p.commands.map((c) => `<code></code>`).join(' then ');
  $('about').innerHTML = `<strong></strong>: ${card.architecture.num_blocks.join('-')} blocks per stage,
    trained on ${p.dataset} with this project's pipeline (hyper-search, then the RepOptimizer), reaches
    <strong>${p.test_top1.toFixed(2)} %</strong> top-1 and ${p.test_top5.toFixed(2)} % top-5 on its
    ${p.test_images.toLocaleString('en')} test images. The page loads the training run's burnpack as
    it is: a RepOpt-VGG is already the plain network it deploys. ${commands ? `Rebuilt by ${commands}.` : ''}`;
  $('about').querySelector('strong').textContent = card.name;
  $('about').querySelectorAll('code').forEach((code, i) => { code.textContent = p.commands[i]; });
}

async function main() {
  const wanted = new URLSearchParams(location.search).get('backend') ?? 'auto';
  const choice = await chooseBackend(wanted);
  await init();
  const [model, cardText] = await Promise.all([fetchBytes('model/model.bpk'), fetch('model/model.json').then((r) => r.text())]);
  card = JSON.parse(cardText);
  let backend = choice.backend;
  try {
    classifier = await WebClassifier.create(model, cardText, backend);
  } catch (e) {
    if (backend !== 'webgpu' || wanted === 'webgpu') throw e;
    choice.reason = `WebGPU failed (${e.message ?? e})`;
    backend = 'cpu';
    classifier = await WebClassifier.create(model, cardText, backend);
  }
  const badge = $('backend');
  badge.textContent = backend === 'webgpu' ? 'WebGPU' : 'CPU (wasm)';
  badge.className = `badge ${backend}`;
  $('backend-detail').textContent = classifier.backend;
  badge.title = choice.reason + (choice.fallbackAdapter ? ' (software fallback adapter)' : '');
  describe(card);
  setupInput();
  await setupGallery();
  // Warm-up: the first call compiles the GPU kernels.
  const warm = await classify(new ImageData(card.image_size, card.image_size));
  setStatus(`Ready (${backend === 'webgpu' ? 'WebGPU' : 'CPU'}, warm-up ${warm.ms.toFixed(0)} ms): pick an image.`);
  return { backend, detail: classifier.backend, reason: choice.reason, fallbackAdapter: !!choice.fallbackAdapter, warmupMs: warm.ms };
}

window.demo = { ready: main(), classifyGallery };
window.demo.ready.catch((e) => setStatus(`The demo failed to start: ${e.message ?? e}`, true));
