/*
 * Where a JSON path is in a file's text, for `agrictl config validate`'s
 * FILE:LINE:COLUMN: a small walker over the raw bytes (cJSON keeps no
 * positions). Paths are the parsers' own: "sensors[0].bus", "broker.url",
 * "" for the document. Pure.
 */
#ifndef AGRICTL_JSONPOS_H
#define AGRICTL_JSONPOS_H

#include <stddef.h>

/* Line and column (1-based; the column counts characters, UTF-8
 * aware) of byte offset off of text. */
void jsonpos_of_offset(const char *text, size_t len, size_t off, int *line, int *col);

/*
 * The byte offset in text of path's value, or of its deepest ancestor
 * present in the text (a missing key: the object that lacks it). Returns
 * the offset; 0 when the text is not JSON where it walks.
 */
size_t jsonpos_find(const char *text, size_t len, const char *path);

#endif
