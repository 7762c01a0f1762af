#!/usr/bin/env node
// Committed so npm can link the `fleetctl` bin at install time, before dist/ is built.
await import('../dist/main.js');
