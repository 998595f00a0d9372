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
  if (typeof value === 'string') {
    return value.replace(PATTERN, (whole, escaped: string | undefined, name: string) => {
      if (escaped) return whole.slice(1);
      const v = NAME.test(name) ? env[name] : undefined;
      if (v === undefined) {
        problems.push({ path, variable: name });
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, problems, [...path, i]));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, problems, [...path, k])]),
    );
  }
  return value;
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
