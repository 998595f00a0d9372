/**
 * `${VAR}` in any string value comes from the environment; `$${` is a literal `${`. An unset variable is
 * a config error at the key path where it is used (reported with the others, never silently empty).
 */
export interface InterpolationProblem {
  path: (string | number)[];
  variable: string;
}

const PATTERN = /\$(\$)?\{([^}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: InterpolationProblem[],
  path: (string | number)[] = [],
): unknown {
  // one path array, pushed and popped on the way down: a mapping of 50,000 entries would otherwise
  // copy a path for every value; a problem keeps its own copy
  const at = [...path];
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return v.includes('$') ? resolve(v, env, problems, at) : v;
    if (Array.isArray(v)) return v.map((item, i) => descend(i, item));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, descend(k, item)]));
    return v;
  };
  const descend = (key: string | number, v: unknown): unknown => {
    at.push(key);
    const out = walk(v);
    at.pop();
    return out;
  };
  return walk(value);
}

function resolve(value: string, env: NodeJS.ProcessEnv, problems: InterpolationProblem[], at: (string | number)[]): string {
  return value.replace(PATTERN, (whole, escaped: string | undefined, name: string) => {
    if (escaped) return whole.slice(1);
    const v = NAME.test(name) ? env[name] : undefined;
    if (v === undefined) {
      problems.push({ path: [...at], variable: name });
      return '';
    }
    return v;
  });
}

/**
 * One value given outside the config file (a flag such as `add-shard --primary`), resolved exactly
 * as the loader resolves the file: returns the resolved text and the variables that are not set.
 */
export function interpolateValue(value: string, env: NodeJS.ProcessEnv): { value: string; missing: string[] } {
  const problems: InterpolationProblem[] = [];
  const resolved = interpolate(value, env, problems) as string;
  return { value: resolved, missing: problems.map((p) => p.variable) };
}
