#!/usr/bin/env node
// The launcher: the CLI lives in the built package (npm run build).
import { main } from '../dist/commands/cli.js';

process.exitCode = await main(process.argv);
