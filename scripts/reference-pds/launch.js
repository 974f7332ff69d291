// Starts the reference PDS (npm @atproto/pds) for scripts/bench-compare.sh, configured by the usual PDS_*
// environment variables and listening on 127.0.0.1 only (PDS.start() would listen on every interface).
//
// Required: PDS_PORT, PDS_DATA_DIRECTORY, PDS_DID_PLC_URL. Defaults suit a loopback benchmark: hostname
// localhost (handle domain .test), no invites, rate limits off, fixed dev secrets, no AppView or crawlers.
// Prints "PDS_LISTENING <port>" on stdout once it accepts connections; SIGTERM/SIGINT stop it cleanly.
import path from 'node:path';
import { once } from 'node:events';
import { PDS, envToCfg, envToSecrets, readEnv } from '@atproto/pds';

const defaults = {
  PDS_HOSTNAME: 'localhost',
  PDS_INVITE_REQUIRED: 'false',
  PDS_RATE_LIMITS_ENABLED: 'false',
  PDS_DEV_MODE: 'true',
  PDS_JWT_SECRET: 'bench-jwt-secret',
  PDS_ADMIN_PASSWORD: 'admin-pass',
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: 'c'.repeat(63) + '1',
  PDS_DPOP_SECRET: 'd'.repeat(64),
  LOG_ENABLED: 'false',
};
for (const [k, v] of Object.entries(defaults)) {
  if (process.env[k] === undefined) process.env[k] = v;
}
for (const k of ['PDS_PORT', 'PDS_DATA_DIRECTORY', 'PDS_DID_PLC_URL']) {
  if (!process.env[k]) {
    console.error(`launch.js: ${k} is required`);
    process.exit(2);
  }
}
if (!process.env.PDS_BLOBSTORE_DISK_LOCATION && !process.env.PDS_BLOBSTORE_S3_BUCKET) {
  process.env.PDS_BLOBSTORE_DISK_LOCATION = path.join(process.env.PDS_DATA_DIRECTORY, 'blobs');
}

const host = process.env.PDS_BIND_ADDRESS || '127.0.0.1';

(async () => {
  const env = readEnv();
  const pds = await PDS.create(envToCfg(env), envToSecrets(env));
  // What PDS.start() does, bound to loopback.
  await pds.ctx.sequencer.start();
  const server = pds.app.listen(pds.ctx.cfg.service.port, host);
  server.keepAliveTimeout = 90_000;
  await once(server, 'listening');
  console.log('PDS_LISTENING ' + server.address().port);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections?.();
    server.close();
    try {
      await pds.ctx.destroy();
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
})().catch((err) => {
  console.error('PDS_START_FAILED', err);
  process.exit(1);
});
