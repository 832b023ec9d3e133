/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  testTimeout: 60000,
  // @peculiar/x509 -> tsyringe throws "requires a reflect polyfill" without it
  setupFiles: ['reflect-metadata'],
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testRegex: '\\.spec\\.ts$',
  transform: {
    '^.+\\.[cm]?[tj]s$': ['@swc/jest', {
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: 'es2022',
      },
      module: { type: 'commonjs' },
    }],
  },
  // every ESM-only package in the require graph must be transformed (TOOLCHAIN.md §1)
  transformIgnorePatterns: ['/node_modules/(?!(aedes|@electric-sql/pglite|content-disposition)/)'],
  // the prisma-client generator emits './x.js' imports from .ts files
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};
