// pgpass ships no types: the one call shardctl makes.
declare module 'pgpass' {
  function pgpass(
    connInfo: { host: string; port: string | number; database: string; user: string },
    cb: (password: string | undefined) => void,
  ): void;
  export default pgpass;
}
