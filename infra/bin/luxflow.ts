#!/usr/bin/env node
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/errors';

try {
  buildApp();
} catch (error) {
  // A parameter the operator got wrong: its one line is the whole story, a trace only hides it.
  if (!(error instanceof ConfigError)) throw error;
  console.error(`luxflow: ${error.message}`);
  process.exit(1);
}
