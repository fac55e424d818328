// Reports the JavaScript a page of the static export loads on its first visit: every script its
// HTML references (<script src> and script preloads), each counted once, raw and gzipped (level 9,
// as the dashboard's Go server compresses them once and caches them). Scripts marked nomodule
// (Next's polyfills for browsers without ES modules) are listed apart: current browsers skip
// them. Run after `next build`:
//
//	node scripts/first-load-size.mjs connections [out]
//
// It exits non-zero when the page is missing or its gzipped JavaScript exceeds LIMIT_KB (300).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const page = process.argv[2] ?? "connections";
const outDir = process.argv[3] ?? "out";
const limitKB = Number(process.env.LIMIT_KB ?? 300);

const htmlPath = join(outDir, page === "/" ? "" : page, "index.html");
let html;
try {
  html = readFileSync(htmlPath, "utf8");
} catch (e) {
  console.error(`first-load-size: ${htmlPath}: ${e.message} (run next build first)`);
  process.exit(2);
}

const srcs = new Set();
const legacy = new Set();
for (const m of html.matchAll(/<script\b[^>]*\bsrc="([^"]+\.js)"[^>]*>/g)) {
  (/\bnomodule\b/i.test(m[0]) ? legacy : srcs).add(m[1]);
}
for (const m of html.matchAll(/<link\b[^>]*\brel="(?:modulepreload|preload)"[^>]*>/g)) {
  const tag = m[0];
  const href = /\bhref="([^"]+\.js)"/.exec(tag)?.[1];
  if (href && (/\bas="script"/.test(tag) || /modulepreload/.test(tag))) srcs.add(href);
}

let raw = 0;
let gz = 0;
const rows = [];
for (const src of srcs) {
  const path = join(outDir, decodeURIComponent(src.split("?")[0]));
  const body = readFileSync(path);
  const z = gzipSync(body, { level: 9 }).length;
  raw += body.length;
  gz += z;
  rows.push({ src, raw: body.length, gz: z });
}
rows.sort((a, b) => b.gz - a.gz);
for (const src of legacy) {
  const body = readFileSync(join(outDir, decodeURIComponent(src.split("?")[0])));
  console.log(`(nomodule, skipped by current browsers: ${src}, ${(gzipSync(body, { level: 9 }).length / 1024).toFixed(1)} KB gz)`);
}
const kb = (n) => (n / 1024).toFixed(1);
for (const r of rows) console.log(`${kb(r.gz).padStart(7)} KB gz ${kb(r.raw).padStart(7)} KB  ${r.src}`);
console.log(`/${page === "/" ? "" : page + "/"} first-load JS: ${srcs.size} files, ${kb(raw)} KB raw, ${kb(gz)} KB gzipped (limit ${limitKB} KB)`);
if (gz / 1024 > limitKB) {
  console.error(`first-load-size: over the ${limitKB} KB budget`);
  process.exit(1);
}
