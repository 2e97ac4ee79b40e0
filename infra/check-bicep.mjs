#!/usr/bin/env node
// Offline syntax check for the Bicep files under infra/.
//
// No Bicep compiler can be installed on the build machines, so this parses each file with the
// tree-sitter Bicep grammar (npm tree-sitter-bicep, run by web-tree-sitter) and fails when the
// tree has an ERROR or MISSING node. It checks syntax only: types, property names and API
// versions are not checked here (the deploy workflow runs `az bicep build` for that).
//
// Usage: node infra/check-bicep.mjs [file-or-directory ...]
//   With no arguments it checks every .bicep and .bicepparam file under infra/.
//   Prints file:line:col for each problem and exits 1; exits 0 when every file parses.
//
// .bicepparam files: the grammar only knows `param name type [= value]`, so it wrongly flags
// the typeless `param name = value` lines of a parameters file. Before parsing, each such line
// has its leading `param` rewritten to `var  ` (same length, so line and column numbers still
// point at the original text). `var name = value` has exactly the shape of a parameter
// assignment, so the value expressions are still checked in full; only the keyword is not.
// Whether each assigned parameter exists in main.bicep is checked by infra_test.go.

import { readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bicepFiles } from './bicep-files.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

let Parser, Language;
try {
  ({ Parser, Language } = await import('web-tree-sitter'));
} catch {
  console.error('check-bicep: web-tree-sitter is not installed; run `npm ci` at the repository root');
  process.exit(2);
}
const grammar = join(root, 'node_modules', 'tree-sitter-bicep', 'tree-sitter-bicep.wasm');
try {
  statSync(grammar);
} catch {
  console.error(`check-bicep: ${relative(process.cwd(), grammar)} is missing; run \`npm ci\` at the repository root`);
  process.exit(2);
}

await Parser.init();
const parser = new Parser();
parser.setLanguage(await Language.load(grammar));

// paramsAsVars rewrites `param x = ...` (typeless, as in .bicepparam) to `var   x = ...`,
// keeping every character position.
function paramsAsVars(text) {
  return text.replace(/^([ \t]*)param(\s+[A-Za-z_][A-Za-z0-9_]*\s*=)/gm, '$1var  $2');
}


// problems walks the tree and returns one entry per ERROR or MISSING node, outermost first;
// children of an ERROR node are not reported again.
function problems(node, out = []) {
  if (node.isMissing) {
    out.push({ row: node.startPosition.row, col: node.startPosition.column, what: `missing ${node.type}` });
    return out;
  }
  if (node.type === 'ERROR') {
    const text = node.text.split('\n')[0].slice(0, 60);
    out.push({ row: node.startPosition.row, col: node.startPosition.column, what: `syntax error near ${JSON.stringify(text)}` });
    return out;
  }
  if (!node.hasError) return out;
  for (let i = 0; i < node.childCount; i++) problems(node.child(i), out);
  return out;
}

const args = process.argv.slice(2);
const files = bicepFiles('check-bicep', args, here, ['.bicep', '.bicepparam']);

let failed = 0;
for (const file of files) {
  let text = readFileSync(file, 'utf8');
  if (file.endsWith('.bicepparam')) text = paramsAsVars(text);
  const tree = parser.parse(text);
  const found = problems(tree.rootNode);
  const name = relative(process.cwd(), file) || file;
  for (const p of found) console.log(`${name}:${p.row + 1}:${p.col + 1}: ${p.what}`);
  if (found.length) failed++;
  tree.delete();
}
if (failed) {
  console.log(`check-bicep: ${failed} of ${files.length} file(s) have syntax errors`);
  process.exit(1);
}
console.log(`check-bicep: ${files.length} file(s) parse cleanly`);
