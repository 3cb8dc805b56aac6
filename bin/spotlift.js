#!/usr/bin/env node
// The installed `spotlift` command (package.json "bin"): runs the built CLI (`npm run build` makes dist/).
import { main } from '../dist/apps/cli/src/main.js';

await main(process.argv.slice(2));
