// Subdomain-to-service mapping: the C twin of `regex-services`.
//
// Same `[policy.config]`, same decisions (the shared cases file
// `examples-guests/regex-services/cases.toml` checks it):
//
//   default = "127.0.0.1:9451"     # optional: no rule matched, or no SNI
//   rules = [
//     { pattern = '^(?<service>[a-z0-9-]+)\.apps\.example$',
//       upstream = "{service}.svc.cluster.local:443" },
//   ]
//
// Patterns are POSIX extended regular expressions (wasi-libc's regcomp) plus
// `(?<name>...)` named groups, which are rewritten to plain groups here.
// Rules are tried in order; `{name}` in a template is replaced by the named
// capture. Everything is compiled once, in `init`; `route` allocates only
// the address it returns. No match and no default: `unrecognized_name`;
// not TLS: closed.

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "policy.h"

#define MAX_RULES 256
#define MAX_GROUPS 16
#define MAX_SNI 253

// A template piece: literal text, or the capture group it names.
typedef struct {
  char *text;  // NULL for a capture
  int group;
} piece_t;

typedef struct {
  regex_t regex;
  size_t groups;
  piece_t *pieces;
  size_t piece_count;
} rule_t;

static rule_t rules[MAX_RULES];
static size_t rule_count;
static char *fallback;  // NULL: no default

static bool fail(policy_string_t *err, const char *fmt, const char *a, const char *b) {
  char message[512];
  snprintf(message, sizeof message, fmt, a, b);
  policy_string_dup(err, message);
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

static bool is_name_char(char c, bool first) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (!first && c >= '0' && c <= '9');
}

// Rewrite `(?<name>` to `(`, recording which group each name is. Returns
// NULL (and sets *why) for what POSIX would read differently from the other
// implementations: another `(?` form, a lazy quantifier, a repeated name.
static char *strip_names(const char *pattern, char *names[MAX_GROUPS], size_t *groups,
                         const char **why) {
  size_t len = strlen(pattern);
  char *out = must(malloc(len + 1));
  size_t o = 0;
  *groups = 0;
  for (size_t i = 0; i < len; i++) {
    char c = pattern[i];
    if (c == '[') {
      // A bracket expression: copied as is. `]` right after `[` or `[^` is
      // a literal; `[:class:]`, `[.x.]`, `[=x=]` nest; `\` is a literal.
      out[o++] = pattern[i++];
      if (i < len && pattern[i] == '^') out[o++] = pattern[i++];
      if (i < len && pattern[i] == ']') out[o++] = pattern[i++];
      while (i < len && pattern[i] != ']') {
        if (pattern[i] == '[' && i + 1 < len && strchr(":.=", pattern[i + 1]) != NULL) {
          char kind = pattern[i + 1];
          out[o++] = pattern[i++];
          out[o++] = pattern[i++];
          while (i + 1 < len && !(pattern[i] == kind && pattern[i + 1] == ']')) {
            out[o++] = pattern[i++];
          }
          if (i + 1 < len) out[o++] = pattern[i++];
        }
        if (i < len) out[o++] = pattern[i++];
      }
      if (i < len) out[o++] = pattern[i];  // the closing `]`
      continue;
    }
    if (c == '\\' && i + 1 < len) {
      out[o++] = c;
      out[o++] = pattern[++i];
      continue;
    }
    if (strchr("*+?}", c) != NULL && pattern[i + 1] == '?') {
      *why = "lazy quantifiers (`*?`, `+?`, `??`, `{n,m}?`) are not supported";
      free(out);
      return NULL;
    }
    if (c == '(') {
      if (*groups == MAX_GROUPS) {
        *why = "too many groups (at most 16)";
        free(out);
        return NULL;
      }
      char *name = NULL;
      if (pattern[i + 1] == '?') {
        size_t n = 0;
        while (pattern[i + 3 + n] != '\0' && is_name_char(pattern[i + 3 + n], n == 0)) n++;
        if (pattern[i + 2] != '<' || n == 0 || pattern[i + 3 + n] != '>') {
          *why = "only (?<name>...) groups are supported after `(?`";
          free(out);
          return NULL;
        }
        name = must(strndup(pattern + i + 3, n));
        for (size_t g = 0; g < *groups; g++) {
          if (names[g] != NULL && strcmp(names[g], name) == 0) {
            *why = "a group name is used twice";
            free(name);
            free(out);
            return NULL;
          }
        }
        i += 3 + n;  // at the `>`
      }
      names[(*groups)++] = name;
    }
    out[o++] = c;
  }
  out[o] = '\0';
  return out;
}

static bool compile_rule(size_t index, const char *pattern, const char *upstream,
                         policy_string_t *err) {
  char where[32];
  snprintf(where, sizeof where, "rules[%zu]", index);
  rule_t *rule = &rules[index];
  char *names[MAX_GROUPS] = {0};
  const char *why = NULL;
  char *posix = strip_names(pattern, names, &rule->groups, &why);
  if (posix == NULL) {
    return fail(err, "%s: bad pattern: %s", where, why);
  }
  int code = regcomp(&rule->regex, posix, REG_EXTENDED);
  free(posix);
  if (code != 0) {
    char message[128];
    regerror(code, &rule->regex, message, sizeof message);
    return fail(err, "%s: bad pattern: %s", where, message);
  }
  // At most one piece per character, plus one.
  rule->pieces = must(calloc(strlen(upstream) + 1, sizeof(piece_t)));
  rule->piece_count = 0;
  const char *rest = upstream;
  while (*rest) {
    const char *open = strchr(rest, '{');
    if (open == NULL) {
      rule->pieces[rule->piece_count++].text = must(strdup(rest));
      break;
    }
    const char *close = strchr(open, '}');
    if (close == NULL) {
      return fail(err, "%s: unclosed `{` in upstream `%s`", where, upstream);
    }
    if (open > rest) {
      rule->pieces[rule->piece_count++].text = must(strndup(rest, (size_t)(open - rest)));
    }
    size_t n = (size_t)(close - open - 1);
    int group = -1;
    for (size_t g = 0; g < rule->groups; g++) {
      if (names[g] != NULL && strlen(names[g]) == n && strncmp(names[g], open + 1, n) == 0) {
        group = (int)g + 1;
      }
    }
    if (group < 0) {
      char name[128];
      snprintf(name, sizeof name, "%.*s", (int)(n < 100 ? n : 100), open + 1);
      return fail(err, "%s: upstream uses `{%s}` but the pattern has no such named group",
                  where, name);
    }
    rule->pieces[rule->piece_count].text = NULL;
    rule->pieces[rule->piece_count++].group = group;
    rest = close + 1;
  }
  for (size_t g = 0; g < rule->groups; g++) {
    free(names[g]);
  }
  return true;
}

bool exports_policy_init(policy_string_t *config, policy_string_t *err) {
  json_t *root = NULL;
  const char *why = json_parse((const char *)config->ptr, config->len, &root);
  policy_string_free(config);
  if (why != NULL) {
    return fail(err, "config: %s%s", why, "");
  }
  bool ok = false;
  const json_t *rule_list = NULL;
  for (const json_t *field = json_first(root); field != NULL; field = field->next) {
    if (strcmp(field->key, "rules") == 0 && field->kind == JSON_ARRAY) {
      rule_list = field;
    } else if (strcmp(field->key, "default") == 0 &&
               (field->kind == JSON_STRING || field->kind == JSON_NULL)) {
      fallback = field->kind == JSON_STRING ? must(strdup(field->text)) : NULL;
    } else {
      fail(err, "config: field `%s` is unknown or of the wrong type%s", field->key, "");
      goto done;
    }
  }
  if (rule_list == NULL) {
    fail(err, "config: missing field `rules`%s%s", "", "");
    goto done;
  }
  rule_count = 0;
  for (const json_t *item = json_first(rule_list); item != NULL; item = item->next) {
    const char *pattern = json_string(item, "pattern");
    const char *upstream = json_string(item, "upstream");
    char where[32];
    snprintf(where, sizeof where, "rules[%zu]", rule_count);
    if (rule_count == MAX_RULES) {
      fail(err, "%s: at most 256 rules%s", where, "");
      goto done;
    }
    if (pattern == NULL || upstream == NULL || json_length(item) != 2) {
      fail(err, "%s: needs exactly `pattern` and `upstream`%s", where, "");
      goto done;
    }
    if (!compile_rule(rule_count, pattern, upstream, err)) {
      goto done;
    }
    rule_count++;
  }
  // Shown as limen_tls_sni_routes_active and on the status page.
  limen_router_host_report_routes((uint32_t)rule_count);
  ok = true;
done:
  json_free(root);
  return ok;
}

// The expanded address of the first rule matching `sni`, or false.
static bool expand(const rule_t *rule, const char *sni, policy_string_t *out) {
  regmatch_t found[MAX_GROUPS + 1];
  if (regexec(&rule->regex, sni, MAX_GROUPS + 1, found, 0) != 0) {
    return false;
  }
  size_t len = 0;
  for (size_t i = 0; i < rule->piece_count; i++) {
    const piece_t *p = &rule->pieces[i];
    len += p->text ? strlen(p->text)
                   : (found[p->group].rm_so < 0
                          ? 0
                          : (size_t)(found[p->group].rm_eo - found[p->group].rm_so));
  }
  char *address = must(malloc(len + 1));
  size_t at = 0;
  for (size_t i = 0; i < rule->piece_count; i++) {
    const piece_t *p = &rule->pieces[i];
    if (p->text) {
      size_t n = strlen(p->text);
      memcpy(address + at, p->text, n);
      at += n;
    } else if (found[p->group].rm_so >= 0) {
      size_t n = (size_t)(found[p->group].rm_eo - found[p->group].rm_so);
      memcpy(address + at, sni + found[p->group].rm_so, n);
      at += n;
    }
  }
  out->ptr = (uint8_t *)address;
  out->len = at;
  return true;
}

static void passthrough(policy_decision_t *ret, policy_string_t address) {
  ret->tag = LIMEN_ROUTER_TYPES_DECISION_PASSTHROUGH;
  memset(&ret->val.passthrough, 0, sizeof ret->val.passthrough);
  ret->val.passthrough.address = address;
}

static void reject(policy_decision_t *ret, limen_router_types_alert_t alert) {
  ret->tag = LIMEN_ROUTER_TYPES_DECISION_REJECT;
  ret->val.reject = alert;
}

void exports_policy_route(policy_connection_t *conn, policy_borrow_client_hello_t *maybe_hello,
                          policy_decision_t *ret) {
  policy_connection_free(conn);
  if (maybe_hello == NULL) {
    limen_router_host_report_rule(LIMEN_ROUTER_HOST_RULE_KIND_NO_MATCH);
    reject(ret, LIMEN_ROUTER_TYPES_ALERT_CLOSE);
    return;
  }
  // The hello is a borrowed handle: ask limen for the one field we need.
  policy_string_t name;
  bool sent = limen_router_types_method_client_hello_sni(*maybe_hello, &name);
  // regexec needs a terminated string; SNIs are DNS names (at most 253 bytes).
  char sni[MAX_SNI + 1];
  bool has_sni = sent && name.len <= MAX_SNI;
  if (has_sni) {
    memcpy(sni, name.ptr, name.len);
    sni[name.len] = '\0';
  }
  if (sent) {
    policy_string_free(&name);
  }
  // The canonical ABI traps a call that returns holding a borrow.
  limen_router_types_client_hello_drop_borrow(*maybe_hello);
  policy_string_t address;
  for (size_t i = 0; has_sni && i < rule_count; i++) {
    if (expand(&rules[i], sni, &address)) {
      limen_router_host_report_rule(LIMEN_ROUTER_HOST_RULE_KIND_REGEX);
      passthrough(ret, address);
      return;
    }
  }
  if (fallback != NULL) {
    limen_router_host_report_rule(LIMEN_ROUTER_HOST_RULE_KIND_FALLBACK);
    policy_string_dup(&address, fallback);
    passthrough(ret, address);
    return;
  }
  limen_router_host_report_rule(LIMEN_ROUTER_HOST_RULE_KIND_NO_MATCH);
  reject(ret, LIMEN_ROUTER_TYPES_ALERT_UNRECOGNIZED_NAME);
}
