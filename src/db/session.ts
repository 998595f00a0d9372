/**
 * Session settings pinned on EVERY connection shardctl opens. Text forms of timestamps, dates,
 * intervals, floats and bytea depend on them; a source in `SQL, DMY` copied into a target in
 * `ISO, MDY` silently swaps day and month (NOTES-COPY.md), and checksums of row text only agree
 * when both sides print rows alike.
 */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  bytea_output: 'hex',
  client_encoding: 'UTF8',
  lc_monetary: 'C',
  search_path: 'public',
  // The server probes an idle shardctl connection after 30 s and drops it after 6 unanswered
  // probes 10 s apart: a dead shardctl's run lock (a session advisory lock) is freed in about a
  // minute and a half, not after the kernel's two hours. Ignored over Unix sockets.
  tcp_keepalives_idle: '30',
  tcp_keepalives_interval: '10',
  tcp_keepalives_count: '6',
  // shardctl's own sessions pass the fence triggers it installs on shards (fence/unit-guard.ts)
  'shardctl.bypass': 'on',
};

/** As libpq startup options: `-c TimeZone=UTC -c DateStyle=ISO,\ YMD …` (spaces escaped). */
export function startupOptions(): string {
  return Object.entries(PINNED_SETTINGS)
    .map(([k, v]) => `-c ${k}=${v.replace(/([\\ ])/g, '\\$1')}`)
    .join(' ');
}
