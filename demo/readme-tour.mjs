// The README's runnable blocks: a fenced ```sh block right after a `<!-- tour: NAME ... -->` comment.
// `npm run demo` and test/e2e/readme-tour.e2e-spec.ts both take the commands from README.md itself,
// so the README cannot show a command that they do not run.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The shell text of the block marked `<!-- tour: NAME -->` in the markdown. Throws when it is missing. */
export function tourBlock(markdown, name) {
  const marker = new RegExp(`<!-- tour: ${name}[ >][^\\n]*\\n\\s*\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\`\\n`);
  const match = marker.exec(markdown);
  if (!match) throw new Error(`README.md has no \`\`\`sh block after <!-- tour: ${name} -->`);
  return `${match[1]}\n`;
}

export function readmeTour(name, readme = join(repoRoot, 'README.md')) {
  return tourBlock(readFileSync(readme, 'utf8'), name);
}
