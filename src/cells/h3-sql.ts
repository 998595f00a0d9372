import { FACE_BASE_CELLS, FACES, PENTAGONS } from './h3-grid.js';

/**
 * H3's latLngToCell in PL/pgSQL, so a trigger can tell exactly which cell a lat/lng row is in
 * without an extension (the fence of a moved cell must refuse that cell's points and nothing
 * else; a bounding box would also refuse its neighbours' points for good).
 *
 * The steps are H3's own: the point's nearest icosahedron face, its gnomonic projection onto that
 * face's hexagon lattice at the resolution, the lattice walk up to resolution 0 collecting one
 * digit per resolution, then the base cell at the face's resolution-0 position and the turns into
 * that base cell's orientation (pentagons skip the k-axis digit). Every floating-point step is the
 * one H3 computes, in the same order, so the results agree bit for bit on every point tested
 * (test/h3-sql.test.ts, against h3-js).
 *
 *   shardctl.h3_cell(lat, lng, res) → the cell as the bigint H3 index (NULL for NaN/infinite input)
 */
export function h3Sql(): string[] {
  const faces = FACES.map((f, i) => `(${i}, ${f.map(float).join(', ')})`).join(',\n');
  const cells = FACE_BASE_CELLS.flatMap((row, face) =>
    Array.from({ length: 27 }, (_, ijk) => `(${face}, ${ijk}, ${row[2 * ijk]}, ${row[2 * ijk + 1]})`),
  ).join(',');
  const pentagons = PENTAGONS.map((p) => `(${p.join(', ')})`).join(', ');
  return [
    `CREATE TABLE IF NOT EXISTS shardctl.h3_faces (face int PRIMARY KEY, x float8 NOT NULL, y float8 NOT NULL, z float8 NOT NULL, axis_az float8 NOT NULL)`,
    `INSERT INTO shardctl.h3_faces VALUES ${faces} ON CONFLICT (face) DO NOTHING`,
    `CREATE TABLE IF NOT EXISTS shardctl.h3_base_cells (face int, ijk int, base_cell int NOT NULL, turns int NOT NULL, PRIMARY KEY (face, ijk))`,
    `INSERT INTO shardctl.h3_base_cells VALUES ${cells} ON CONFLICT (face, ijk) DO NOTHING`,
    `CREATE TABLE IF NOT EXISTS shardctl.h3_pentagons (base_cell int PRIMARY KEY, cw_face1 int NOT NULL, cw_face2 int NOT NULL)`,
    `INSERT INTO shardctl.h3_pentagons VALUES ${pentagons} ON CONFLICT (base_cell) DO NOTHING`,
    latLngToCellSql(),
  ];
}

/** A double as SQL text that reads back to the same double (JS prints the shortest round trip). */
const float = (v: number) => `${v}::float8`;

// Digit turns: index = digit (0 center, 1 k, 2 j, 3 jk, 4 i, 5 ik, 6 ij).
const CCW = '{0,5,3,1,6,4,2}';
const CW = '{0,3,6,2,5,1,4}';

const latLngToCellSql = () => `
CREATE OR REPLACE FUNCTION shardctl.h3_cell(lat float8, lng float8, res int) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
  ccw constant int[] := '${CCW}';
  cw constant int[] := '${CW}';
  la float8; lo float8; cl float8; px float8; py float8; pz float8;
  f record; r float8; theta float8; az float8; s float8;
  nx float8; ny float8; nz float8; ex float8; ey float8; ez float8; qx float8; qy float8; qz float8; dp float8;
  hx float8; hy float8; a1 float8; a2 float8; x1 float8; x2 float8; r1 float8; r2 float8;
  m int; m1 int; m2 int; i int; j int; k int; li int; lj int; lk int; ci int; cj int; ck int; t int;
  digits int[] := array_fill(0, ARRAY[res]); bc record; pent record; lead int; seen bool; h bigint;
  two_pi constant float8 := 6.28318530717958647692528676655900576839433;
  ap7_rot constant float8 := 0.333473172251832115336090755351601070065900389; -- Class II → III turn
  inv_res0_u constant float8 := 2.61803398874989588842; -- 1 / the resolution-0 unit length (gnomonic)
  sqrt7 constant float8 := 2.6457513110645905905016157536392604257102;
  rsin60 constant float8 := 1.1547005383792515290182975610039149112953;
  one7th constant float8 := 0.14285714285714285714285714285714285;
  one constant float8 := 1; two constant float8 := 2; half constant float8 := 0.5; third constant float8 := one / 3; two3rd constant float8 := two / 3;
BEGIN
  IF lat = 'NaN' OR lng = 'NaN' OR lat IN ('Infinity', '-Infinity') OR lng IN ('Infinity', '-Infinity') THEN RETURN NULL; END IF;
  -- degrees to radians as h3-js does it (deg * pi / 180), then the unit vector
  la := lat * pi() / 180; lo := lng * pi() / 180;
  cl := cos(la); px := cos(lo) * cl; py := sin(lo) * cl; pz := sin(la);
  -- nearest face centre (first one on a tie, as H3's loop)
  SELECT x.face, x.x, x.y, x.z, x.axis_az,
         (x.x - px) * (x.x - px) + (x.y - py) * (x.y - py) + (x.z - pz) * (x.z - pz) AS sqd
    INTO f FROM shardctl.h3_faces x ORDER BY sqd, x.face LIMIT 1;
  r := acos(one - f.sqd * half);
  IF r < 1e-16::float8 THEN
    hx := 0; hy := 0;
  ELSE
    -- azimuth from the face centre to the point, in the tangent plane at the centre
    nx := -f.z * f.x; ny := -f.z * f.y; nz := one + -f.z * f.z;
    s := sqrt(nx * nx + ny * ny + nz * nz); s := CASE WHEN s > 0 THEN one / s ELSE 0 END;
    nx := nx * s; ny := ny * s; nz := nz * s;
    ex := ny * f.z - nz * f.y; ey := nz * f.x - nx * f.z; ez := nx * f.y - ny * f.x;
    dp := px * f.x + py * f.y + pz * f.z;
    qx := px + -dp * f.x; qy := py + -dp * f.y; qz := pz + -dp * f.z;
    s := sqrt(qx * qx + qy * qy + qz * qz); s := CASE WHEN s > 0 THEN one / s ELSE 0 END;
    qx := qx * s; qy := qy * s; qz := qz * s;
    az := atan2(qx * ex + qy * ey + qz * ez, qx * nx + qy * ny + qz * nz);
    IF az < 0 THEN az := az + two_pi; END IF;
    IF az >= two_pi THEN az := az - two_pi; END IF;
    theta := f.axis_az - az;
    IF theta < 0 THEN theta := theta + two_pi; END IF;
    IF theta >= two_pi THEN theta := theta - two_pi; END IF;
    IF res % 2 = 1 THEN -- Class III resolutions are turned by the aperture-7 angle
      theta := theta - ap7_rot;
      IF theta < 0 THEN theta := theta + two_pi; END IF;
      IF theta >= two_pi THEN theta := theta - two_pi; END IF;
    END IF;
    r := tan(r) * inv_res0_u;
    FOR n IN 1..res LOOP r := r * sqrt7; END LOOP;
    hx := r * cos(theta); hy := r * sin(theta);
  END IF;

  -- the lattice hexagon holding (hx, hy)
  a1 := abs(hx); a2 := abs(hy);
  x2 := a2 * rsin60; x1 := a1 + x2 / two;
  m1 := trunc(x1); m2 := trunc(x2); r1 := x1 - m1; r2 := x2 - m2;
  IF r1 < half THEN
    IF r1 < third THEN
      i := m1; j := CASE WHEN r2 < (one + r1) / two THEN m2 ELSE m2 + 1 END;
    ELSE
      j := CASE WHEN r2 < one - r1 THEN m2 ELSE m2 + 1 END;
      i := CASE WHEN one - r1 <= r2 AND r2 < two * r1 THEN m1 + 1 ELSE m1 END;
    END IF;
  ELSE
    IF r1 < two3rd THEN
      j := CASE WHEN r2 < one - r1 THEN m2 ELSE m2 + 1 END;
      i := CASE WHEN 2.0 * r1 - 1.0 < r2 AND r2 < one - r1 THEN m1 ELSE m1 + 1 END;
    ELSE
      i := m1 + 1; j := CASE WHEN r2 < r1 / two THEN m2 ELSE m2 + 1 END;
    END IF;
  END IF;
  IF hx < 0 THEN -- fold back across the axes
    IF j % 2 = 0 THEN i := i - 2 * (i - j / 2); ELSE i := i - (2 * (i - (j + 1) / 2) + 1); END IF;
  END IF;
  IF hy < 0 THEN i := i - (2 * j + 1) / 2; j := -j; END IF;
  k := 0;
  ${normalize('i', 'j', 'k')}

  -- up the hierarchy: one digit per resolution
  FOR rr IN REVERSE res - 1..0 LOOP
    li := i; lj := j; lk := k;
    t := i - k; k := j - k; -- (t, k) = (i, j) in the ij system
    IF (rr + 1) % 2 = 1 THEN
      i := round((3 * t - k) * one7th); j := round((t + 2 * k) * one7th);
      k := 0; ${normalize('i', 'j', 'k')}
      ci := 3 * i + j; cj := 3 * j + k; ck := i + 3 * k; ${normalize('ci', 'cj', 'ck')}
    ELSE
      i := round((2 * t + k) * one7th); j := round((3 * k - t) * one7th);
      k := 0; ${normalize('i', 'j', 'k')}
      ci := 3 * i + k; cj := i + 3 * j; ck := j + 3 * k; ${normalize('ci', 'cj', 'ck')}
    END IF;
    ci := li - ci; cj := lj - cj; ck := lk - ck; ${normalize('ci', 'cj', 'ck')}
    IF ci > 1 OR cj > 1 OR ck > 1 THEN RETURN NULL; END IF;
    digits[rr + 1] := 4 * ci + 2 * cj + ck;
  END LOOP;
  IF i > 2 OR j > 2 OR k > 2 THEN RETURN NULL; END IF;

  -- the base cell at this face's resolution-0 position, turned into its own orientation
  SELECT * INTO bc FROM shardctl.h3_base_cells b WHERE b.face = f.face AND b.ijk = 9 * i + 3 * j + k;
  SELECT * INTO pent FROM shardctl.h3_pentagons p WHERE p.base_cell = bc.base_cell;
  IF FOUND THEN
    lead := 0;
    FOR n IN 1..res LOOP IF digits[n] <> 0 THEN lead := digits[n]; EXIT; END IF; END LOOP;
    IF lead = 1 THEN -- a pentagon has no k-axis sub-sequence: turn out of it
      FOR n IN 1..res LOOP
        digits[n] := CASE WHEN f.face IN (pent.cw_face1, pent.cw_face2) THEN cw[digits[n] + 1] ELSE ccw[digits[n] + 1] END;
      END LOOP;
    END IF;
    FOR turn IN 1..bc.turns LOOP
      seen := false;
      FOR n IN 1..res LOOP
        digits[n] := ccw[digits[n] + 1];
        IF NOT seen AND digits[n] <> 0 THEN
          seen := true;
          lead := 0;
          FOR m IN 1..res LOOP IF digits[m] <> 0 THEN lead := digits[m]; EXIT; END IF; END LOOP;
          IF lead = 1 THEN FOR m IN 1..res LOOP digits[m] := ccw[digits[m] + 1]; END LOOP; END IF;
        END IF;
      END LOOP;
    END LOOP;
  ELSE
    FOR turn IN 1..bc.turns LOOP
      FOR n IN 1..res LOOP digits[n] := ccw[digits[n] + 1]; END LOOP;
    END LOOP;
  END IF;

  -- mode 1 (cell), the resolution, the base cell, the digits, unused digits all ones
  h := (1::bigint << 59) | (res::bigint << 52) | (bc.base_cell::bigint << 45);
  FOR n IN 1..15 LOOP
    h := h | ((CASE WHEN n <= res THEN digits[n] ELSE 7 END)::bigint << (3 * (15 - n)));
  END LOOP;
  RETURN h;
END $fn$`;

/** H3's normalisation of ijk coordinates in place (no negative component, at least one zero), inlined: a call per step would dominate the function's time. */
function normalize(i: string, j: string, k: string): string {
  return [
    `IF ${i} < 0 THEN ${j} := ${j} - ${i}; ${k} := ${k} - ${i}; ${i} := 0; END IF;`,
    `IF ${j} < 0 THEN ${i} := ${i} - ${j}; ${k} := ${k} - ${j}; ${j} := 0; END IF;`,
    `IF ${k} < 0 THEN ${i} := ${i} - ${k}; ${j} := ${j} - ${k}; ${k} := 0; END IF;`,
    `m := least(${i}, ${j}, ${k}); IF m > 0 THEN ${i} := ${i} - m; ${j} := ${j} - m; ${k} := ${k} - m; END IF;`,
  ].join(' ');
}
