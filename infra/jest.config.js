/** ts-jest with TypeScript ~5.9 (ts-jest needs the TypeScript JS compiler API, gone in 7). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // tsconfig's isolatedModules makes ts-jest transpile only (fast); `tsc --noEmit` in ci.sh
    // does the type-check once.
    '^.+\\.tsx?$': 'ts-jest',
  },
};
