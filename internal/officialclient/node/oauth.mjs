// Signs a user of the PDS in with the official OAuth client (@atproto/oauth-client-node), as a third-party app
// would: a development loopback client discovers the PDS from the user's handle, sends a pushed authorization
// request and prints the authorization URL; the Go test then drives a real browser through the PDS's sign-in and
// consent pages, which redirect to this script's loopback callback. The script then writes records within and
// beyond the granted permissions, refreshes, signs out and checks that the revoked tokens no longer work.
//
// Usage: node oauth.mjs   (Node >= 22; configured by the environment)
//   PDS_URL   the PDS's public URL (http://localhost:<port>: development mode, loopback clients allowed)
//   PLC_URL   the PLC directory the PDS registers accounts with
//   HANDLE    the handle to sign in (resolved through the PDS's com.atproto.identity.resolveHandle)
//   SCOPE     the scope the app asks for (must include "atproto")
//   DENIED_COLLECTION  a collection the scope does not cover: a write there must fail with 403 ScopeMissingError
//
// Protocol with the Go test, on stdout: "AUTHORIZE_URL <url>" once the PAR succeeded; the test opens it in the
// browser. Every check prints one line ("ok   ..." or "FAIL ..."); the exit status is 1 if any check failed.
import { createServer } from 'node:http'
import { Agent } from '@atproto/api'
import { NodeOAuthClient, buildAtprotoLoopbackClientMetadata, requestLocalLock } from '@atproto/oauth-client-node'
import { assert, check, eq, expectError, mustEnv, run } from './checks.mjs'

const PDS_URL = mustEnv('PDS_URL').replace(/\/$/, '')
const PLC_URL = mustEnv('PLC_URL').replace(/\/$/, '')
const HANDLE = mustEnv('HANDLE')
const SCOPE = mustEnv('SCOPE')
const DENIED_COLLECTION = mustEnv('DENIED_COLLECTION')
const ALLOWED_COLLECTION = 'app.bsky.feed.post'

class MemoryStore {
  constructor() {
    this.m = new Map()
  }
  async get(k) {
    return this.m.get(k)
  }
  async set(k, v) {
    this.m.set(k, v)
  }
  async del(k) {
    this.m.delete(k)
  }
}

// The callback server: the browser lands here after the consent page; the first request settles `landed`.
let landed
const callbackParams = new Promise((resolve) => {
  landed = resolve
})
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1')
  if (url.pathname !== '/callback') {
    res.writeHead(404).end()
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end('signed in: you can close this window')
  landed(url.searchParams)
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const redirectURI = `http://127.0.0.1:${server.address().port}/callback`

const sessionStore = new MemoryStore()
const client = new NodeOAuthClient({
  clientMetadata: buildAtprotoLoopbackClientMetadata({ scope: SCOPE, redirect_uris: [redirectURI] }),
  stateStore: new MemoryStore(),
  sessionStore,
  handleResolver: PDS_URL,
  plcDirectoryUrl: PLC_URL,
  allowHttp: true,
  requestLock: requestLocalLock,
})

function post(agent, did, collection, text) {
  const record =
    collection === ALLOWED_COLLECTION
      ? { $type: collection, text, createdAt: new Date().toISOString() }
      : { $type: collection, subject: { uri: `at://${did}/app.bsky.feed.post/3jzfcijpj2z2a`, cid: 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm' }, createdAt: new Date().toISOString() }
  return agent.com.atproto.repo.createRecord({ repo: did, collection, record })
}

async function main() {
  const authorizeURL = await check('discovery from the handle and PAR give an authorization URL on the PDS', async () => {
    const url = await client.authorize(HANDLE, { scope: SCOPE })
    eq(url.origin, new URL(PDS_URL).origin, 'authorization URL origin')
    eq(url.pathname, '/oauth/authorize', 'authorization URL path')
    assert(url.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:'), `request_uri in ${url}`)
    return url
  })
  if (!authorizeURL) return
  console.log(`AUTHORIZE_URL ${authorizeURL}`)

  const params = await callbackParams
  const session = await check('the callback gives a session for the signed-in account', async () => {
    eq(params.get('iss'), PDS_URL, 'iss on the redirect')
    const { session } = await client.callback(params)
    const info = await session.getTokenInfo(false)
    eq(info.sub, session.did, 'sub')
    assert(info.scope.split(' ').includes('atproto'), `scope ${info.scope}`)
    return session
  })
  if (!session) return
  const agent = new Agent(session)
  const did = session.did

  await check('the session names the signed-in handle', async () => {
    const { data } = await agent.com.atproto.server.getSession()
    eq(data.did, did, 'did')
    eq(data.handle, HANDLE, 'handle')
  })
  const created = await check(`a write within the granted scope (${ALLOWED_COLLECTION})`, async () => {
    const { data } = await post(agent, did, ALLOWED_COLLECTION, 'posted through OAuth')
    assert(data.uri.startsWith(`at://${did}/${ALLOWED_COLLECTION}/`), `uri ${data.uri}`)
    return data
  })
  if (created) {
    await check('the record reads back', async () => {
      const rkey = created.uri.split('/').pop()
      const { data } = await agent.com.atproto.repo.getRecord({ repo: did, collection: ALLOWED_COLLECTION, rkey })
      eq(data.value.text, 'posted through OAuth', 'text')
    })
  }
  await expectError(`a write outside the granted scope (${DENIED_COLLECTION})`, 403, 'ScopeMissingError', () =>
    post(agent, did, DENIED_COLLECTION, 'not allowed'),
  )

  const before = JSON.parse(JSON.stringify(await sessionStore.get(did)))
  await check('refresh rotates the tokens and the new access token works', async () => {
    const oldRefresh = before.tokenSet.refresh_token
    await session.getTokenInfo(true)
    const after = await sessionStore.get(did)
    assert(after.tokenSet.refresh_token !== oldRefresh, 'refresh token did not rotate')
    assert(after.tokenSet.access_token !== before.tokenSet.access_token, 'access token did not change')
    await post(agent, did, ALLOWED_COLLECTION, 'after refresh')
  })
  await check('the replayed (old) refresh token is refused and ends the session', async () => {
    await sessionStore.set(did, before)
    let refused = false
    try {
      await client.restore(did, true)
    } catch {
      refused = true
    }
    assert(refused, 'refreshing with a used refresh token succeeded')
  })

  // A second sign-in, to revoke it explicitly with signOut (the replay above ended the first session).
  console.log('SECOND_SIGNIN')
  const url2 = await client.authorize(HANDLE, { scope: SCOPE })
  console.log(`AUTHORIZE_URL ${url2}`)
  const params2 = await new Promise((resolve) => {
    landed = resolve
  })
  const session2 = await check('a second sign-in (account chooser) gives a new session', async () => {
    const { session } = await client.callback(params2)
    eq(session.did, did, 'did')
    return session
  })
  if (!session2) return
  const agent2 = new Agent(session2)
  await check('the second session writes', () => post(agent2, did, ALLOWED_COLLECTION, 'second session'))
  const saved = JSON.parse(JSON.stringify(await sessionStore.get(did)))
  await check('signOut revokes the session at the PDS', async () => {
    await session2.signOut()
    await sessionStore.set(did, saved) // put the revoked tokens back: the PDS must refuse them
    const revoked = await client.restore(did, false)
    let status = 0
    try {
      await post(new Agent(revoked), did, ALLOWED_COLLECTION, 'after revoke')
    } catch (err) {
      status = err.status
    }
    eq(status, 401, 'status of a write with a revoked access token')
  })
}

try {
  await run(main)
} finally {
  server.close()
}
