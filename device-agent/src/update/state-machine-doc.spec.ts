import { describe, it, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { END_STATES, TRANSITION_TABLE, UPDATE_EVENTS } from './transition-table.js';

/** docs/state-machine.md draws the transition table; this keeps the drawing and the table equal. */
const doc = readFileSync(fileURLToPath(new URL('../../docs/state-machine.md', import.meta.url)), 'utf8');
const diagram = /```mermaid\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';

/** Mermaid ids cannot contain '-': the doc aliases them (`state "health-checking" as health_checking`). */
const aliases = new Map([...diagram.matchAll(/state "([^"]+)" as (\w+)/g)].map((m) => [m[2]!, m[1]!]));
const stateOf = (id: string): string => aliases.get(id) ?? id;

const edges = [...diagram.matchAll(/^\s*(\[\*\]|\w+) --> (\[\*\]|\w+)(?::\s*([\w-]+))?/gm)].map((m) => ({
  from: m[1] === '[*]' ? '[*]' : stateOf(m[1]!),
  to: m[2] === '[*]' ? '[*]' : stateOf(m[2]!),
  event: m[3],
}));

describe('docs/state-machine.md', () => {
  it('has a diagram', () => {
    expect(edges.length).toBeGreaterThan(10);
  });

  it('draws exactly the rows of the transition table', () => {
    const drawn = edges.filter((e) => e.from !== '[*]' && e.to !== '[*]').map((e) => `${e.from} --${e.event}--> ${e.to}`);
    const table = TRANSITION_TABLE.map((r) => `${r.from} --${r.event}--> ${r.to}`);
    expect([...drawn].sort()).toEqual([...table].sort());
    for (const e of edges.filter((x) => x.event !== undefined && x.from !== '[*]')) expect(UPDATE_EVENTS).toContain(e.event);
  });

  it('starts updates in idle and ends them exactly in the end states', () => {
    expect(edges.filter((e) => e.from === '[*]').map((e) => e.to)).toEqual(['idle']);
    expect(
      edges
        .filter((e) => e.to === '[*]')
        .map((e) => e.from)
        .sort(),
    ).toEqual([...END_STATES].sort());
  });
});
