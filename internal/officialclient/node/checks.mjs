// Shared by the scripts: named checks that print one line each, and the run's exit status.

let passed = 0
let failed = 0

export function mustEnv(name) {
  const v = process.env[name]
  if (!v) {
    console.error(`${name} is required`)
    process.exit(2)
  }
  return v
}

export class CheckError extends Error {}

export function assert(cond, msg) {
  if (!cond) throw new CheckError(msg)
}

export function eq(got, want, what) {
  const g = JSON.stringify(got)
  const w = JSON.stringify(want)
  if (g !== w) throw new CheckError(`${what}: got ${g}, want ${w}`)
}

// check runs one named check and prints its outcome; it returns fn's value, or undefined on failure.
export async function check(name, fn) {
  try {
    const v = await fn()
    passed++
    console.log(`ok   ${name}`)
    return v
  } catch (err) {
    failed++
    const detail = err instanceof CheckError ? err.message : describeError(err)
    console.log(`FAIL ${name}: ${detail}`)
    return undefined
  }
}

export function describeError(err) {
  if (err && typeof err === 'object' && 'status' in err && 'error' in err) {
    return `XRPC ${err.status} ${err.error}: ${err.message}`
  }
  return err?.stack ?? String(err)
}

// expectError runs fn and checks that it fails with the given XRPC error name and HTTP status.
export async function expectError(name, status, errorName, fn) {
  return check(`${name} -> ${status} ${errorName}`, async () => {
    let res
    try {
      res = await fn()
    } catch (err) {
      assert(err && 'status' in err, `not an XRPC error: ${describeError(err)}`)
      eq(err.status, status, 'HTTP status')
      eq(err.error, errorName, `error name (message: ${err.message})`)
      return
    }
    throw new CheckError(`succeeded (${JSON.stringify(res?.data ?? res).slice(0, 200)}), want ${status} ${errorName}`)
  })
}

// run runs main, counts an unexpected exception as a failure, prints the summary and exits (1 on any failure).
export async function run(main) {
  try {
    await main()
  } catch (err) {
    failed++
    console.log(`FAIL (unexpected) ${describeError(err)}`)
  }
  console.log(`summary: ${passed} checks ok, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}
