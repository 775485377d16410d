// A small JSON reader: enough for a policy's `init` config (objects, arrays,
// strings, null; numbers and booleans are refused). No JSON library ships
// with wasi-libc, and this keeps the guest free of vendored code.
#ifndef LIMEN_JSON_H
#define LIMEN_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_kind_t;

typedef struct json {
  json_kind_t kind;
  char *key;            // member name inside an object, else NULL
  char *text;           // JSON_STRING: the decoded, NUL-terminated value
  struct json *child;   // JSON_ARRAY / JSON_OBJECT: first element or member
  struct json *next;    // next sibling
} json_t;

// Parse `len` bytes; NULL on success (*out set), else why it failed.
const char *json_parse(const char *text, size_t len, json_t **out);
// First element or member of an array or object (NULL if none or not one).
const json_t *json_first(const json_t *value);
// Number of elements or members.
size_t json_length(const json_t *value);
// The string member `key` of an object, or NULL.
const char *json_string(const json_t *object, const char *key);
void json_free(json_t *value);

#endif
