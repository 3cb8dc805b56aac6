#!/usr/bin/env node
// Summarises a StrykerJS run from its event-recorder files (reports/mutation/events), also a run cut short:
// kill rate over the mutants tested so far, per file, and every surviving or uncovered mutant with its place.
//   node scripts/mutation-summary.js [events dir]
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const dir = process.argv[2] ?? 'reports/mutation/events';
const tested = readdirSync(dir)
  .filter((f) => f.endsWith('-onMutantTested.json'))
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
  .filter((m) => m.status !== 'Ignored');
const planFile = readdirSync(dir).find((f) => f.endsWith('-onMutationTestingPlanReady.json'));
const planned = planFile
  ? JSON.parse(readFileSync(join(dir, planFile), 'utf8')).mutantPlans.filter((p) => p.mutant.status !== 'Ignored').length
  : undefined;

const detected = (s) => s === 'Killed' || s === 'Timeout';
const rel = (f) => relative(process.cwd(), f);
const byFile = new Map();
for (const m of tested) {
  const f = byFile.get(rel(m.fileName)) ?? { killed: 0, timeout: 0, survived: 0, noCoverage: 0, other: 0 };
  if (m.status === 'Killed') f.killed++;
  else if (m.status === 'Timeout') f.timeout++;
  else if (m.status === 'Survived') f.survived++;
  else if (m.status === 'NoCoverage') f.noCoverage++;
  else f.other++;
  byFile.set(rel(m.fileName), f);
}
const pct = (a, b) => (b ? `${((100 * a) / b).toFixed(1)} %` : 'n/a');
const all = tested.length;
const det = tested.filter((m) => detected(m.status)).length;
const covered = tested.filter((m) => m.status !== 'NoCoverage').length;
console.log(`mutants tested: ${all}${planned !== undefined ? ` of ${planned} planned (StringLiteral excluded)` : ''}`);
console.log(`detected (killed + timeout): ${det}, kill rate ${pct(det, all)} of tested, ${pct(det, covered)} of covered`);
console.log('\nfile | killed | timeout | survived | no coverage | other');
for (const [f, c] of [...byFile].sort()) console.log(`${f} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.other}`);
console.log('\nsurvived / no coverage:');
for (const m of tested.filter((x) => x.status === 'Survived' || x.status === 'NoCoverage')) {
  const at = `${rel(m.fileName)}:${m.location.start.line}:${m.location.start.column}`;
  console.log(`${m.status.padEnd(10)} ${at} ${m.mutatorName} -> ${JSON.stringify(m.replacement).slice(0, 80)}`);
}
