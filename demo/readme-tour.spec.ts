import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { readmeTour, repoRoot, tourBlock } from './readme-tour.mjs';

describe('README tour blocks', () => {
  const markdown = [
    'intro',
    '<!-- tour: first (a note) -->',
    '',
    '```sh',
    'echo one',
    'echo two',
    '```',
    '',
    '```sh',
    'echo not marked',
    '```',
    '<!-- tour: second -->',
    '```sh',
    'echo three',
    '```',
    '',
  ].join('\n');

  it('takes the sh block right after each marker, by name', () => {
    expect(tourBlock(markdown, 'first')).toBe('echo one\necho two\n');
    expect(tourBlock(markdown, 'second')).toBe('echo three\n');
  });

  it('says which marker is missing', () => {
    expect(() => tourBlock(markdown, 'fir')).toThrow('README.md has no ```sh block after <!-- tour: fir -->');
    expect(() => tourBlock('<!-- tour: lonely -->\n\ntext\n', 'lonely')).toThrow(/no ```sh block/);
  });

  it('finds both blocks of the real README, and npm run demo prints the first as it stands there', () => {
    expect(readmeTour('first-hour')).toContain('npx fleetctl rollouts create --model detector --version 1.1.0');
    expect(readmeTour('variants')).toContain('npx fleetctl models create seg');
    const printed = execFileSync(process.execPath, [join(repoRoot, 'demo/run-tour.mjs'), '--print'], { encoding: 'utf8' });
    expect(printed).toBe(readmeTour('first-hour'));
  });
});
