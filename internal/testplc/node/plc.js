// Starts the reference PLC directory (@did-plc/server) with an in-memory
// database, bound to 127.0.0.1. Used by github.com/pdsgo/pds/internal/testplc.
//
// Env: PLC_PORT (default 0 = pick a free port), PLC_HOST (default 127.0.0.1).
// Prints "PLC_LISTENING <port>" on stdout once the server accepts connections.
'use strict';
const { PlcServer, Database } = require('@did-plc/server');

const port = parseInt(process.env.PLC_PORT || '0', 10);
const host = process.env.PLC_HOST || '127.0.0.1';

(async () => {
  const server = PlcServer.create({ db: Database.mock(), port });
  // PlcServer.start() listens on every interface; listen on loopback only.
  const s = server.app.listen(port, host);
  await new Promise((resolve, reject) => {
    s.once('listening', resolve);
    s.once('error', reject);
  });
  console.log('PLC_LISTENING ' + s.address().port);
  const stop = () => process.exit(0); // in-memory DB: nothing to flush
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
})().catch((err) => {
  console.error('PLC_START_FAILED', err);
  process.exit(1);
});
