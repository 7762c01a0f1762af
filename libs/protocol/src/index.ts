export * from './version.js';
export * from './topics.js';
export * from './update-state.js';
export * from './telemetry.js';
export * from './messages.js';
export * from './enrollment.js';
export * from './compatibility.js';
export * from './targets.js';
