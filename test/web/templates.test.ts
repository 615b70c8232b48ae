import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { webRoot } from '../../src/web/paths.js';

async function files(dir: string, suffix: string): Promise<Array<{ name: string; text: string }>> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  const found = entries.filter((entry) => entry.isFile() && entry.name.endsWith(suffix));
  return Promise.all(
    found.map(async (entry) => {
      const path = join(entry.parentPath, entry.name);
      return { name: relative(webRoot(), path), text: await readFile(path, 'utf8') };
    }),
  );
}

/** Rules the strict Content-Security-Policy and output escaping rely on, checked in the sources. */
describe('templates and browser assets', () => {
  it('print user data only escaped: raw output is for the layout body and included partials', async () => {
    const templates = await files(join(webRoot(), 'templates'), '.eta');
    assert.ok(templates.length >= 15);
    for (const { name, text } of templates) {
      for (const match of text.matchAll(/<%~([^%]*)%>/g)) {
        const expression = (match[1] ?? '').trim();
        assert.ok(expression === 'it.body' || /^include\('\/partials\/[a-z-]+', /.test(expression), `${name}: raw output of ${expression}`);
      }
    }
  });

  it('have no inline scripts, inline styles or event handler attributes', async () => {
    for (const { name, text } of await files(join(webRoot(), 'templates'), '.eta')) {
      assert.ok(!/\sstyle\s*=/.test(text), `${name}: style attribute`);
      assert.ok(!/<style/i.test(text), `${name}: <style> element`);
      assert.ok(!/\son[a-z]+\s*=/i.test(text), `${name}: event handler attribute`);
      for (const script of text.matchAll(/<script\b[^>]*>/gi)) {
        assert.match(script[0], /^<script type="module" src="\/static\/js\/[a-z-]+\.js">$/, `${name}: ${script[0]}`);
      }
      assert.ok(!/https?:\/\//.test(text.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '')), `${name}: refers to another site`);
    }
  });

  it('scripts never evaluate strings and stylesheets load nothing from elsewhere', async () => {
    for (const { name, text } of await files(join(webRoot(), 'static', 'js'), '.js')) {
      assert.ok(!/\beval\s*\(|new Function\s*\(|set(?:Timeout|Interval)\(\s*['"`]/.test(text), `${name}: evaluates a string`);
      assert.ok(!/\.style\.[a-z]+\s*=|setAttribute\(\s*'style'/i.test(text), `${name}: sets an inline style`);
      assert.ok(!/https?:\/\//.test(text), `${name}: refers to another site`);
    }
    for (const { name, text } of await files(join(webRoot(), 'static', 'css'), '.css')) {
      assert.ok(!/url\(|@import/.test(text), `${name}: loads another resource`);
    }
  });
});
