#include "json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *at;
  const char *end;
  const char *error;
  int depth;
} reader_t;

static json_t *value(reader_t *r);

static void space(reader_t *r) {
  while (r->at < r->end && (*r->at == ' ' || *r->at == '\n' || *r->at == '\r' || *r->at == '\t')) {
    r->at++;
  }
}

static bool eat(reader_t *r, char c) {
  space(r);
  if (r->at < r->end && *r->at == c) {
    r->at++;
    return true;
  }
  return false;
}

// Out of memory inside the sandbox: trap cleanly rather than write through
// NULL (address 0 is ordinary memory in wasm).
static void *must(void *p) {
  if (p == NULL) {
    abort();
  }
  return p;
}

static json_t *node(json_kind_t kind) {
  json_t *n = must(calloc(1, sizeof(json_t)));
  n->kind = kind;
  return n;
}

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A string's decoded bytes (UTF-8 kept as is; \u escapes up to U+07FF).
static char *string(reader_t *r) {
  if (!eat(r, '"')) {
    r->error = "expected a string";
    return NULL;
  }
  char *out = must(malloc((size_t)(r->end - r->at) + 1));
  size_t o = 0;
  while (r->at < r->end && *r->at != '"') {
    char c = *r->at++;
    if (c != '\\') {
      out[o++] = c;
      continue;
    }
    if (r->at == r->end) break;
    char e = *r->at++;
    const char *simple = strchr("\"\\/bfnrt", e);
    if (simple != NULL && e != '\0') {
      out[o++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
    } else if (e == 'u' && r->end - r->at >= 4) {
      int code = 0;
      for (int i = 0; i < 4; i++) {
        int d = hex(*r->at++);
        code = d < 0 ? 0x10000 : code * 16 + d;
      }
      if (code == 0 || code >= 0x800) {
        r->error = "unsupported \\u escape";
        free(out);
        return NULL;
      }
      if (code < 0x80) {
        out[o++] = (char)code;
      } else {
        out[o++] = (char)(0xC0 | (code >> 6));
        out[o++] = (char)(0x80 | (code & 0x3F));
      }
    } else {
      r->error = "bad escape in a string";
      free(out);
      return NULL;
    }
  }
  if (!eat(r, '"')) {
    r->error = "unterminated string";
    free(out);
    return NULL;
  }
  out[o] = '\0';
  return out;
}

// Elements of an array or members of an object, up to `close`. Stops at the
// first error, which is the one reported.
static json_t *items(reader_t *r, json_kind_t kind, char close) {
  json_t *list = node(kind);
  json_t **tail = &list->child;
  if (eat(r, close)) return list;
  do {
    char *key = NULL;
    if (kind == JSON_OBJECT) {
      key = string(r);
      if (key == NULL || !eat(r, ':')) {
        r->error = r->error ? r->error : "expected `:` after a member name";
        free(key);
        return list;
      }
    }
    json_t *item = value(r);
    if (item == NULL) {
      free(key);
      return list;
    }
    item->key = key;
    *tail = item;
    tail = &item->next;
    if (r->error != NULL) return list;
  } while (eat(r, ','));
  if (!eat(r, close)) {
    r->error = kind == JSON_OBJECT ? "expected `,` or `}`" : "expected `,` or `]`";
  }
  return list;
}

static json_t *value(reader_t *r) {
  if (++r->depth > 32) {
    r->error = "nested too deeply";
    return NULL;
  }
  json_t *v = NULL;
  space(r);
  if (eat(r, '{')) {
    v = items(r, JSON_OBJECT, '}');
  } else if (eat(r, '[')) {
    v = items(r, JSON_ARRAY, ']');
  } else if (r->at < r->end && *r->at == '"') {
    char *text = string(r);
    if (text != NULL) {
      v = node(JSON_STRING);
      v->text = text;
    }
  } else if (r->end - r->at >= 4 && strncmp(r->at, "null", 4) == 0) {
    r->at += 4;
    v = node(JSON_NULL);
  } else {
    r->error = "expected a string, list, table or null";
  }
  r->depth--;
  return v;
}

const char *json_parse(const char *text, size_t len, json_t **out) {
  reader_t r = {text, text + len, NULL, 0};
  json_t *root = value(&r);
  space(&r);
  if (r.error == NULL && r.at != r.end) r.error = "trailing characters";
  if (r.error == NULL && root->kind != JSON_OBJECT) r.error = "expected a table";
  if (r.error != NULL) {
    json_free(root);
    return r.error;
  }
  *out = root;
  return NULL;
}

const json_t *json_first(const json_t *v) {
  return v != NULL && (v->kind == JSON_ARRAY || v->kind == JSON_OBJECT) ? v->child : NULL;
}

size_t json_length(const json_t *v) {
  size_t n = 0;
  for (const json_t *c = json_first(v); c != NULL; c = c->next) n++;
  return n;
}

const char *json_string(const json_t *object, const char *key) {
  if (object == NULL || object->kind != JSON_OBJECT) return NULL;
  for (const json_t *c = object->child; c != NULL; c = c->next) {
    if (strcmp(c->key, key) == 0) return c->kind == JSON_STRING ? c->text : NULL;
  }
  return NULL;
}

void json_free(json_t *v) {
  while (v != NULL) {
    json_t *next = v->next;
    json_free(v->child);
    free(v->key);
    free(v->text);
    free(v);
    v = next;
  }
}
