/* pytorch_model.bin: PyTorch's zip checkpoint (torch.save since 1.6). The archive holds
 * <prefix>/data.pkl, a pickle of the state dict whose tensors refer to storages by key, and
 * <prefix>/data/<key>, each storage's raw little-endian bytes (stored, not compressed).
 *
 * The pickle is run on a small stack machine that knows the subset of opcodes and callables that
 * state dicts use (OrderedDict, torch._utils._rebuild_tensor_v2, _rebuild_parameter, storage
 * persistent ids); anything else becomes an opaque object, and only objects that end up as
 * tensors of the dict are used. The result is presented as an ats_safetensors whose tensors
 * point into the mapped archive, so the loader checks shapes and converts dtypes the same way.
 * The old non-zip (legacy) format is refused with a message. */
#include "model_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- zip */

typedef struct zip_entry {
    char *name;
    size_t offset; /* of the data */
    size_t size;
} zip_entry;

static uint64_t rd(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void zip_free(zip_entry *e, size_t n) {
    for (size_t i = 0; i < n; i++) free(e[i].name);
    free(e);
}

static ats_status zip_read(const uint8_t *buf, size_t len, const char *path, zip_entry **out,
                           size_t *count, ats_error *err) {
    *out = NULL;
    *count = 0;
    if (len < 22) return ats_error_set(err, ATS_ERR_FORMAT, "%s: not a zip archive", path);
    size_t eocd = SIZE_MAX;
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (rd(buf + i, 4) == 0x06054b50) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: not a zip archive (a legacy torch.save file? re-save it with "
                             "a current PyTorch or as safetensors)",
                             path);
    uint64_t n = rd(buf + eocd + 10, 2), cd_size = rd(buf + eocd + 12, 4),
             cd_off = rd(buf + eocd + 16, 4);
    if ((n == 0xFFFF || cd_off == 0xFFFFFFFFu || cd_size == 0xFFFFFFFFu) && eocd >= 20 &&
        rd(buf + eocd - 20, 4) == 0x07064b50) { /* zip64 */
        uint64_t e64 = rd(buf + eocd - 20 + 8, 8);
        if (e64 > len || len - e64 < 56 || rd(buf + e64, 4) != 0x06064b50)
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: bad zip64 end record", path);
        n = rd(buf + e64 + 32, 8);
        cd_size = rd(buf + e64 + 40, 8);
        cd_off = rd(buf + e64 + 48, 8);
    }
    if (cd_off > len || cd_size > len - cd_off || n > cd_size / 46 + 1)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: zip central directory out of range", path);
    zip_entry *e = calloc(n ? (size_t)n : 1, sizeof *e);
    if (!e) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    size_t p = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd(buf + p, 4) != 0x02014b50) {
            zip_free(e, (size_t)i);
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: bad zip directory entry %llu", path,
                                 (unsigned long long)i);
        }
        uint64_t method = rd(buf + p + 10, 2), csize = rd(buf + p + 20, 4),
                 usize = rd(buf + p + 24, 4), nl = rd(buf + p + 28, 2), xl = rd(buf + p + 30, 2),
                 cl = rd(buf + p + 32, 2), lho = rd(buf + p + 42, 4);
        if (end - p - 46 < nl + xl + cl) {
            zip_free(e, (size_t)i);
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: bad zip directory entry %llu", path,
                                 (unsigned long long)i);
        }
        const uint8_t *x = buf + p + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) { /* zip64 extra field */
            uint64_t id = rd(x, 2), sz = rd(x + 2, 2);
            if ((uint64_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const uint8_t *f = x + 4, *fe = f + sz;
                if (usize == 0xFFFFFFFFu && fe - f >= 8) usize = rd(f, 8), f += 8;
                if (csize == 0xFFFFFFFFu && fe - f >= 8) csize = rd(f, 8), f += 8;
                if (lho == 0xFFFFFFFFu && fe - f >= 8) lho = rd(f, 8);
            }
            x += 4 + sz;
        }
        e[i].name = malloc((size_t)nl + 1);
        if (!e[i].name) {
            zip_free(e, (size_t)i);
            return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(e[i].name, buf + p + 46, (size_t)nl);
        e[i].name[nl] = '\0';
        if (lho > len || len - lho < 30 || rd(buf + lho, 4) != 0x04034b50) {
            ats_error_set(err, ATS_ERR_FORMAT, "%s: zip entry '%s': bad local header", path,
                          e[i].name);
            zip_free(e, (size_t)i + 1);
            return ATS_ERR_FORMAT;
        }
        uint64_t data = lho + 30 + rd(buf + lho + 26, 2) + rd(buf + lho + 28, 2);
        if (method != 0 || csize != usize) {
            ats_error_set(err, ATS_ERR_FORMAT,
                          "%s: zip entry '%s' is compressed (only stored "
                          "entries, as torch.save writes them)",
                          path, e[i].name);
            zip_free(e, (size_t)i + 1);
            return ATS_ERR_FORMAT;
        }
        if (data > len || usize > len - data) {
            ats_error_set(err, ATS_ERR_FORMAT, "%s: zip entry '%s' goes beyond the file", path,
                          e[i].name);
            zip_free(e, (size_t)i + 1);
            return ATS_ERR_FORMAT;
        }
        e[i].offset = (size_t)data;
        e[i].size = (size_t)usize;
        p += 46 + nl + xl + cl;
    }
    *out = e;
    *count = (size_t)n;
    return ATS_OK;
}

/* ---- pickle */

typedef enum {
    O_NONE,
    O_BOOL,
    O_INT,
    O_FLOAT,
    O_STR,
    O_TUPLE, /* also lists */
    O_DICT,
    O_GLOBAL,
    O_STORAGE,
    O_TENSOR,
    O_OTHER
} otype;

typedef struct obj {
    otype t;
    int64_t i;
    char *s; /* O_STR, O_GLOBAL ("module.name"), O_STORAGE (key) */
    size_t len;
    size_t *items; /* O_TUPLE: items; O_DICT: key, value pairs */
    size_t n, cap;
    st_dtype dtype; /* O_STORAGE, O_TENSOR */
    char dtype_name[12];
    size_t storage; /* O_TENSOR: the storage object */
    int64_t offset, ndim, shape[ST_MAX_DIMS], stride[ST_MAX_DIMS];
} obj;

typedef struct vm {
    obj *o;
    size_t no, capo;
    size_t *stack;
    size_t ns, caps;
    size_t *marks;
    size_t nm, capm;
    size_t *memo; /* SIZE_MAX = unset */
    size_t nmemo;
    char refused[128]; /* the first callable outside what state dicts use; "" none */
} vm;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static size_t new_obj(vm *v, otype t) {
    if (!grow((void **)&v->o, &v->capo, v->no + 1, sizeof *v->o)) return SIZE_MAX;
    memset(&v->o[v->no], 0, sizeof *v->o);
    v->o[v->no].t = t;
    return v->no++;
}

static int push(vm *v, size_t id) {
    if (id == SIZE_MAX || !grow((void **)&v->stack, &v->caps, v->ns + 1, sizeof *v->stack))
        return 0;
    v->stack[v->ns++] = id;
    return 1;
}

static int add_item(vm *v, size_t coll, size_t item) {
    obj *c = &v->o[coll];
    if (!grow((void **)&c->items, &c->cap, c->n + 1, sizeof *c->items)) return 0;
    c->items[c->n++] = item;
    return 1;
}

static void vm_free(vm *v) {
    for (size_t i = 0; i < v->no; i++) {
        free(v->o[i].s);
        free(v->o[i].items);
    }
    free(v->o);
    free(v->stack);
    free(v->marks);
    free(v->memo);
}

static size_t str_obj(vm *v, otype t, const char *s, size_t len) {
    size_t id = new_obj(v, t);
    if (id == SIZE_MAX) return id;
    v->o[id].s = malloc(len + 1);
    if (!v->o[id].s) return SIZE_MAX;
    memcpy(v->o[id].s, s, len);
    v->o[id].s[len] = '\0';
    v->o[id].len = len;
    return id;
}

static const struct {
    const char *name;
    st_dtype dtype;
    const char *dname;
} STORAGES[] = {
    {"torch.FloatStorage", ST_F32, "F32"},      {"torch.HalfStorage", ST_F16, "F16"},
    {"torch.BFloat16Storage", ST_BF16, "BF16"}, {"torch.DoubleStorage", ST_OTHER, "F64"},
    {"torch.LongStorage", ST_OTHER, "I64"},     {"torch.IntStorage", ST_OTHER, "I32"},
    {"torch.ByteStorage", ST_OTHER, "U8"},      {"torch.BoolStorage", ST_OTHER, "BOOL"}};

/* a tuple of ints into dims[] */
static int int_tuple(const vm *v, size_t id, int64_t *dims, int64_t *nd) {
    const obj *t = &v->o[id];
    if (t->t != O_TUPLE || t->n > ST_MAX_DIMS) return 0;
    for (size_t i = 0; i < t->n; i++) {
        const obj *x = &v->o[t->items[i]];
        if (x->t != O_INT || x->i < 0) return 0;
        dims[i] = x->i;
    }
    *nd = (int64_t)t->n;
    return 1;
}

/* REDUCE: callable(args) */
static size_t call(vm *v, size_t fn, size_t args) {
    const obj *f = &v->o[fn], *a = &v->o[args];
    if (f->t == O_GLOBAL && a->t == O_TUPLE) {
        if (!strcmp(f->s, "torch._utils._rebuild_tensor_v2") ||
            !strcmp(f->s, "torch._utils._rebuild_tensor")) {
            if (a->n >= 4 && v->o[a->items[0]].t == O_STORAGE && v->o[a->items[1]].t == O_INT) {
                size_t id = new_obj(v, O_TENSOR);
                if (id == SIZE_MAX) return id;
                obj *t = &v->o[id];
                a = &v->o[args];
                t->storage = a->items[0];
                t->dtype = v->o[t->storage].dtype;
                memcpy(t->dtype_name, v->o[t->storage].dtype_name, sizeof t->dtype_name);
                t->offset = v->o[a->items[1]].i;
                int64_t nd2;
                if (int_tuple(v, a->items[2], t->shape, &t->ndim) &&
                    int_tuple(v, a->items[3], t->stride, &nd2) && nd2 == t->ndim && t->offset >= 0)
                    return id;
                t->t = O_OTHER;
                return id;
            }
        } else if (!strcmp(f->s, "torch._utils._rebuild_parameter") ||
                   !strcmp(f->s, "torch._utils._rebuild_parameter_with_state")) {
            if (a->n >= 1 && v->o[a->items[0]].t == O_TENSOR) return a->items[0];
        } else if (!strcmp(f->s, "collections.OrderedDict")) {
            return new_obj(v, O_DICT);
        }
    }
    /* a call of anything else (posix.system, builtins.eval...) is never made, but a state dict
     * never holds one either: the file is refused rather than half-trusted */
    if (!v->refused[0])
        snprintf(v->refused, sizeof v->refused, "%s",
                 f->t == O_GLOBAL ? f->s : "a callable that is not a global");
    return new_obj(v, O_OTHER);
}

/* BINPERSID: ('storage', storage_type, key, location, numel) */
static size_t persistent(vm *v, size_t pid) {
    const obj *p = &v->o[pid];
    if (p->t == O_TUPLE && p->n >= 5 && v->o[p->items[0]].t == O_STR &&
        !strcmp(v->o[p->items[0]].s, "storage") && v->o[p->items[1]].t == O_GLOBAL &&
        v->o[p->items[2]].t == O_STR) {
        size_t id = str_obj(v, O_STORAGE, v->o[v->o[pid].items[2]].s, v->o[v->o[pid].items[2]].len);
        if (id == SIZE_MAX) return id;
        obj *s = &v->o[id];
        const char *ty = v->o[v->o[pid].items[1]].s;
        s->dtype = ST_OTHER;
        snprintf(s->dtype_name, sizeof s->dtype_name, "?");
        for (size_t i = 0; i < sizeof STORAGES / sizeof STORAGES[0]; i++)
            if (!strcmp(ty, STORAGES[i].name)) {
                s->dtype = STORAGES[i].dtype;
                snprintf(s->dtype_name, sizeof s->dtype_name, "%s", STORAGES[i].dname);
            }
        return id;
    }
    return new_obj(v, O_OTHER);
}

/* Runs the pickle; *result is the top object. */
static ats_status run_pickle(vm *v, const uint8_t *p, size_t len, const char *path, size_t *result,
                             ats_error *err) {
    size_t i = 0;
#define NEED(k)                                                                                    \
    if (len - i < (size_t)(k)) goto truncated
#define POP(x)                                                                                     \
    if (v->ns == 0) goto bad;                                                                      \
    x = v->stack[--v->ns]
#define PUSH(x)                                                                                    \
    if (!push(v, (x))) goto nomem
    while (i < len) {
        uint8_t op = p[i++];
        size_t a, b, c, id;
        uint64_t n;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            i++;
            break;
        case 0x95: /* FRAME */
            NEED(8);
            i += 8;
            break;
        case '.': /* STOP */
            POP(a);
            *result = a;
            return ATS_OK;
        case '(': /* MARK */
            if (!grow((void **)&v->marks, &v->capm, v->nm + 1, sizeof *v->marks)) goto nomem;
            v->marks[v->nm++] = v->ns;
            break;
        case '}': /* EMPTY_DICT */
            PUSH(new_obj(v, O_DICT));
            break;
        case ']': /* EMPTY_LIST */
        case ')': /* EMPTY_TUPLE */
            PUSH(new_obj(v, O_TUPLE));
            break;
        case 'N':
            PUSH(new_obj(v, O_NONE));
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            id = new_obj(v, O_BOOL);
            if (id == SIZE_MAX) goto nomem;
            v->o[id].i = op == 0x88;
            PUSH(id);
            break;
        case 'K': /* BININT1 */
        case 'M': /* BININT2 */
        case 'J': /* BININT */
            n = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            NEED(n);
            id = new_obj(v, O_INT);
            if (id == SIZE_MAX) goto nomem;
            v->o[id].i =
                op == 'J' ? (int64_t)(int32_t)(uint32_t)rd(p + i, 4) : (int64_t)rd(p + i, (int)n);
            i += n;
            PUSH(id);
            break;
        case 0x8a: /* LONG1 */
            NEED(1);
            n = p[i++];
            NEED(n);
            id = new_obj(v, O_INT);
            if (id == SIZE_MAX) goto nomem;
            if (n > 8) {
                v->o[id].t = O_OTHER;
            } else if (n > 0) {
                uint64_t u = rd(p + i, (int)n);
                if (n < 8 && (p[i + n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
                v->o[id].i = (int64_t)u;
            }
            i += n;
            PUSH(id);
            break;
        case 'G': /* BINFLOAT */
            NEED(8);
            i += 8;
            PUSH(new_obj(v, O_FLOAT));
            break;
        case 'X':   /* BINUNICODE */
        case 'T':   /* BINSTRING */
        case 0x8c:  /* SHORT_BINUNICODE */
        case 'U':   /* SHORT_BINSTRING */
        case 'B':   /* BINBYTES */
        case 'C': { /* SHORT_BINBYTES */
            int w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : 4;
            NEED(w);
            n = rd(p + i, w);
            i += (size_t)w;
            NEED(n);
            PUSH(str_obj(v, O_STR, (const char *)p + i, (size_t)n));
            i += (size_t)n;
            break;
        }
        case 'c': { /* GLOBAL module\nname\n */
            const uint8_t *nl1 = memchr(p + i, '\n', len - i);
            if (!nl1) goto truncated;
            const uint8_t *nl2 = memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - p));
            if (!nl2) goto truncated;
            size_t ml = (size_t)(nl1 - (p + i)), nlen = (size_t)(nl2 - nl1 - 1);
            char buf[256];
            if (ml + nlen + 2 > sizeof buf) goto bad;
            memcpy(buf, p + i, ml);
            buf[ml] = '.';
            memcpy(buf + ml + 1, nl1 + 1, nlen);
            PUSH(str_obj(v, O_GLOBAL, buf, ml + 1 + nlen));
            i = (size_t)(nl2 + 1 - p);
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            POP(b);
            POP(a);
            if (v->o[a].t != O_STR || v->o[b].t != O_STR || v->o[a].len + v->o[b].len > 250)
                goto bad;
            char buf[256];
            snprintf(buf, sizeof buf, "%s.%s", v->o[a].s, v->o[b].s);
            PUSH(str_obj(v, O_GLOBAL, buf, strlen(buf)));
            break;
        }
        case 'q':  /* BINPUT */
        case 'r':  /* LONG_BINPUT */
        case 0x94: /* MEMOIZE */
            if (op == 0x94) {
                n = v->nmemo;
            } else {
                int w = op == 'q' ? 1 : 4;
                NEED(w);
                n = rd(p + i, w);
                i += (size_t)w;
            }
            if (v->ns == 0 || n > 10000000) goto bad;
            if (n >= v->nmemo) {
                size_t cap = v->nmemo;
                if (!grow((void **)&v->memo, &cap, (size_t)n + 1, sizeof *v->memo)) goto nomem;
                for (size_t k = v->nmemo; k < cap; k++) v->memo[k] = SIZE_MAX;
                v->nmemo = cap;
            }
            v->memo[n] = v->stack[v->ns - 1];
            break;
        case 'h': /* BINGET */
        case 'j': /* LONG_BINGET */
            NEED(op == 'h' ? 1 : 4);
            n = rd(p + i, op == 'h' ? 1 : 4);
            i += op == 'h' ? 1 : 4;
            if (n >= v->nmemo || v->memo[n] == SIZE_MAX) goto bad;
            PUSH(v->memo[n]);
            break;
        case 't':   /* TUPLE */
        case 'l':   /* LIST */
        case 'd':   /* DICT */
        case 'e':   /* APPENDS */
        case 'u': { /* SETITEMS */
            if (v->nm == 0) goto bad;
            size_t m = v->marks[--v->nm];
            if (m > v->ns) goto bad;
            if (op == 't' || op == 'l' || op == 'd') {
                id = new_obj(v, op == 'd' ? O_DICT : O_TUPLE);
            } else {
                if (m == 0) goto bad;
                id = v->stack[m - 1];
            }
            if (id == SIZE_MAX) goto nomem;
            if ((op == 'd' || op == 'u') && (v->ns - m) % 2) goto bad;
            if (v->o[id].t == O_TUPLE || v->o[id].t == O_DICT)
                for (size_t k = m; k < v->ns; k++)
                    if (!add_item(v, id, v->stack[k])) goto nomem;
            v->ns = m;
            if (op == 't' || op == 'l' || op == 'd') PUSH(id);
            break;
        }
        case 0x85:   /* TUPLE1 */
        case 0x86:   /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            size_t k = (size_t)(op - 0x84);
            if (v->ns < k) goto bad;
            id = new_obj(v, O_TUPLE);
            if (id == SIZE_MAX) goto nomem;
            for (size_t q = v->ns - k; q < v->ns; q++)
                if (!add_item(v, id, v->stack[q])) goto nomem;
            v->ns -= k;
            PUSH(id);
            break;
        }
        case 'a': /* APPEND */
            POP(a);
            if (v->ns == 0) goto bad;
            if (v->o[v->stack[v->ns - 1]].t == O_TUPLE && !add_item(v, v->stack[v->ns - 1], a))
                goto nomem;
            break;
        case 's': /* SETITEM */
            POP(b);
            POP(a);
            if (v->ns == 0) goto bad;
            c = v->stack[v->ns - 1];
            if (v->o[c].t == O_DICT && (!add_item(v, c, a) || !add_item(v, c, b))) goto nomem;
            break;
        case 'R':  /* REDUCE */
        case 0x81: /* NEWOBJ */
            POP(b);
            POP(a);
            PUSH(call(v, a, b));
            break;
        case 'b': /* BUILD: state is ignored (OrderedDict metadata) */
            POP(a);
            (void)a;
            if (v->ns == 0) goto bad;
            break;
        case 'Q': /* BINPERSID */
            POP(a);
            PUSH(persistent(v, a));
            break;
        case '0': /* POP */
            POP(a);
            (void)a;
            break;
        case '2': /* DUP */
            if (v->ns == 0) goto bad;
            PUSH(v->stack[v->ns - 1]);
            break;
        default:
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: data.pkl: pickle opcode 0x%02x at byte %zu is not "
                                 "supported in a state dict",
                                 path, op, i - 1);
        }
    }
truncated:
    return ats_error_set(err, ATS_ERR_FORMAT, "%s: data.pkl: pickle ends early (byte %zu)", path,
                         i);
bad:
    return ats_error_set(err, ATS_ERR_FORMAT, "%s: data.pkl: malformed pickle at byte %zu", path,
                         i ? i - 1 : 0);
nomem:
    return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
#undef NEED
#undef POP
#undef PUSH
}

static size_t dtype_size(st_dtype d, const char *name) {
    if (d == ST_F32) return 4;
    if (d == ST_F16 || d == ST_BF16) return 2;
    if (!strcmp(name, "F64") || !strcmp(name, "I64")) return 8;
    if (!strcmp(name, "I32")) return 4;
    return 1;
}

ats_status ats_torchbin_parse(const uint8_t *buf, size_t len, const char *path, ats_safetensors *st,
                              ats_error *err) {
    memset(st, 0, sizeof *st);
    zip_entry *ze = NULL;
    size_t nz = 0;
    vm v = {0};
    ats_status rc = zip_read(buf, len, path, &ze, &nz, err);
    if (rc) goto fail;
    const zip_entry *pkl = NULL;
    for (size_t i = 0; i < nz; i++) {
        size_t l = strlen(ze[i].name);
        if (l >= 8 && !strcmp(ze[i].name + l - 8, "data.pkl") &&
            (l == 8 || ze[i].name[l - 9] == '/'))
            pkl = &ze[i];
    }
    if (!pkl) {
        rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: no data.pkl in the archive", path);
        goto fail;
    }
    size_t prefix = strlen(pkl->name) - 8; /* "<prefix>/" */
    size_t top = 0;
    rc = run_pickle(&v, buf + pkl->offset, pkl->size, path, &top, err);
    if (rc) goto fail;
    if (v.refused[0]) {
        rc = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: data.pkl calls %s, which no state dict does (refused)", path,
                           v.refused);
        goto fail;
    }
    const obj *dict = &v.o[top];
    if (dict->t != O_DICT) {
        rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: data.pkl is not a state dict", path);
        goto fail;
    }
    st->tensors = calloc(dict->n / 2 + 1, sizeof *st->tensors);
    if (!st->tensors) goto nomem;
    for (size_t k = 0; k + 1 < dict->n; k += 2) {
        const obj *key = &v.o[dict->items[k]], *val = &v.o[dict->items[k + 1]];
        if (key->t != O_STR || val->t != O_TENSOR) continue; /* not a tensor entry */
        st_tensor *t = &st->tensors[st->count];
        t->name = strdup(key->s);
        if (!t->name) goto nomem;
        st->count++;
        t->dtype = val->dtype;
        memcpy(t->dtype_name, val->dtype_name, sizeof t->dtype_name);
        t->ndim = (int)val->ndim;
        size_t count = 1, expect = 1;
        int contiguous = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            t->shape[d] = (size_t)val->shape[d];
            if (t->shape[d] != 1 && (size_t)val->stride[d] != expect) contiguous = 0;
            if (!ats_size_mul(expect, t->shape[d], &expect)) goto range;
        }
        count = expect;
        t->count = count;
        if (!contiguous) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: tensor '%s' is not contiguous (re-save the checkpoint)", path,
                               t->name);
            goto fail;
        }
        /* the storage's bytes: <prefix>data/<key> */
        const obj *sto = &v.o[val->storage];
        const zip_entry *se = NULL;
        for (size_t i = 0; i < nz && !se; i++)
            if (!strncmp(ze[i].name, pkl->name, prefix) &&
                !strncmp(ze[i].name + prefix, "data/", 5) &&
                !strcmp(ze[i].name + prefix + 5, sto->s))
                se = &ze[i];
        if (!se) {
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': storage '%s' is missing",
                               path, t->name, sto->s);
            goto fail;
        }
        size_t es = dtype_size(t->dtype, t->dtype_name), off, bytes, endb;
        if (!ats_size_mul((size_t)val->offset, es, &off) || !ats_size_mul(count, es, &bytes) ||
            !ats_size_add(off, bytes, &endb))
            goto range;
        if (endb > se->size) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: tensor '%s': %zu bytes at offset %zu go beyond its storage "
                               "(%zu bytes)",
                               path, t->name, bytes, off, se->size);
            goto fail;
        }
        t->begin = se->offset + off;
        t->end = t->begin + bytes;
        t->data = buf + t->begin;
    }
    qsort(st->tensors, st->count, sizeof *st->tensors, st_tensor_cmp_name);
    for (size_t i = 1; i < st->count; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name)) {
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' appears twice", path,
                               st->tensors[i].name);
            goto fail;
        }
    zip_free(ze, nz);
    vm_free(&v);
    return ATS_OK;
range:
    rc = ats_error_set(err, ATS_ERR_RANGE, "%s: a tensor's size overflows", path);
    goto fail;
nomem:
    rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
fail:
    zip_free(ze, nz);
    vm_free(&v);
    ats_safetensors_close(st);
    return rc;
}

ats_status ats_torchbin_open(const char *path, ats_safetensors *st, ats_error *err) {
    memset(st, 0, sizeof *st);
    void *map;
    size_t len;
    ats_status ms = ats_file_map(path, &map, &len, err);
    if (ms) return ms;
    if (!len) return ats_error_set(err, ATS_ERR_IO, "%s: not a regular, non-empty file", path);
    ats_status rc = ats_torchbin_parse(map, len, path, st, err);
    if (rc) {
        ats_file_unmap(map, len);
        return rc;
    }
    st->map = map;
    st->map_len = len;
    st->path = strdup(path);
    if (!st->path) {
        ats_safetensors_close(st);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    return ATS_OK;
}
