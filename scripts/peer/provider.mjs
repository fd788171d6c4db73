// node-oidc-provider 9.13.3 as scripts/bench_peer.py measures it (issue 12).
//
// One client (client_secret_basic, client_credentials only), the RFC 7009 revocation and
// RFC 7662 introspection endpoints, opaque client_credentials access tokens. The tokens
// the benchmark presents are minted here, in-process, before the server listens, and
// written one per line to --tokens-file: minting over HTTP would be untimed setup anyway.
//
// Storage, --store memory (the default): the package's own in-memory adapter
// (lib/adapters/memory_adapter.js) over its own LRU (lib/helpers/lru.js), with the LRU's size
// raised from the default 1,000 entries so that no minted token is evicted before it is
// presented. --store sqlite: sqlite_adapter.mjs on better-sqlite3, a file at --db, WAL and
// synchronous=FULL (durable as ours); the tokens are minted into it in one transaction.
//
//   node provider.mjs --modules DIR --port N --tokens N --tokens-file PATH
//                     [--store memory|sqlite --db PATH]
//   (client id and secret from PEER_CLIENT_ID and PEER_CLIENT_SECRET)

import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const { values: args } = parseArgs({
  options: {
    modules: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    tokens: { type: 'string', default: '0' },
    'tokens-file': { type: 'string' },
    store: { type: 'string', default: 'memory' },
    db: { type: 'string' },
  },
});
if (!['memory', 'sqlite'].includes(args.store)) {
  throw new Error(`--store: memory or sqlite, not ${args.store}`);
}
if (args.store === 'sqlite' && !args.db) {
  throw new Error('--store sqlite needs --db PATH');
}

// The package is installed beside the lock file (bench_peer.py's cache directory), not
// next to this script: import it from there.
const packageDir = join(args.modules, 'node_modules', 'oidc-provider', 'lib');
const load = async (path) => (await import(pathToFileURL(join(packageDir, path)).href)).default;
const Provider = await load('index.js');
const MemoryAdapter = await load('adapters/memory_adapter.js');
const LRU = await load('helpers/lru.js');

const count = Number(args.tokens);
const clientId = process.env.PEER_CLIENT_ID;
const clientSecret = process.env.PEER_CLIENT_SECRET;
const issuer = `http://${args.host}:${args.port}`;

async function openStore() {
  if (args.store === 'sqlite') {
    const { openSqliteStore } = await import('./sqlite_adapter.mjs');
    const Database = createRequire(join(args.modules, 'package.json'))('better-sqlite3');
    return openSqliteStore(Database, args.db);
  }
  // Each token is one LRU entry; the LRU starts a new generation at maxSize entries and
  // drops the one before: twice the tokens keeps every token in the current generation.
  const storage = new LRU({ maxSize: Math.max(1000, 2 * count + 1000) });
  return {
    adapter: (model) => new MemoryAdapter(model, storage),
    batch: (fn) => fn(),
  };
}
const store = await openStore();

const provider = new Provider(issuer, {
  adapter: store.adapter,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    introspection: {
      enabled: true,
      // The default policy is the same check plus a warning to change it.
      allowedPolicy: (ctx, client, token) => token.clientId === client.clientId,
    },
    revocation: {
      enabled: true,
      allowedPolicy: (ctx, client, token) => token.clientId === client.clientId,
    },
  },
  // The run can outlast the default ten minutes of a client_credentials token.
  ttl: { ClientCredentials: 86400 },
});

const client = await provider.Client.find(clientId);
const tokens = [];
await store.batch(async () => {
  for (let i = 0; i < count; i += 1) {
    tokens.push(await new provider.ClientCredentials({ client }).save());
  }
});
if (args['tokens-file']) {
  writeFileSync(args['tokens-file'], tokens.length ? `${tokens.join('\n')}\n` : '');
}

const server = createServer(provider.callback());
server.listen(Number(args.port), args.host, () => {
  process.stdout.write(`listening on ${issuer} with ${count} tokens, store ${args.store}\n`);
});
process.on('SIGTERM', () => server.close(() => {
  store.close?.();
  process.exit(0);
}));
