/**
 * Catalog migration 2: the catalog as the live topology routers follow. The strategy row, replicas
 * (redacted like the primaries), a version bumped once per changing transaction with a NOTIFY on
 * channel `shardctl_topology` (payload: the new version), and routing functions any language can
 * call. The functions compute exactly what `src/routing/` computes (test/topology.test.ts holds
 * them to the library's golden vectors).
 */
export const TOPOLOGY_CHANNEL = 'shardctl_topology';

export const TOPOLOGY_MIGRATION = `
ALTER TABLE shardctl.shards ADD COLUMN replica_urls text[] NOT NULL DEFAULT '{}';

CREATE TABLE shardctl.strategy (
  only_row         boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  kind             text NOT NULL CHECK (kind IN ('jump', 'h3')),
  tenant_key       text,
  index_resolution integer CHECK (index_resolution BETWEEN 0 AND 15),
  shard_resolution integer CHECK (shard_resolution BETWEEN 0 AND 15),
  default_shard    text
);

CREATE TABLE shardctl.topology_version (
  only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version    bigint NOT NULL,
  changed_by xid8,
  changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO shardctl.topology_version (version) VALUES (0);

-- One bump per transaction however many rows it changes, so a router never sees a version whose
-- topology is still being written (readers see the whole transaction or none of it).
CREATE FUNCTION shardctl.bump_topology_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
  UPDATE shardctl.topology_version SET version = version + 1, changed_by = pg_current_xact_id(), changed_at = now()
   WHERE changed_by IS DISTINCT FROM pg_current_xact_id()
  RETURNING version INTO v;
  IF v IS NOT NULL THEN PERFORM pg_notify('${TOPOLOGY_CHANNEL}', v::text); END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER bump AFTER INSERT OR UPDATE OR DELETE ON shardctl.shards FOR EACH ROW EXECUTE FUNCTION shardctl.bump_topology_version();
CREATE TRIGGER bump AFTER INSERT OR UPDATE OR DELETE ON shardctl.pins FOR EACH ROW EXECUTE FUNCTION shardctl.bump_topology_version();
CREATE TRIGGER bump AFTER INSERT OR UPDATE OR DELETE ON shardctl.cell_mapping FOR EACH ROW EXECUTE FUNCTION shardctl.bump_topology_version();
CREATE TRIGGER bump AFTER INSERT OR UPDATE OR DELETE ON shardctl.strategy FOR EACH ROW EXECUTE FUNCTION shardctl.bump_topology_version();

-- Lamping & Veach's jump hash on an unsigned 64-bit key held in numeric (bigint is signed): the
-- multiply-add is exact modulo 2^64, the rest is IEEE double arithmetic in the paper's order.
CREATE FUNCTION shardctl.jump_hash(key numeric, buckets integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  k numeric := key;
  b bigint := -1;
  j bigint := 0;
BEGIN
  IF buckets < 1 THEN RAISE EXCEPTION 'shardctl.jump_hash: buckets must be at least 1, got %', buckets; END IF;
  IF k < 0 OR k >= 18446744073709551616 OR k <> trunc(k) THEN
    RAISE EXCEPTION 'shardctl.jump_hash: key % is not an unsigned 64-bit integer', key;
  END IF;
  WHILE j < buckets LOOP
    b := j;
    k := mod(k * 2862933555777941757 + 1, 18446744073709551616);
    j := trunc((b + 1)::float8 * (2147483648::float8 / (floor(k / 8589934592) + 1)::float8))::bigint;
  END LOOP;
  RETURN b;
END $$;

-- md5 of the UTF-8 bytes, first 8 bytes big-endian, as an unsigned value.
CREATE FUNCTION shardctl.tenant_key64(tenant text) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN s < 0 THEN s + 18446744073709551616 ELSE s END
    FROM (SELECT ('x' || left(md5(convert_to(tenant, 'UTF8')), 16))::bit(64)::bigint::numeric AS s) x
$$;

-- The strategy row, or an error naming the function that needed another strategy.
CREATE FUNCTION shardctl.strategy_for(caller text, want text) RETURNS shardctl.strategy
LANGUAGE plpgsql STABLE AS $$
DECLARE st shardctl.strategy;
BEGIN
  SELECT * INTO st FROM shardctl.strategy;
  IF st.kind IS DISTINCT FROM want THEN
    RAISE EXCEPTION 'shardctl.% needs the % strategy; the catalog topology uses %', caller, want, coalesce(st.kind, 'none (no topology recorded yet)');
  END IF;
  RETURN st;
END $$;

CREATE FUNCTION shardctl.shard_for_key(tenant text) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  ids text[];
  pinned text;
BEGIN
  PERFORM shardctl.strategy_for('shard_for_key', 'jump');
  SELECT p.shard INTO pinned FROM shardctl.pins p WHERE p.tenant = shard_for_key.tenant;
  IF pinned IS NOT NULL THEN RETURN pinned; END IF;
  SELECT array_agg(id ORDER BY position) INTO ids FROM shardctl.shards;
  RETURN ids[shardctl.jump_hash(shardctl.tenant_key64(tenant), cardinality(ids)) + 1];
END $$;

-- The parent of an H3 index at a coarser resolution, by bits: resolution field (bits 52-55) set,
-- the digits of finer resolutions (3 bits each, resolution r at bit 3*(15-r)) set to 7 (unused).
CREATE FUNCTION shardctl.h3_parent(cell bigint, res integer) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  own integer := ((cell >> 52) & 15)::integer;
  unused bigint := (1::bigint << (3 * (15 - res))) - 1;
BEGIN
  IF ((cell >> 59) & 15) <> 1 OR cell < 0 THEN
    RAISE EXCEPTION 'shardctl: % is not an H3 cell index', to_hex(cell);
  END IF;
  IF own < res THEN
    RAISE EXCEPTION 'shardctl: cell % is resolution %, coarser than the shard resolution %', to_hex(cell), own, res;
  END IF;
  RETURN (cell & ~(15::bigint << 52) & ~unused) | (res::bigint << 52) | unused;
END $$;

CREATE FUNCTION shardctl.shard_for_cell(cell bigint) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  st shardctl.strategy := shardctl.strategy_for('shard_for_cell', 'h3');
  mapped text;
BEGIN
  SELECT m.shard INTO mapped FROM shardctl.cell_mapping m WHERE m.cell = to_hex(shardctl.h3_parent(shard_for_cell.cell, st.shard_resolution));
  RETURN coalesce(mapped, st.default_shard);
END $$;

-- The same for an index written as hex text, as h3 libraries print it.
CREATE FUNCTION shardctl.shard_for_cell(cell text) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
  SELECT shardctl.shard_for_cell(('x' || lpad(lower(cell), 16, '0'))::bit(64)::bigint)
$$;
`;
