// A durable store for node-oidc-provider (`provider.mjs --store sqlite`), so that
// scripts/bench_peer.py can compare it with ours like for like: one SQLite file in WAL mode
// with synchronous=FULL, as our embedded store, every write fsynced before it returns.
//
// It implements the package's adapter contract (upsert, find, findByUid, findByUserCode,
// consume, destroy, revokeByGrantId) with the semantics of its lib/adapters/memory_adapter.js:
// an expired entry is not found; consume marks, destroy deletes; revokeByGrantId deletes
// every grantable entry of the grant, whatever its model.
//
// better-sqlite3 is synchronous: each write blocks Node's one event loop for its fsync, and
// no other request is served meanwhile. That is what a durable store costs in Node with this
// driver (ours runs its COMMIT on a thread of its own, one fsync for a group of writes).
//
// better-sqlite3 is installed beside oidc-provider in the bench's cache directory, not next
// to this file: provider.mjs loads it there and passes the Database class in.

const TABLE = `CREATE TABLE IF NOT EXISTS oidc (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  payload TEXT NOT NULL,
  grant_id TEXT,
  user_code TEXT,
  uid TEXT,
  expires_at INTEGER,
  consumed INTEGER,
  PRIMARY KEY (model, id)
) WITHOUT ROWID`;
const INDEXES = [
  'CREATE INDEX IF NOT EXISTS oidc_grant_id ON oidc (grant_id) WHERE grant_id IS NOT NULL',
  'CREATE INDEX IF NOT EXISTS oidc_uid ON oidc (model, uid) WHERE uid IS NOT NULL',
  'CREATE INDEX IF NOT EXISTS oidc_user_code ON oidc (model, user_code) WHERE user_code IS NOT NULL',
];

// The models whose entries revokeByGrantId takes down (the memory adapter's list).
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const LIVE = '(expires_at IS NULL OR expires_at > ?)';

const epochTime = () => Math.floor(Date.now() / 1000);

function stored(row) {
  if (!row) return undefined;
  const payload = JSON.parse(row.payload);
  return row.consumed ? { ...payload, consumed: row.consumed } : payload;
}

/** Opens (creates) the store at `path`; returns the provider's `adapter` factory, `batch`
 * (runs an async function in one transaction: for minting before the server listens, when
 * nothing else touches the store) and `close`. */
export function openSqliteStore(Database, path) {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(TABLE);
  for (const index of INDEXES) db.exec(index);

  const sql = {
    upsert: db.prepare(`INSERT OR REPLACE INTO oidc
      (model, id, payload, grant_id, user_code, uid, expires_at, consumed)
      VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`),
    find: db.prepare(`SELECT payload, consumed FROM oidc WHERE model = ? AND id = ? AND ${LIVE}`),
    findByUid: db.prepare(
      `SELECT payload, consumed FROM oidc WHERE model = ? AND uid = ? AND ${LIVE}`,
    ),
    findByUserCode: db.prepare(
      `SELECT payload, consumed FROM oidc WHERE model = ? AND user_code = ? AND ${LIVE}`,
    ),
    consume: db.prepare('UPDATE oidc SET consumed = ? WHERE model = ? AND id = ?'),
    destroy: db.prepare('DELETE FROM oidc WHERE model = ? AND id = ?'),
    revokeByGrantId: db.prepare('DELETE FROM oidc WHERE grant_id = ?'),
  };

  class SqliteAdapter {
    constructor(model) {
      this.model = model;
    }

    async upsert(id, payload, expiresIn) {
      const expiresAt = typeof expiresIn === 'number' ? epochTime() + expiresIn : null;
      const grantId = GRANTABLE.has(this.model) ? payload.grantId ?? null : null;
      sql.upsert.run(
        this.model,
        id,
        JSON.stringify(payload),
        grantId,
        payload.userCode ?? null,
        this.model === 'Session' ? payload.uid ?? null : null,
        expiresAt,
      );
    }

    async find(id) {
      return stored(sql.find.get(this.model, id, epochTime()));
    }

    async findByUid(uid) {
      return stored(sql.findByUid.get(this.model, uid, epochTime()));
    }

    async findByUserCode(userCode) {
      return stored(sql.findByUserCode.get(this.model, userCode, epochTime()));
    }

    async consume(id) {
      sql.consume.run(epochTime(), this.model, id);
    }

    async destroy(id) {
      sql.destroy.run(this.model, id);
    }

    async revokeByGrantId(grantId) {
      sql.revokeByGrantId.run(grantId);
    }
  }

  return {
    adapter: SqliteAdapter,
    async batch(fn) {
      db.exec('BEGIN');
      try {
        await fn();
        db.exec('COMMIT');
      } catch (error) {
        db.exec('ROLLBACK');
        throw error;
      }
    },
    close: () => db.close(),
  };
}
