import type { AppConfig } from './config.schema.js';

/** Injection token for the validated AppConfig. */
export const APP_CONFIG = Symbol('APP_CONFIG');
export type { AppConfig };
