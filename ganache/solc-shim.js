#!/usr/bin/env node
// A native-solc stand-in over the npm `solc` package (the same compiler built to WebAssembly).
// It answers the two calls that py-solc-x and Slither make: `--version` and `--standard-json`
// (input JSON on stdin, output JSON on stdout). Imports resolve against node_modules and the
// --allow-paths / --base-path folders given on the command line.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}
const roots = [process.cwd(), path.join(__dirname, 'node_modules')];
for (const flag of ['--allow-paths', '--base-path', '--include-path']) {
  const at = args.indexOf(flag);
  if (at >= 0 && args[at + 1]) roots.push(...args[at + 1].split(','));
}
function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.resolve(root, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `File not found: ${importPath} (looked in ${roots.join(', ')})` };
}
const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
