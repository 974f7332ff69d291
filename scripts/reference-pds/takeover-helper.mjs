// Helpers of scripts/takeover-reference.sh that need the official libraries (run with the reference's Node 22):
//
//   sub URL CURSOR OUT     subscribe to URL's firehose from CURSOR ("" = live); append "seq type repo rev since"
//                          per message to OUT until the connection closes (or an error frame, logged as "error NAME")
//   verify BASE PLC DID    fetch sync.getRepo from BASE and verify it with @atproto/repo against the signing key of
//                          DID's document at the PLC directory; print "commit rev records"
//   login BASE ID PW       log in with @atproto/api's AtpAgent (password or app password); print the session's DID
import { decodeFirst } from 'cborg';
import { verifyRepoCar } from '@atproto/repo';
import fs from 'node:fs';
import path from 'node:path';

const [cmd, ...args] = process.argv.slice(2);
const tags = [];
tags[42] = (b) => 'cid:' + Buffer.from(b).toString('hex');

if (cmd === 'sub') {
  const [url, cursor, out] = args;
  const ws = new WebSocket(url + '/xrpc/com.atproto.sync.subscribeRepos' + (cursor ? '?cursor=' + cursor : ''));
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => fs.appendFileSync(out, 'open\n');
  ws.onmessage = (m) => {
    const bytes = new Uint8Array(m.data);
    const [hdr, rest] = decodeFirst(bytes, { tags });
    const [body] = decodeFirst(rest, { tags });
    if (hdr.op === -1) {
      fs.appendFileSync(out, `error ${body.error}\n`);
      return;
    }
    fs.appendFileSync(out, `${body.seq} ${hdr.t} ${body.repo ?? body.did} ${body.rev ?? '-'} ${body.since ?? '-'}\n`);
  };
  ws.onclose = () => {
    fs.appendFileSync(out, 'closed\n');
    process.exit(0);
  };
  ws.onerror = () => {};
} else if (cmd === 'verify') {
  const [base, plc, did] = args;
  const doc = await (await fetch(`${plc}/${did}/data`)).json();
  const key = doc.verificationMethods.atproto;
  const res = await fetch(`${base}/xrpc/com.atproto.sync.getRepo?did=${did}`);
  if (!res.ok) throw new Error(`getRepo ${res.status}: ${await res.text()}`);
  const car = new Uint8Array(await res.arrayBuffer());
  const repo = await verifyRepoCar(car, did, key);
  console.log(`${repo.commit.cid ?? ''} ${repo.commit.rev} ${repo.creates.length}`);
} else if (cmd === 'login') {
  const [base, id, pw] = args;
  const apiDir = path.resolve(import.meta.dirname, '../../internal/officialclient/node/node_modules/@atproto/api/dist/index.js');
  const { AtpAgent } = await import(apiDir);
  const agent = new AtpAgent({ service: base });
  const res = await agent.login({ identifier: id, password: pw });
  console.log(res.data.did);
} else {
  console.error('usage: takeover-helper.mjs sub|verify|login ...');
  process.exit(2);
}
