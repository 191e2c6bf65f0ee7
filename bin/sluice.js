#!/usr/bin/env node
// The `sluice` command: runs the built service (dist/). `npm run build` makes it.
import '../dist/main.js';
