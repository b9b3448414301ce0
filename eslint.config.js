import neostandard from 'neostandard'

// Fastify's own style: neostandard with TypeScript, over src, routes, test and bench.
export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'data/**', 'node_modules/**', '.node/**']
  }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (a timer, a background loop whose
      // errors are handled inside); allowed as a statement only.
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
