// bicepFiles lists the Bicep files below the given paths (files or folders; the infra folder
// when none), sorted, skipping node_modules and dot folders. A path that cannot be read, or no
// file found, ends the process with exit code 2 and the checker's name in the message.
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function bicepFiles(tool, paths, defaultDir, extensions) {
  const out = [];
  const collect = (path) => {
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path).sort()) {
        if (name === 'node_modules' || name.startsWith('.')) continue;
        collect(join(path, name));
      }
    } else if (extensions.some((ext) => path.endsWith(ext))) {
      out.push(path);
    }
  };
  for (const a of paths.length ? paths : [defaultDir]) {
    try {
      collect(resolve(a));
    } catch (err) {
      console.error(`${tool}: ${a}: ${err.message}`);
      process.exit(2);
    }
  }
  if (out.length === 0) {
    console.error(`${tool}: no ${extensions.join(' or ')} files found`);
    process.exit(2);
  }
  return out;
}
