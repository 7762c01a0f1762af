#!/usr/bin/env node
// Committed so npm can link the `fleet-agent` bin at install time, before dist/ is built.
// dist/cli/main.js runs itself only when it is the entry script, so the shim calls its main().
const { main } = await import('../dist/cli/main.js');
process.exit(await main(process.argv.slice(2)));
