import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBytes } from '../../commands/ui/format.js';
import { parseSize } from '../../src/index.js';

describe('sizes', () => {
  it('a kB is 1024 bytes in reports, as in the config', () => {
    assert.equal(formatBytes(1000), '1000 B');
    assert.equal(formatBytes(1024), '1.0 kB');
    assert.equal(formatBytes(64 * 1024 ** 2), '64.0 MB');
    // what the config reads as 64MB, a report shows as 64.0 MB
    assert.equal(formatBytes(parseSize('1kB')!), '1.0 kB');
    assert.equal(formatBytes(parseSize('64MB')!), '64.0 MB');
    assert.equal(formatBytes(parseSize('2GB')!), '2.0 GB');
  });
});
