// Drives the calls the Bluesky app makes through its PDS (AppView reads, preferences, chat) with the official
// @atproto/api client, against a PDS whose AppView and chat service are test services run by ../proxy_test.go.
//
// Usage: node proxy.mjs   (Node >= 22; configured by the environment)
//   PDS_URL   the PDS's public URL
//   CHAT_DID  the chat service's DID (its DID document names its #bsky_chat endpoint)
//
// The test AppView answers getTimeline with an empty feed and cursor "from-appview", echoing the request header
// x-atproto-test-rev as its atproto-repo-rev (so the script decides how far behind it is); getProfile with
// displayName "From AppView"; getList with 400 BlockedActor. The chat service answers listConvos with cursor
// "chat". Every check prints one line ("ok   ..." or "FAIL ..."); the exit status is 1 if any check failed.
import { randomBytes } from 'node:crypto'
import { AtpAgent } from '@atproto/api'
import { CheckError, assert, check, describeError, eq, expectError, mustEnv, run } from './checks.mjs'

const PDS_URL = mustEnv('PDS_URL').replace(/\/$/, '')
const CHAT_DID = mustEnv('CHAT_DID')

async function main() {
  const suffix = randomBytes(3).toString('hex')
  const agent = new AtpAgent({ service: PDS_URL })
  const handle = `px${suffix}.test`
  await check('createAccount', async () => {
    await agent.createAccount({ handle, email: `${handle}@example.com`, password: `pw-${suffix}` })
    assert(agent.session?.did, 'no session')
  })
  const did = agent.session?.did

  // --- AppView reads, proxied with a service token ------------------------------------------------------------
  await check('getTimeline goes to the AppView', async () => {
    const { data } = await agent.getTimeline({ limit: 10 })
    eq(data.cursor, 'from-appview', 'cursor')
    eq(data.feed.length, 0, 'feed')
  })
  await check('getProfile goes to the AppView', async () => {
    const { data } = await agent.getProfile({ actor: did })
    eq(data.displayName, 'From AppView', 'displayName')
    eq(data.did, did, 'did')
  })
  await expectError('an AppView error reaches the client as it was', 400, 'BlockedActor', () =>
    agent.app.bsky.graph.getList({ list: `at://${did}/app.bsky.graph.list/3kabc` }),
  )

  // --- preferences, stored on the PDS ------------------------------------------------------------------------
  await check('getPreferences of a new account', async () => {
    const prefs = await agent.getPreferences()
    eq(prefs.moderationPrefs.adultContentEnabled, false, 'adult content')
    eq(prefs.birthDate, undefined, 'birthDate')
  })
  await check('setAdultContentEnabled, setPersonalDetails, setFeedViewPrefs', async () => {
    await agent.setAdultContentEnabled(true)
    await agent.setPersonalDetails({ birthDate: '1990-04-01T00:00:00.000Z' })
    await agent.setFeedViewPrefs('home', { hideReplies: true })
  })
  await check('getPreferences reads them back', async () => {
    const prefs = await agent.getPreferences()
    eq(prefs.moderationPrefs.adultContentEnabled, true, 'adult content')
    eq(prefs.birthDate?.toISOString().slice(0, 10), '1990-04-01', 'birthDate')
    eq(prefs.feedViewPrefs.home.hideReplies, true, 'hideReplies')
  })
  await check('putPreferences / getPreferences (raw)', async () => {
    const { data } = await agent.app.bsky.actor.getPreferences()
    const types = data.preferences.map((p) => p.$type)
    for (const t of ['adultContentPref', 'personalDetailsPref', 'feedViewPref', 'declaredAgePref']) {
      assert(types.includes(`app.bsky.actor.defs#${t}`), `missing ${t} in ${types}`)
    }
    const age = data.preferences.find((p) => p.$type === 'app.bsky.actor.defs#declaredAgePref')
    eq(age.isOverAge18, true, 'declared age')
    const kept = data.preferences.filter((p) => p.$type !== 'app.bsky.actor.defs#declaredAgePref')
    await agent.app.bsky.actor.putPreferences({ preferences: kept })
    const again = await agent.app.bsky.actor.getPreferences()
    eq(again.data.preferences.length, data.preferences.length, 'count after rewrite')
  })
  await expectError('putPreferences outside app.bsky is refused', 400, 'InvalidRequest', () =>
    agent.app.bsky.actor.putPreferences({ preferences: [{ $type: 'com.example.pref' }] }),
  )

  // --- chat, through atproto-proxy -------------------------------------------------------------------------
  await check('chat listConvos goes to the chat service (withProxy)', async () => {
    const chat = agent.withProxy('bsky_chat', CHAT_DID)
    const { data } = await chat.chat.bsky.convo.listConvos({ limit: 5 })
    eq(data.cursor, 'chat', 'cursor')
  })

  // --- read-after-write --------------------------------------------------------------------------------------
  await check('a new post shows in the timeline before the AppView has it', async () => {
    // A profile first, as the app makes at sign-up: a rev older than every record is taken for one from
    // another repo's history (the reference's rule), so the AppView's rev must be one this repo has used.
    await agent.upsertProfile((existing) => ({ ...existing, displayName: 'Proxy Tester' }))
    const { data: latest } = await agent.com.atproto.sync.getLatestCommit({ did })
    const { uri } = await agent.post({ text: 'hello from the official client', createdAt: new Date().toISOString() })
    const { data, headers } = await agent.getTimeline({}, { headers: { 'x-atproto-test-rev': latest.rev } })
    eq(data.feed.length, 1, 'feed')
    eq(data.feed[0].post.uri, uri, 'post uri')
    eq(data.feed[0].post.record.text, 'hello from the official client', 'text')
    eq(data.feed[0].post.author.did, did, 'author')
    assert(/^\d+$/.test(headers['atproto-upstream-lag'] ?? ''), `atproto-upstream-lag: ${headers['atproto-upstream-lag']}`)
  })
  await check('an AppView that has caught up is relayed as it is', async () => {
    const { data: latest } = await agent.com.atproto.sync.getLatestCommit({ did })
    const { data, headers } = await agent.getTimeline({}, { headers: { 'x-atproto-test-rev': latest.rev } })
    eq(data.feed.length, 0, 'feed')
    eq(headers['atproto-upstream-lag'], undefined, 'lag header')
  })
}

await run(main)
