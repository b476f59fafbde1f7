import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { INSPECT_PACKAGES, SERVER_PACKAGES } from '../src/cli/optionalPackages.js';

interface Manifest {
  name: string;
  license: string;
  exports: Record<string, string | Record<string, string>>;
  bin: Record<string, string>;
  files: string[];
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
}

const manifest = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as Manifest;

describe('package.json', () => {
  it('gives every export entry its types first and a default condition, so require() reaches it too', () => {
    for (const [subpath, entry] of Object.entries(manifest.exports)) {
      if (subpath === './package.json') continue;
      expect(typeof entry, subpath).toBe('object');
      const conditions = Object.keys(entry as Record<string, string>);
      expect(conditions, subpath).toContain('default');
      expect(conditions.indexOf('types'), subpath).toBeLessThan(conditions.indexOf('default'));
      expect(conditions.at(-1), `${subpath}: default must come last`).toBe('default');
      expect((entry as Record<string, string>).default, subpath).toMatch(/^\.\/dist\/.+\.js$/);
    }
  });

  it('installs the command as oao and under the package name, which npx picks outside a project', () => {
    expect(manifest.bin.oao).toBe('./dist/cli/oao.js');
    expect(manifest.bin[manifest.name]).toBe(manifest.bin.oao);
  });

  it('builds dist/ on npm ci and npm install in a clone', () => {
    expect(manifest.scripts.prepare).toBe('npm run build');
  });

  it('ships an MIT LICENSE', async () => {
    expect(manifest.license).toBe('MIT');
    expect(manifest.files).toContain('LICENSE');
    const license = await readFile(new URL('../LICENSE', import.meta.url), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} OpenAgentOrchestrator contributors\n/);
  });

  it('makes the server and inspector packages optional peers, named where the CLI asks for them', () => {
    for (const name of [...SERVER_PACKAGES, ...INSPECT_PACKAGES]) {
      expect(manifest.dependencies[name], name).toBeUndefined();
      expect(manifest.peerDependencies[name], name).toBeDefined();
      expect(manifest.peerDependenciesMeta[name]?.optional, name).toBe(true);
      expect(manifest.devDependencies[name], name).toBeDefined();
    }
  });
});
