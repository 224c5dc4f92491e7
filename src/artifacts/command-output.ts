// `command-output` (exec): the files a command declared under `outs:`,
// stored under `outs/` at their project-relative paths.
import path from 'node:path';
import { defineKind } from './kind.js';

export const commandOutputKind = defineKind('command-output', "a command's outputs");

/** Where a declared output (a project-relative path) is kept inside the artifact. */
export const storedOutputPath = (projectRelative: string): string => path.join('outs', projectRelative).split(path.sep).join('/');
