// Drives the PDS with the official TypeScript clients (@atproto/api's AtpAgent, @atproto/repo's verifiers), as a
// new user's app would, and checks every answer, including the error cases, by XRPC error name and HTTP status.
//
// Usage: node e2e.mjs   (Node >= 22; configured by the environment)
//   PDS_URL         the PDS's public URL, e.g. http://localhost:2583
//   PLC_URL         the PLC directory the PDS registers accounts with
//   PDS_JWT_SECRET  optional: the PDS's session secret, to forge an expired access token (skipped when unset)
//
// Every check prints one line ("ok   ..." or "FAIL ..."); the exit status is 1 if any check failed.
import { createHmac, randomBytes } from 'node:crypto'
import { AtpAgent } from '@atproto/api'
import { cidForRecord, verifyProofs, verifyRecords, verifyRepoCar } from '@atproto/repo'
import { CheckError, assert, check, describeError, eq, expectError, mustEnv, run } from './checks.mjs'

const PDS_URL = mustEnv('PDS_URL').replace(/\/$/, '')
const PLC_URL = mustEnv('PLC_URL').replace(/\/$/, '')
const JWT_SECRET = process.env.PDS_JWT_SECRET ?? ''

// raw sends an HTTP request without the client, for what the client refuses to send (malformed JSON).
async function raw(method, nsid, { body, token, contentType = 'application/json' } = {}) {
  const headers = {}
  if (body !== undefined) headers['content-type'] = contentType
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(`${PDS_URL}/xrpc/${nsid}`, { method, headers, body })
  const text = await res.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json, text }
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url')
}

// forgeToken signs a session JWT with the PDS's secret (HS256), as the PDS would, with the given claims.
function forgeToken(typ, claims) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ }))
  const payload = b64url(JSON.stringify(claims))
  const sig = createHmac('sha256', Buffer.from(JWT_SECRET, 'utf8')).update(`${header}.${payload}`).digest()
  return `${header}.${payload}.${b64url(sig)}`
}

async function plcData(did) {
  const res = await fetch(`${PLC_URL}/${did}/data`)
  assert(res.ok, `PLC ${did}/data: HTTP ${res.status}`)
  return res.json()
}

const now = () => new Date().toISOString()
const post = (text) => ({ $type: 'app.bsky.feed.post', text, createdAt: now() })

async function main() {
  console.log(`PDS ${PDS_URL}, PLC ${PLC_URL}, node ${process.version}`)
  const suffix = randomBytes(3).toString('hex')
  const users = {
    alice: { handle: `alice-${suffix}.test`, email: `alice-${suffix}@example.com`, password: 'alice-pass-1' },
    bob: { handle: `bob-${suffix}.test`, email: `bob-${suffix}@example.com`, password: 'bob-pass-1' },
  }

  // --- server and accounts -------------------------------------------------------------------------------------
  const anon = new AtpAgent({ service: PDS_URL })
  const server = await check('describeServer', async () => {
    const { data } = await anon.com.atproto.server.describeServer()
    assert(data.did?.startsWith('did:'), `did ${data.did}`)
    assert(data.availableUserDomains.includes('.test'), `availableUserDomains ${data.availableUserDomains}`)
    return data
  })

  const alice = new AtpAgent({ service: PDS_URL })
  const bob = new AtpAgent({ service: PDS_URL })
  for (const [name, agent] of [['alice', alice], ['bob', bob]]) {
    const u = users[name]
    await check(`createAccount ${name}`, async () => {
      const { data } = await agent.createAccount({ handle: u.handle, email: u.email, password: u.password })
      assert(data.did.startsWith('did:plc:'), `did ${data.did}`)
      eq(data.handle, u.handle, 'handle')
      assert(agent.hasSession && agent.session.accessJwt && agent.session.refreshJwt, 'agent has no session')
      u.did = data.did
    })
  }
  if (!users.alice.did || !users.bob.did) return

  for (const name of ['alice', 'bob']) {
    const u = users[name]
    await check(`PLC document of ${name} names this PDS and a signing key`, async () => {
      const data = await plcData(u.did)
      eq(data.services?.atproto_pds?.endpoint, PDS_URL, 'atproto_pds endpoint')
      eq(data.alsoKnownAs, [`at://${u.handle}`], 'alsoKnownAs')
      u.signingKey = data.verificationMethods?.atproto
      assert(u.signingKey?.startsWith('did:key:z'), `atproto verification method ${u.signingKey}`)
    })
  }
  await check('agent follows the DID document to this PDS', async () => {
    eq(alice.pdsUrl?.origin, new URL(PDS_URL).origin, 'agent.pdsUrl')
  })

  // --- sessions ------------------------------------------------------------------------------------------------
  const byHandle = new AtpAgent({ service: PDS_URL })
  await check('login by handle', async () => {
    const { data } = await byHandle.login({ identifier: users.alice.handle, password: users.alice.password })
    eq(data.did, users.alice.did, 'did')
    eq(data.handle, users.alice.handle, 'handle')
    eq(data.active, true, 'active')
    eq(byHandle.pdsUrl?.origin, new URL(PDS_URL).origin, 'pdsUrl from didDoc')
  })
  const byDid = new AtpAgent({ service: PDS_URL })
  await check('login by DID', async () => {
    const { data } = await byDid.login({ identifier: users.alice.did, password: users.alice.password })
    eq(data.handle, users.alice.handle, 'handle')
  })
  await check('login by email', async () => {
    const a = new AtpAgent({ service: PDS_URL })
    const { data } = await a.login({ identifier: users.bob.email, password: users.bob.password })
    eq(data.did, users.bob.did, 'did')
  })
  await check('getSession', async () => {
    const { data } = await byDid.com.atproto.server.getSession()
    eq(data.did, users.alice.did, 'did')
    eq(data.email, users.alice.email, 'email')
  })
  let revokedRefresh
  await check('refreshSession rotates the refresh token and the new session works', async () => {
    const before = byDid.session
    await byDid.sessionManager.refreshSession()
    const after = byDid.session
    assert(after && after.refreshJwt !== before.refreshJwt, 'refresh token not rotated')
    eq(after.did, users.alice.did, 'did')
    const { data } = await byDid.com.atproto.server.getSession()
    eq(data.handle, users.alice.handle, 'handle')
    revokedRefresh = after.refreshJwt
  })
  await check('logout (deleteSession) ends the session', async () => {
    await byDid.logout()
    assert(!byDid.hasSession, 'agent still has a session')
  })
  if (revokedRefresh) {
    await expectError('refreshSession with a revoked refresh token', 400, 'ExpiredToken', () =>
      anon.com.atproto.server.refreshSession(undefined, { headers: { authorization: `Bearer ${revokedRefresh}` } }),
    )
  }

  // --- writes --------------------------------------------------------------------------------------------------
  const repo = users.alice.did
  const coll = 'app.bsky.feed.post'
  let first
  await check('createRecord (agent.post)', async () => {
    const res = await alice.post({ text: 'hello from the official client', createdAt: now() })
    assert(res.uri.startsWith(`at://${repo}/${coll}/`), `uri ${res.uri}`)
    first = res
  })
  await check('createRecord with rkey and validationStatus', async () => {
    const { data } = await alice.com.atproto.repo.createRecord({ repo, collection: coll, rkey: '3kaaaaaaaaa22', record: post('fixed rkey') })
    eq(data.uri, `at://${repo}/${coll}/3kaaaaaaaaa22`, 'uri')
    eq(data.validationStatus, 'valid', 'validationStatus')
    assert(data.commit?.cid && data.commit?.rev, `commit ${JSON.stringify(data.commit)}`)
  })
  await check('createRecord of an unknown collection -> validationStatus unknown', async () => {
    const { data } = await alice.com.atproto.repo.createRecord({ repo, collection: 'com.example.thing', rkey: 'one', record: { n: 1 } })
    eq(data.validationStatus, 'unknown', 'validationStatus')
  })
  let profileCid
  await check('putRecord creates the profile', async () => {
    const { data } = await alice.com.atproto.repo.putRecord({
      repo,
      collection: 'app.bsky.actor.profile',
      rkey: 'self',
      record: { $type: 'app.bsky.actor.profile', displayName: 'Alice' },
    })
    eq(data.uri, `at://${repo}/app.bsky.actor.profile/self`, 'uri')
    profileCid = data.cid
  })
  await check('putRecord updates it with swapRecord', async () => {
    const { data } = await alice.com.atproto.repo.putRecord({
      repo,
      collection: 'app.bsky.actor.profile',
      rkey: 'self',
      swapRecord: profileCid,
      record: { $type: 'app.bsky.actor.profile', displayName: 'Alice A.', description: 'updated' },
    })
    assert(data.cid !== profileCid, 'cid did not change')
    profileCid = data.cid
  })
  await check('upsertProfile (get + put with swapRecord, as apps do)', async () => {
    await alice.upsertProfile((existing) => ({ ...existing, displayName: 'Alice B.' }))
    const { data } = await alice.com.atproto.repo.getRecord({ repo, collection: 'app.bsky.actor.profile', rkey: 'self' })
    eq(data.value.displayName, 'Alice B.', 'displayName')
    eq(data.value.description, 'updated', 'description')
    profileCid = data.cid
  })
  let toDelete
  await check('deleteRecord', async () => {
    const { data: c } = await alice.com.atproto.repo.createRecord({ repo, collection: coll, record: post('to be deleted') })
    toDelete = c.uri.split('/').pop()
    const { data } = await alice.com.atproto.repo.deleteRecord({ repo, collection: coll, rkey: toDelete })
    assert(data.commit?.rev > c.commit.rev, `delete commit rev ${data.commit?.rev} not after ${c.commit.rev}`)
  })
  await expectError('getRecord of the deleted record', 400, 'RecordNotFound', () =>
    alice.com.atproto.repo.getRecord({ repo, collection: coll, rkey: toDelete }),
  )
  await check('deleteRecord of a missing record is a no-op', async () => {
    await alice.com.atproto.repo.deleteRecord({ repo, collection: coll, rkey: toDelete })
  })
  let head
  await check('applyWrites create / update / delete', async () => {
    const { data } = await alice.com.atproto.repo.applyWrites({
      repo,
      writes: [
        { $type: 'com.atproto.repo.applyWrites#create', collection: coll, rkey: '3kbbbbbbbbb22', value: post('batch 1') },
        { $type: 'com.atproto.repo.applyWrites#create', collection: coll, value: post('batch 2') },
        { $type: 'com.atproto.repo.applyWrites#update', collection: coll, rkey: '3kaaaaaaaaa22', value: post('fixed rkey, updated') },
        { $type: 'com.atproto.repo.applyWrites#delete', collection: 'com.example.thing', rkey: 'one' },
      ],
    })
    eq(data.results?.map((r) => r.$type), [
      'com.atproto.repo.applyWrites#createResult',
      'com.atproto.repo.applyWrites#createResult',
      'com.atproto.repo.applyWrites#updateResult',
      'com.atproto.repo.applyWrites#deleteResult',
    ], 'result types')
    eq(data.results[0].uri, `at://${repo}/${coll}/3kbbbbbbbbb22`, 'results[0].uri')
    eq(data.results[0].validationStatus, 'valid', 'results[0].validationStatus')
    head = data.commit
  })
  await check('applyWrites with the current swapCommit', async () => {
    const { data } = await alice.com.atproto.repo.applyWrites({
      repo,
      swapCommit: head.cid,
      writes: [{ $type: 'com.atproto.repo.applyWrites#create', collection: coll, value: post('batch 3') }],
    })
    assert(data.commit.rev > head.rev, 'rev did not advance')
    head = data.commit
  })
  await check('bob writes to his own repo', async () => {
    await bob.post({ text: 'hi from bob', createdAt: now() })
  })

  // --- reads ---------------------------------------------------------------------------------------------------
  await check('getRecord', async () => {
    const rkey = first.uri.split('/').pop()
    const { data } = await anon.com.atproto.repo.getRecord({ repo: users.alice.handle, collection: coll, rkey })
    eq(data.uri, first.uri, 'uri')
    eq(data.cid, first.cid, 'cid')
    eq(data.value.text, 'hello from the official client', 'text')
  })
  await check('getRecord with the matching cid', async () => {
    const rkey = first.uri.split('/').pop()
    const { data } = await anon.com.atproto.repo.getRecord({ repo, collection: coll, rkey, cid: first.cid })
    eq(data.cid, first.cid, 'cid')
  })
  let listed
  await check('listRecords, newest first, paged with cursor', async () => {
    const all = []
    let cursor
    for (let i = 0; i < 10; i++) {
      const { data } = await anon.com.atproto.repo.listRecords({ repo, collection: coll, limit: 2, cursor })
      all.push(...data.records)
      cursor = data.cursor
      if (!cursor || data.records.length === 0) break
    }
    const rkeys = all.map((r) => r.uri.split('/').pop())
    eq(rkeys.length, 5, `record count (${rkeys})`)
    eq([...rkeys].sort().reverse(), rkeys, 'newest (largest rkey) first')
    eq(new Set(rkeys).size, rkeys.length, 'no duplicates across pages')
    listed = all
  })
  await check('listRecords reverse', async () => {
    const { data } = await anon.com.atproto.repo.listRecords({ repo, collection: coll, reverse: true, limit: 100 })
    const rkeys = data.records.map((r) => r.uri.split('/').pop())
    eq(rkeys, [...rkeys].sort(), 'oldest first')
  })
  await check('describeRepo', async () => {
    const { data } = await anon.com.atproto.repo.describeRepo({ repo: users.alice.handle })
    eq(data.did, repo, 'did')
    eq(data.handle, users.alice.handle, 'handle')
    eq(data.handleIsCorrect, true, 'handleIsCorrect')
    eq([...data.collections].sort(), ['app.bsky.actor.profile', coll], 'collections')
    eq(data.didDoc?.id, repo, 'didDoc.id')
  })
  await check('resolveHandle', async () => {
    const { data } = await anon.com.atproto.identity.resolveHandle({ handle: users.bob.handle })
    eq(data.did, users.bob.did, 'did')
  })

  // --- sync: export and verify ---------------------------------------------------------------------------------
  await check('sync.getRepo verifies with @atproto/repo verifyRepoCar against the PLC signing key', async () => {
    const { data: car } = await anon.com.atproto.sync.getRepo({ did: repo })
    assert(car instanceof Uint8Array && car.length > 0, 'empty CAR')
    const verified = await verifyRepoCar(car, repo, users.alice.signingKey)
    eq(verified.commit.cid.toString(), head.cid, 'commit cid = last write commit')
    eq(verified.commit.rev, head.rev, 'commit rev')
    const got = verified.creates.map((c) => `${c.collection}/${c.rkey} ${c.cid}`).sort()
    const want = [
      ...listed.map((r) => `${coll}/${r.uri.split('/').pop()} ${r.cid}`),
      `app.bsky.actor.profile/self ${profileCid}`,
    ].sort()
    eq(got, want, 'records in the CAR')
  })
  await check('sync.getRepo of bob verifies', async () => {
    const { data: car } = await anon.com.atproto.sync.getRepo({ did: users.bob.did })
    const verified = await verifyRepoCar(car, users.bob.did, users.bob.signingKey)
    eq(verified.creates.length, 1, 'record count')
  })
  await check('sync.getRepo does not verify against the other account\'s key', async () => {
    const { data: car } = await anon.com.atproto.sync.getRepo({ did: repo })
    let threw = false
    try {
      await verifyRepoCar(car, repo, users.bob.signingKey)
    } catch {
      threw = true
    }
    assert(threw, 'verified with the wrong key')
  })
  await check('sync.getLatestCommit', async () => {
    const { data } = await anon.com.atproto.sync.getLatestCommit({ did: repo })
    eq(data, { cid: head.cid, rev: head.rev }, 'latest commit')
  })
  await check('sync.getRecord proves a record (verifyRecords, verifyProofs)', async () => {
    const rkey = first.uri.split('/').pop()
    const { data: car } = await anon.com.atproto.sync.getRecord({ did: repo, collection: coll, rkey })
    const records = await verifyRecords(car, repo, users.alice.signingKey)
    eq(records.map((r) => `${r.collection}/${r.rkey}`), [`${coll}/${rkey}`], 'records')
    eq(records[0].record.text, 'hello from the official client', 'text')
    const cid = await cidForRecord(records[0].record)
    eq(cid.toString(), first.cid, 'cid of the proven record')
    const res = await verifyProofs(car, [{ collection: coll, rkey, cid }], repo, users.alice.signingKey)
    eq(res.verified.length, 1, 'verified claims')
    eq(res.unverified.length, 0, 'unverified claims')
  })
  await check('sync.getRecord proves an absence (verifyProofs)', async () => {
    const { data: car } = await anon.com.atproto.sync.getRecord({ did: repo, collection: coll, rkey: toDelete })
    const res = await verifyProofs(car, [{ collection: coll, rkey: toDelete, cid: null }], repo, users.alice.signingKey)
    eq(res.verified.length, 1, 'verified absence claims')
    eq(res.unverified.length, 0, 'unverified claims')
  })
  await check('sync.getRepoStatus', async () => {
    const { data } = await anon.com.atproto.sync.getRepoStatus({ did: repo })
    eq(data.active, true, 'active')
    eq(data.rev, head.rev, 'rev')
  })
  await check('sync.listRepos lists both accounts', async () => {
    const dids = []
    let cursor
    for (let i = 0; i < 100; i++) {
      const { data } = await anon.com.atproto.sync.listRepos({ limit: 1, cursor })
      dids.push(...data.repos.map((r) => r.did))
      cursor = data.cursor
      if (!cursor || data.repos.length === 0) break
    }
    assert(dids.includes(users.alice.did) && dids.includes(users.bob.did), `repos ${dids}`)
  })

  // --- error cases ---------------------------------------------------------------------------------------------
  await expectError('login with a bad password', 401, 'AuthenticationRequired', () =>
    new AtpAgent({ service: PDS_URL }).login({ identifier: users.alice.handle, password: 'wrong' }),
  )
  await expectError('login with an unknown handle', 401, 'AuthenticationRequired', () =>
    new AtpAgent({ service: PDS_URL }).login({ identifier: `nobody-${suffix}.test`, password: 'x' }),
  )
  await expectError('createRecord without a token', 401, 'AuthMissing', () =>
    anon.com.atproto.repo.createRecord({ repo, collection: coll, record: post('anon') }),
  )
  await expectError('getSession without a token', 401, 'AuthMissing', () => anon.com.atproto.server.getSession())
  await expectError('createRecord with a garbage token', 400, 'InvalidToken', () =>
    anon.com.atproto.repo.createRecord({ repo, collection: coll, record: post('x') }, { headers: { authorization: 'Bearer not.a.jwt' } }),
  )
  await expectError('createRecord with the refresh token (wrong kind)', 400, 'InvalidToken', () =>
    anon.com.atproto.repo.createRecord(
      { repo, collection: coll, record: post('x') },
      { headers: { authorization: `Bearer ${alice.session.refreshJwt}` } },
    ),
  )
  await expectError('refreshSession with the access token (wrong kind)', 400, 'InvalidToken', () =>
    anon.com.atproto.server.refreshSession(undefined, { headers: { authorization: `Bearer ${alice.session.accessJwt}` } }),
  )
  if (JWT_SECRET && server) {
    const t = Math.floor(Date.now() / 1000)
    const claims = { scope: 'com.atproto.access', aud: server.did, sub: repo, iat: t - 7300, exp: t - 100 }
    await check('a token forged with the PDS secret is accepted (control for the expired-token check)', async () => {
      const ok = forgeToken('at+jwt', { ...claims, exp: t + 600 })
      const { data } = await anon.com.atproto.server.getSession(undefined, { headers: { authorization: `Bearer ${ok}` } })
      eq(data.did, repo, 'did')
    })
    await expectError('createRecord with an expired access token', 400, 'ExpiredToken', () =>
      anon.com.atproto.repo.createRecord(
        { repo, collection: coll, record: post('x') },
        { headers: { authorization: `Bearer ${forgeToken('at+jwt', claims)}` } },
      ),
    )
    await check('the agent refreshes by itself on an expired access token', async () => {
      const a = new AtpAgent({ service: PDS_URL })
      await a.login({ identifier: users.alice.handle, password: users.alice.password })
      const oldRefresh = a.session.refreshJwt
      a.session.accessJwt = forgeToken('at+jwt', claims)
      const { data } = await a.com.atproto.repo.createRecord({ repo, collection: 'com.example.thing', record: { n: 2 } })
      assert(data.uri, 'no uri')
      assert(a.session.refreshJwt !== oldRefresh, 'session was not refreshed')
    })
  } else {
    console.log('note: PDS_JWT_SECRET unset: expired-token checks not run')
  }
  await expectError("createRecord in another account's repo", 401, 'AuthenticationRequired', () =>
    alice.com.atproto.repo.createRecord({ repo: users.bob.did, collection: coll, record: post('not mine') }),
  )
  await expectError("deleteRecord in another account's repo", 401, 'AuthenticationRequired', () =>
    bob.com.atproto.repo.deleteRecord({ repo, collection: coll, rkey: first.uri.split('/').pop() }),
  )
  await expectError('createRecord of an invalid post (no createdAt)', 400, 'InvalidRequest', () =>
    alice.com.atproto.repo.createRecord({ repo, collection: coll, record: { $type: coll, text: 'no date' } }),
  )
  await expectError('createRecord with a float (not in the data model)', 400, 'InvalidRequest', () =>
    alice.com.atproto.repo.createRecord({ repo, collection: 'com.example.thing', record: { n: 1.5 } }),
  )
  await expectError('createRecord with validate=true in an unknown collection', 400, 'InvalidRequest', () =>
    alice.com.atproto.repo.createRecord({ repo, collection: 'com.example.thing', validate: true, record: { n: 1 } }),
  )
  await expectError('putRecord with a stale swapRecord', 400, 'InvalidSwap', () =>
    alice.com.atproto.repo.putRecord({
      repo,
      collection: 'app.bsky.actor.profile',
      rkey: 'self',
      swapRecord: first.cid,
      record: { $type: 'app.bsky.actor.profile', displayName: 'x' },
    }),
  )
  await expectError('applyWrites with a stale swapCommit', 400, 'InvalidSwap', () =>
    alice.com.atproto.repo.applyWrites({
      repo,
      swapCommit: first.commit?.cid ?? first.cid,
      writes: [{ $type: 'com.atproto.repo.applyWrites#create', collection: coll, value: post('swap') }],
    }),
  )
  await expectError('deleteRecord with a stale swapRecord', 400, 'InvalidSwap', () =>
    alice.com.atproto.repo.deleteRecord({ repo, collection: 'app.bsky.actor.profile', rkey: 'self', swapRecord: first.cid }),
  )
  await expectError('getRecord of a missing record', 400, 'RecordNotFound', () =>
    anon.com.atproto.repo.getRecord({ repo, collection: coll, rkey: '3kzzzzzzzzz22' }),
  )
  const unknownDid = 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'
  await expectError('getRecord in an unknown repo', 400, 'InvalidRequest', () =>
    anon.com.atproto.repo.getRecord({ repo: unknownDid, collection: coll, rkey: '3kzzzzzzzzz22' }),
  )
  await expectError('listRecords of an unknown repo', 400, 'InvalidRequest', () =>
    anon.com.atproto.repo.listRecords({ repo: unknownDid, collection: coll }),
  )
  await expectError('describeRepo of an unknown repo', 400, 'InvalidRequest', () =>
    anon.com.atproto.repo.describeRepo({ repo: `nobody-${suffix}.test` }),
  )
  await expectError('sync.getRepo of an unknown repo', 400, 'RepoNotFound', () =>
    anon.com.atproto.sync.getRepo({ did: unknownDid }),
  )
  await expectError('sync.getLatestCommit of an unknown repo', 400, 'RepoNotFound', () =>
    anon.com.atproto.sync.getLatestCommit({ did: unknownDid }),
  )
  await expectError('createRecord with a record over 1,000,000 bytes', 413, 'PayloadTooLarge', () =>
    alice.com.atproto.repo.createRecord({ repo, collection: 'com.example.thing', record: { s: 'x'.repeat(1_100_000) } }),
  )
  await expectError('createSession with a body over 150 KB', 413, 'PayloadTooLarge', () =>
    new AtpAgent({ service: PDS_URL }).login({ identifier: users.alice.handle, password: 'x'.repeat(200_000) }),
  )
  await expectError('createRecord with malformed JSON', 400, 'InvalidRequest', () =>
    alice.call('com.atproto.repo.createRecord', undefined, '{"repo": "' + repo + '", "collection": ', {
      encoding: 'application/json',
    }),
  )
  await check('malformed JSON answers an XRPC error body, not a Go error string', async () => {
    const res = await raw('POST', 'com.atproto.server.createSession', { body: '{"identifier":' })
    eq(res.status, 400, 'status')
    eq(res.json?.error, 'InvalidRequest', `error (body ${res.text.slice(0, 200)})`)
    assert(typeof res.json?.message === 'string', 'message')
  })
  await expectError('listRecords with limit 0 (bad params)', 400, 'InvalidRequest', () =>
    anon.com.atproto.repo.listRecords({ repo, collection: coll, limit: 0 }),
  )
  await check('a query on POST is refused', async () => {
    const res = await raw('POST', 'com.atproto.repo.describeRepo', { body: '{}' })
    assert(res.status === 400 || res.status === 405, `status ${res.status}`)
    assert(typeof res.json?.error === 'string', `body ${res.text.slice(0, 200)}`)
  })

  // --- state after the errors ----------------------------------------------------------------------------------
  await check('failed writes changed nothing', async () => {
    const { data } = await anon.com.atproto.sync.getLatestCommit({ did: repo })
    const { data: car } = await anon.com.atproto.sync.getRepo({ did: repo })
    const verified = await verifyRepoCar(car, repo, users.alice.signingKey)
    eq(verified.commit.rev, data.rev, 'exported rev = latest rev')
    const posts = verified.creates.filter((c) => c.collection === coll).length
    eq(posts, 5, 'posts')
  })
}

await run(main)
