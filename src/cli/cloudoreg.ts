import { main } from './main.js'

// The executable: `cloudoreg` (package.json's bin runs the compiled dist/src/cli/cloudoreg.js).
process.exitCode = await main(process.argv.slice(2), {
  env: process.env,
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) },
  bars: process.stderr
})
