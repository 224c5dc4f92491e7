// Which files count as dataset images: raster formats this build of sharp
// decodes from a file, found by extension (case-insensitive) and then
// confirmed by content. SVG (a vector drawing, rendered at an arbitrary
// size) and libvips' own .v format are not treated as photos.
import path from 'node:path';
import { sharpBuild } from './sharp-build.js';

const available = sharpBuild().inputFormats as Record<string, SharpBuildFormat | undefined>;
type SharpBuildFormat = ReturnType<typeof sharpBuild>['inputFormats'][string];

/** sharp format ids accepted as dataset images (heif covers AVIF). */
export const IMAGE_FORMATS: readonly string[] = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif'].filter(
  (id) => available[id]?.file,
);

/** Lower-case extensions with the dot (".jpg", ".avif"...), from what sharp reports it can read. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(
  IMAGE_FORMATS.flatMap((id) => (available[id]?.fileSuffix ?? []).map((suffix) => suffix.toLowerCase())),
);

export function hasImageExtension(fileName: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(fileName).toLowerCase());
}

export function isAcceptedFormat(format: string | undefined): boolean {
  return format !== undefined && IMAGE_FORMATS.includes(format);
}
