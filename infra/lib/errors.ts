/**
 * A deployment parameter that is missing or malformed. bin/luxflow.ts prints its message as
 * one line and exits 1: a mistake in `-c` is the operator's to fix, not a trace to read.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
