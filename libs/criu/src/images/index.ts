/** Reading CRIU images: framing, pages, what a dump holds, memory search. Pure: callers pass the bytes. */
export { readImage, readOne, IMAGE_KINDS, MAX_ENTRY_BYTES, type ImageKind } from './image-file.js';
export * from './pages.js';
export * from './inspect.js';
export * from './search.js';
export { CRIU_PROTOS_VERSION } from './criu-protos.js';
export * from './export-layout.js';
