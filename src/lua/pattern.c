/*
 * Lua patterns (the Lua 5.4 manual, section 6.4.1) for string.find, match,
 * gmatch and gsub, matched by backtracking like the stock library but with
 * every step charged to the sandbox's budget: Lua's count hook never runs
 * inside C, so a pattern like ".-.-.-.-b" on attacker-supplied text would
 * otherwise run for minutes past both the instruction and the time limit.
 * Errors (a malformed pattern, the budget spent) are raised as Lua errors;
 * the matcher holds nothing that needs freeing, so the unwind is safe.
 */
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>

#include "lua/pattern.h"
#include "lua/sandbox_int.h"

#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAX_CAPTURES 32
#define MAX_DEPTH 200 /* as the stock library: deeper is "pattern too complex" */
#define CHARGE_EVERY 1024

enum { CAP_OPEN = -1, CAP_POSITION = -2 };

struct matcher {
    lua_State *L;
    const char *subject, *subject_end;
    const char *pattern_end;
    int depth;
    int level; /* captures started */
    struct {
        const char *at;
        ptrdiff_t len; /* or CAP_OPEN / CAP_POSITION */
    } cap[MAX_CAPTURES];
    size_t steps; /* not yet charged */
};

/* Count 'n' steps; every CHARGE_EVERY of them go to the sandbox, which may raise. */
static void step(struct matcher *m, size_t n)
{
    m->steps += n;
    if (m->steps >= CHARGE_EVERY) {
        size_t s = m->steps;
        m->steps = 0;
        sy_lua_charge(m->L, s);
    }
}

/* Does character class letter 'cl' (after '%') take byte c? Other characters stand for themselves.
 */
static bool in_class(int c, int cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c;
    }
    return isupper(cl) ? !r : r;
}

/* Where the single-character class at p ends (p + 1 for "a", past ']' for a set). */
static const char *item_end(struct matcher *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p >= m->pattern_end) {
            luaL_error(m->L, "malformed pattern (ends with '%%')");
        }
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pattern_end && *p == '^') {
            p++;
        }
        /* the first character of a set may be ']' itself */
        do {
            if (p >= m->pattern_end) {
                luaL_error(m->L, "malformed pattern (missing ']')");
            }
            c = *p++;
            if (c == ESC && p < m->pattern_end) {
                p++;
            }
        } while (p >= m->pattern_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Does the set starting at '[' (p) and ending at ']' (close) take byte c? */
static bool in_set(int c, const char *p, const char *close)
{
    bool negate = false;
    p++;
    if (*p == '^') {
        negate = true;
        p++;
    }
    for (; p < close; p++) {
        if (*p == ESC) {
            p++;
            if (in_class(c, (unsigned char)*p)) {
                return !negate;
            }
        } else if (p[1] == '-' && p + 2 < close) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) {
                return !negate;
            }
            p += 2;
        } else if ((unsigned char)*p == c) {
            return !negate;
        }
    }
    return negate;
}

/* Does the item from p to ep take the subject byte at s? */
static bool item_takes(const struct matcher *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->subject_end) {
        return false;
    }
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case ESC:
        return in_class(c, (unsigned char)p[1]);
    case '[':
        return in_set(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *match(struct matcher *m, const char *s, const char *p);

/* '*' and '+': take as many as possible, then give back one at a time. */
static const char *greedy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (item_takes(m, s + n, p, ep)) {
        n++;
    }
    step(m, (size_t)n);
    for (; n >= 0; n--) {
        const char *r = match(m, s + n, ep + 1);
        if (r != NULL) {
            return r;
        }
        step(m, 1);
    }
    return NULL;
}

/* '-': take as few as possible, one more each time the rest fails. */
static const char *lazy(struct matcher *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r != NULL) {
            return r;
        }
        if (!item_takes(m, s, p, ep)) {
            return NULL;
        }
        s++;
        step(m, 1);
    }
}

static const char *open_capture(struct matcher *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= MAX_CAPTURES) {
        luaL_error(m->L, "too many captures");
    }
    m->cap[m->level].at = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = match(m, s, p);
    if (r == NULL) {
        m->level--;
    }
    return r;
}

static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
    int l = m->level - 1;
    while (l >= 0 && m->cap[l].len != CAP_OPEN) {
        l--;
    }
    if (l < 0) {
        luaL_error(m->L, "invalid pattern capture");
    }
    m->cap[l].len = s - m->cap[l].at;
    const char *r = match(m, s, p);
    if (r == NULL) {
        m->cap[l].len = CAP_OPEN;
    }
    return r;
}

/* %1-%9: the text of a closed capture again. */
static const char *back_reference(struct matcher *m, const char *s, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN) {
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    }
    ptrdiff_t len = m->cap[l].len;
    if (len < 0 || m->subject_end - s < len || memcmp(m->cap[l].at, s, (size_t)len) != 0) {
        return NULL; /* a position capture never matches as text */
    }
    step(m, (size_t)len);
    return s + len;
}

/* %bxy: from an x to its balancing y. */
static const char *balanced(struct matcher *m, const char *s, const char *p)
{
    if (p + 1 >= m->pattern_end) {
        luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    }
    if (s >= m->subject_end || *s != p[0]) {
        return NULL;
    }
    int depth = 1;
    for (const char *q = s + 1; q < m->subject_end; q++) {
        if (*q == p[1]) {
            if (--depth == 0) {
                step(m, (size_t)(q - s));
                return q + 1;
            }
        } else if (*q == p[0]) {
            depth++;
        }
    }
    step(m, (size_t)(m->subject_end - s));
    return NULL;
}

/* The end of the match of pattern p at subject position s, or NULL. */
static const char *match(struct matcher *m, const char *s, const char *p)
{
    if (m->depth-- == 0) {
        luaL_error(m->L, "pattern too complex");
    }
    step(m, 1);
    const char *r = NULL;
    for (;;) {
        if (p >= m->pattern_end) {
            r = s;
            break;
        }
        if (*p == '(') {
            r = p + 1 < m->pattern_end && p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                                                      : open_capture(m, s, p + 1, CAP_OPEN);
            break;
        }
        if (*p == ')') {
            r = close_capture(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->pattern_end) {
            r = s == m->subject_end ? s : NULL;
            break;
        }
        if (*p == ESC && p + 1 < m->pattern_end && p[1] == 'b') {
            s = balanced(m, s, p + 2);
            if (s == NULL) {
                break;
            }
            p += 4;
            continue;
        }
        if (*p == ESC && p + 1 < m->pattern_end && p[1] == 'f') {
            p += 2;
            if (p >= m->pattern_end || *p != '[') {
                luaL_error(m->L, "missing '[' after '%%f' in pattern");
            }
            const char *ep = item_end(m, p);
            int before = s == m->subject ? '\0' : (unsigned char)s[-1];
            int here = s < m->subject_end ? (unsigned char)*s : '\0';
            if (in_set(before, p, ep - 1) || !in_set(here, p, ep - 1)) {
                break;
            }
            p = ep;
            continue;
        }
        if (*p == ESC && p + 1 < m->pattern_end && isdigit((unsigned char)p[1])) {
            s = back_reference(m, s, (unsigned char)p[1]);
            if (s == NULL) {
                break;
            }
            p += 2;
            continue;
        }
        /* a single-character item, maybe followed by a quantifier */
        const char *ep = item_end(m, p);
        char q = ep < m->pattern_end ? *ep : '\0';
        if (!item_takes(m, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1; /* zero of them is fine */
                continue;
            }
            break;
        }
        if (q == '?') {
            r = match(m, s + 1, ep + 1);
            if (r != NULL) {
                break;
            }
            p = ep + 1;
            continue;
        }
        if (q == '+') {
            r = greedy(m, s + 1, p, ep);
            break;
        }
        if (q == '*') {
            r = greedy(m, s, p, ep);
            break;
        }
        if (q == '-') {
            r = lazy(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth++;
    return r;
}

static void reset(struct matcher *m)
{
    m->level = 0;
    m->depth = MAX_DEPTH;
}

static void begin(struct matcher *m, lua_State *L, const char *s, size_t ls, const char *p,
                  size_t lp)
{
    m->L = L;
    m->subject = s;
    m->subject_end = s + ls;
    m->pattern_end = p + lp;
    m->steps = 0;
    reset(m);
}

/* Charge what is left over: a call that matched quickly still counts its steps. */
static void end(struct matcher *m)
{
    if (m->steps > 0) {
        size_t s = m->steps;
        m->steps = 0;
        sy_lua_charge(m->L, s);
    }
}

/* Push capture i of the match s..e (the whole match when there are none and i is 0). */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0) {
            luaL_error(m->L, "invalid capture index %%%d", i + 1);
        }
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t len = m->cap[i].len;
    if (len == CAP_OPEN) {
        luaL_error(m->L, "unfinished capture");
    }
    if (len == CAP_POSITION) {
        lua_pushinteger(m->L, (m->cap[i].at - m->subject) + 1);
    } else {
        lua_pushlstring(m->L, m->cap[i].at, (size_t)len);
    }
}

/* Push every capture (or the whole match when s is not NULL and there are none). */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
    int n = m->level == 0 && s != NULL ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) {
        push_capture(m, i, s, e);
    }
    return n;
}

/* A 1-based start position (negative from the end) as a 0-based offset; may be past the end. */
static size_t start_offset(lua_Integer pos, size_t len)
{
    if (pos > 0) {
        return (size_t)pos - 1;
    }
    if (pos == 0 || pos < -(lua_Integer)len) {
        return 0;
    }
    return (size_t)((lua_Integer)len + pos);
}

static bool has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++) {
        if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL) {
            return true;
        }
    }
    return false;
}

/* The first occurrence of needle in hay, charged by the bytes looked at. */
static const char *find_plain(lua_State *L, const char *hay, size_t lh, const char *needle,
                              size_t ln)
{
    if (ln == 0) {
        return hay;
    }
    const char *at = NULL;
    size_t looked = 0;
    for (size_t i = 0; i + ln <= lh && at == NULL; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, ln) == 0) {
            at = hay + i;
        }
        looked += ln; /* memcmp's worst case, so "aaaa...b" against "aaa...a" is charged too */
        if (looked >= CHARGE_EVERY * 16) {
            sy_lua_charge(L, looked);
            looked = 0;
        }
    }
    sy_lua_charge(L, looked);
    return at;
}

static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *at = find_plain(L, s + init, ls - init, p, lp);
        if (at == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (at - s) + 1);
        lua_pushinteger(L, (lua_Integer)((at - s) + (ptrdiff_t)lp));
        return 2;
    }
    struct matcher m;
    bool anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    begin(&m, L, s, ls, p, lp);
    const char *from = s + init;
    do {
        reset(&m);
        const char *e = match(&m, from, p);
        if (e != NULL) {
            end(&m);
            if (find) {
                lua_pushinteger(L, (from - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&m, NULL, NULL) + 2;
            }
            return push_captures(&m, from, e);
        }
    } while (from++ < m.subject_end && !anchored);
    end(&m);
    luaL_pushfail(L);
    return 1;
}

static int l_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int l_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* gmatch's iterator state: kept in a userdata next to the subject and pattern strings. */
struct gmatch_state {
    struct matcher m;
    const char *from, *last;
    const char *p;
};

static int gmatch_next(lua_State *L)
{
    struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L;
    for (const char *from = g->from; from <= g->m.subject_end; from++) {
        reset(&g->m);
        const char *e = match(&g->m, from, g->p);
        if (e != NULL && e != g->last) {
            g->from = g->last = e;
            end(&g->m);
            return push_captures(&g->m, from, e);
        }
    }
    end(&g->m);
    g->from = g->m.subject_end + 1;
    return 0;
}

static int l_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    if (init > ls) {
        init = ls + 1; /* nothing to match */
    }
    lua_settop(L, 2); /* the strings stay alive as upvalues */
    struct gmatch_state *g = lua_newuserdatauv(L, sizeof(*g), 0);
    begin(&g->m, L, s, ls, p, lp);
    g->from = s + init;
    g->last = NULL;
    g->p = p;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Append the replacement for the match s..e to b. */
static void add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e,
                            int kind)
{
    lua_State *L = m->L;
    if (kind == LUA_TSTRING || kind == LUA_TNUMBER) {
        size_t l;
        const char *r = lua_tolstring(L, 3, &l);
        for (size_t i = 0; i < l; i++) {
            if (r[i] != ESC) {
                luaL_addchar(b, r[i]);
                continue;
            }
            i++;
            if (i < l && r[i] == ESC) {
                luaL_addchar(b, ESC);
            } else if (i < l && isdigit((unsigned char)r[i])) {
                if (r[i] == '0') {
                    luaL_addlstring(b, s, (size_t)(e - s));
                } else {
                    push_capture(m, r[i] - '1', s, e);
                    luaL_tolstring(L, -1, NULL);
                    lua_remove(L, -2);
                    luaL_addvalue(b);
                }
            } else {
                luaL_error(L, "invalid use of '%c' in replacement string", ESC);
            }
        }
        step(m, l);
        return;
    }
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* false or nil: keep the match */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int l_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argexpected(L,
                     kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION ||
                         kind == LUA_TTABLE,
                     3, "string/function/table");
    bool anchored = lp > 0 && *p == '^';
    if (anchored) {
        p++;
        lp--;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    struct matcher m;
    begin(&m, L, s, ls, p, lp);
    const char *from = s, *last = NULL;
    lua_Integer n = 0;
    while (n < max) {
        reset(&m);
        const char *e = match(&m, from, p);
        if (e != NULL && e != last) {
            n++;
            add_replacement(&m, &b, from, e, kind);
            from = last = e;
        } else if (from < m.subject_end) {
            luaL_addchar(&b, *from++);
        } else {
            break;
        }
        if (anchored) {
            break;
        }
    }
    end(&m);
    luaL_addlstring(&b, from, (size_t)(m.subject_end - from));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

/* string.rep, but an empty result is made at once: rep("", 1e15) would loop for hours. */
static int l_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

void sy_lua_patterns_install(lua_State *L, int string_table)
{
    static const luaL_Reg fns[] = {
        {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, string_table, f->name);
    }
    lua_getfield(L, string_table, "rep");
    lua_pushcclosure(L, l_rep, 1);
    lua_setfield(L, string_table, "rep");
}
