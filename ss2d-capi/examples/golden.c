/*
 * golden.c: runs the ss2d C API on the golden data made with the original upstream code
 * (mamba's selective_scan_ref, VMamba's SS2D forward) and compares.
 *
 *   cc -std=c11 -O2 -I ss2d-capi/include ss2d-capi/examples/golden.c \
 *      target/release/libss2d_capi.a -lpthread -ldl -lm -o golden
 *   ./golden testdata/golden
 *
 * For every selective-scan case: the sequential call against the golden `out` (and
 * `last_state`), then the library pool, a host pool (pthreads, through the parallel_for
 * callback) with caller scratch, and channel-last strided inputs, all against the sequential
 * result. For every SS2D layer case: ss2d_layer_create from the file's named tensors and
 * config metadata, then forward sequentially and on the host pool. Exit status 0 when
 * everything matches.
 *
 * The safetensors files are read by a small JSON parser below (the header is JSON; the data
 * are little-endian float32, row-major).
 */
#define _POSIX_C_SOURCE 200809L /* strdup, pthreads, dirent */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ss2d.h"

/* ------------------------------------------------------------------------------------------ */
/* A minimal safetensors reader.                                                              */

typedef struct {
    char *name;
    size_t ndim;
    size_t shape[8];
    size_t begin, end; /* byte offsets into the data section */
} st_entry;

typedef struct {
    char *key;
    char *val;
} st_meta;

typedef struct {
    unsigned char *bytes;
    size_t len;
    size_t data_start;
    st_entry ents[256];
    size_t n_ents;
    st_meta meta[256];
    size_t n_meta;
} st_file;

typedef struct {
    const char *p, *end;
    int ok;
} json;

static void j_ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int j_eat(json *j, char c) {
    j_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* Parses a JSON string; returns a malloc'd copy (escapes decoded; \uXXXX becomes '?'). */
static char *j_str(json *j) {
    j_ws(j);
    if (j->p >= j->end || *j->p != '"') {
        j->ok = 0;
        return NULL;
    }
    j->p++;
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\' && j->p < j->end) {
            char e = *j->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': c = '?'; j->p += (j->end - j->p >= 4) ? 4 : (j->end - j->p); break;
            default: c = e; break; /* \" \\ \/ */
            }
        }
        if (n + 2 > cap) s = realloc(s, cap *= 2);
        s[n++] = c;
    }
    s[n] = 0;
    if (!j_eat(j, '"')) j->ok = 0;
    return s;
}

static size_t j_uint(json *j) {
    j_ws(j);
    size_t v = 0;
    int any = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        v = v * 10 + (size_t)(*j->p++ - '0');
        any = 1;
    }
    if (!any) j->ok = 0;
    return v;
}

/* Skips any JSON value. */
static void j_skip(json *j) {
    j_ws(j);
    if (j->p >= j->end) { j->ok = 0; return; }
    char c = *j->p;
    if (c == '"') { free(j_str(j)); return; }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (j_eat(j, close)) return;
        do {
            if (c == '{') { free(j_str(j)); if (!j_eat(j, ':')) { j->ok = 0; return; } }
            j_skip(j);
        } while (j->ok && j_eat(j, ','));
        if (!j_eat(j, close)) j->ok = 0;
        return;
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']') j->p++;
}

static int st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) { fprintf(stderr, "cannot open %s\n", path); return 0; }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->bytes = malloc((size_t)len);
    f->len = (size_t)len;
    if (fread(f->bytes, 1, f->len, fp) != f->len) { fclose(fp); return 0; }
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->bytes[i];
    f->data_start = 8 + (size_t)hlen;
    json j = {(const char *)f->bytes + 8, (const char *)f->bytes + 8 + hlen, 1};
    if (!j_eat(&j, '{')) return 0;
    do {
        char *key = j_str(&j);
        if (!j.ok || !j_eat(&j, ':')) return 0;
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            if (!j_eat(&j, '{')) return 0;
            if (j_eat(&j, '}')) continue;
            do {
                st_meta *m = &f->meta[f->n_meta++];
                m->key = j_str(&j);
                if (!j_eat(&j, ':')) return 0;
                m->val = j_str(&j);
            } while (j.ok && f->n_meta < 256 && j_eat(&j, ','));
            if (!j_eat(&j, '}')) return 0;
            continue;
        }
        st_entry *e = &f->ents[f->n_ents++];
        e->name = key;
        if (!j_eat(&j, '{')) return 0;
        do {
            char *field = j_str(&j);
            if (!j_eat(&j, ':')) return 0;
            if (strcmp(field, "shape") == 0) {
                j_eat(&j, '[');
                if (!j_eat(&j, ']')) {
                    do e->shape[e->ndim++] = j_uint(&j);
                    while (e->ndim < 8 && j_eat(&j, ','));
                    j_eat(&j, ']');
                }
            } else if (strcmp(field, "data_offsets") == 0) {
                j_eat(&j, '[');
                e->begin = j_uint(&j);
                j_eat(&j, ',');
                e->end = j_uint(&j);
                j_eat(&j, ']');
            } else if (strcmp(field, "dtype") == 0) {
                char *dt = j_str(&j);
                if (strcmp(dt, "F32") != 0) { fprintf(stderr, "%s: dtype %s\n", key, dt); j.ok = 0; }
                free(dt);
            } else {
                j_skip(&j);
            }
            free(field);
        } while (j.ok && j_eat(&j, ','));
        if (!j_eat(&j, '}')) return 0;
    } while (j.ok && f->n_ents < 256 && j_eat(&j, ','));
    return j.ok;
}

static void st_close(st_file *f) {
    for (size_t i = 0; i < f->n_ents; i++) free(f->ents[i].name);
    for (size_t i = 0; i < f->n_meta; i++) { free(f->meta[i].key); free(f->meta[i].val); }
    free(f->bytes);
}

static const st_entry *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->n_ents; i++)
        if (strcmp(f->ents[i].name, name) == 0) return &f->ents[i];
    return NULL;
}

static const char *st_meta_get(const st_file *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].val;
    return "";
}

/* A tensor's data as a fresh (aligned) float array; NULL when absent. */
static float *st_data(const st_file *f, const st_entry *e) {
    if (!e) return NULL;
    size_t n = (e->end - e->begin) / 4;
    float *d = malloc((n ? n : 1) * sizeof(float));
    memcpy(d, f->bytes + f->data_start + e->begin, n * 4);
    return d;
}

static size_t numel(const st_entry *e) {
    size_t n = 1;
    for (size_t i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Tensor descriptors.                                                                        */

static void rm_strides(size_t ndim, const size_t *shape, ptrdiff_t *strides) {
    ptrdiff_t acc = 1;
    for (size_t i = ndim; i-- > 0;) {
        strides[i] = acc;
        acc *= (ptrdiff_t)shape[i];
    }
}

static ss2d_const_tensor cten(const float *data, size_t ndim, const size_t *shape) {
    ss2d_const_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim;
    memcpy(t.shape, shape, ndim * sizeof(size_t));
    rm_strides(ndim, shape, t.strides);
    return t;
}

static ss2d_tensor mten(float *data, size_t ndim, const size_t *shape) {
    ss2d_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim;
    memcpy(t.shape, shape, ndim * sizeof(size_t));
    rm_strides(ndim, shape, t.strides);
    return t;
}

/* ------------------------------------------------------------------------------------------ */
/* A host thread pool for parallel_for (pthreads; a real host would keep its threads).        */

typedef struct {
    size_t n;
    ss2d_item_fn item;
    void *item_ctx;
    atomic_size_t next;
} pf_job;

static void *pf_worker(void *p) {
    pf_job *j = p;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        j->item(j->item_ctx, i);
    }
    return NULL;
}

/* ctx points to the thread count. Calls every item once and returns when all are done. */
static void pthread_parallel_for(void *ctx, size_t n_items, ss2d_item_fn item, void *item_ctx) {
    size_t threads = *(const size_t *)ctx;
    pthread_t tid[64];
    pf_job job;
    job.n = n_items;
    job.item = item;
    job.item_ctx = item_ctx;
    atomic_init(&job.next, 0);
    size_t started = 0;
    for (size_t k = 1; k < threads && k < 64; k++)
        if (pthread_create(&tid[started], NULL, pf_worker, &job) == 0) started++;
    pf_worker(&job); /* the calling thread works too */
    for (size_t k = 0; k < started; k++) pthread_join(tid[k], NULL);
}

static size_t HOST_THREADS = 4;

static ss2d_exec exec_seq(void) {
    ss2d_exec e;
    memset(&e, 0, sizeof e);
    return e;
}

static ss2d_exec exec_pool(size_t n) {
    ss2d_exec e = exec_seq();
    e.n_threads = n;
    return e;
}

static ss2d_exec exec_host(void) {
    ss2d_exec e = exec_seq();
    e.n_threads = HOST_THREADS; /* width hint */
    e.parallel_for = pthread_parallel_for;
    e.parallel_for_ctx = &HOST_THREADS;
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* Checks.                                                                                    */

static int failures = 0;

#define CHECK_OK(call)                                                                         \
    do {                                                                                       \
        int s_ = (call);                                                                       \
        if (s_ != SS2D_OK) {                                                                   \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,                \
                    ss2d_status_name(s_), ss2d_last_error());                                  \
            failures++;                                                                        \
            return;                                                                            \
        }                                                                                      \
    } while (0)

/* max|a - ref| / max|ref| */
static double rel_err(const float *a, const float *ref, size_t n) {
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]), e = fabs((double)a[i] - (double)ref[i]);
        if (r > scale) scale = r;
        if (e > err || isnan(e)) err = isnan(e) ? INFINITY : e;
    }
    return scale > 0 ? err / scale : err;
}

static void expect_close(const char *what, const char *cse, const float *a, const float *ref,
                         size_t n, double tol) {
    double e = rel_err(a, ref, n);
    if (!(e <= tol)) {
        fprintf(stderr, "FAIL %s %s: rel err %.3g > %.1g\n", cse, what, e, tol);
        failures++;
    }
}

static void expect_same(const char *what, const char *cse, const float *a, const float *b,
                        size_t n) {
    if (memcmp(a, b, n * sizeof(float)) != 0) {
        fprintf(stderr, "FAIL %s %s: not bitwise identical to the sequential result\n", cse, what);
        failures++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Selective scan.                                                                            */

static void scan_case(const char *path, const char *cse) {
    st_file f;
    if (!st_open(&f, path)) { fprintf(stderr, "FAIL %s: bad file\n", cse); failures++; return; }
    const st_entry *eu = st_find(&f, "u"), *eA = st_find(&f, "A"), *eB = st_find(&f, "B"),
                   *eC = st_find(&f, "C"), *eD = st_find(&f, "D"), *ez = st_find(&f, "z"),
                   *ebias = st_find(&f, "delta_bias"), *eout = st_find(&f, "out"),
                   *elast = st_find(&f, "last_state");
    size_t bsz = eu->shape[0], dim = eu->shape[1], len = eu->shape[2], dstate = eA->shape[1];
    size_t bdl = bsz * dim * len, bdn = bsz * dim * dstate;
    float *u = st_data(&f, eu), *delta = st_data(&f, st_find(&f, "delta")), *A = st_data(&f, eA),
          *B = st_data(&f, eB), *C = st_data(&f, eC), *D = st_data(&f, eD), *z = st_data(&f, ez),
          *bias = st_data(&f, ebias), *want = st_data(&f, eout), *want_last = st_data(&f, elast);

    ss2d_const_tensor tu = cten(u, 3, eu->shape), tdelta = cten(delta, 3, eu->shape),
                      tA = cten(A, 2, eA->shape), tB = cten(B, eB->ndim, eB->shape),
                      tC = cten(C, eC->ndim, eC->shape), tD, tz, tbias;
    if (D) tD = cten(D, 1, eD->shape);
    if (z) tz = cten(z, 3, ez->shape);
    if (bias) tbias = cten(bias, 1, ebias->shape);
    ss2d_scan_inputs in;
    memset(&in, 0, sizeof in);
    in.u = &tu;
    in.delta = &tdelta;
    in.A = &tA;
    in.B = &tB;
    in.C = &tC;
    in.D = D ? &tD : NULL;
    in.z = z ? &tz : NULL;
    in.delta_bias = bias ? &tbias : NULL;
    in.initial_state = NULL;
    in.delta_softplus = strcmp(st_meta_get(&f, "delta_softplus"), "true") == 0;

    size_t st_shape[3] = {bsz, dim, dstate};
    float *out = malloc(bdl * sizeof(float)), *last = malloc(bdn * sizeof(float));
    float *out2 = malloc(bdl * sizeof(float)), *last2 = malloc(bdn * sizeof(float));
    ss2d_tensor tout = mten(out, 3, eu->shape), tlast = mten(last, 3, st_shape);
    ss2d_tensor tout2 = mten(out2, 3, eu->shape), tlast2 = mten(last2, 3, st_shape);

    /* 1. Sequential, against the golden. */
    CHECK_OK(ss2d_selective_scan(&in, &tout, &tlast, NULL));
    expect_close("out", cse, out, want, bdl, 1e-5);
    if (want_last) expect_close("last_state", cse, last, want_last, bdn, 1e-5);

    /* 2. The library's pool: bitwise. */
    ss2d_exec pool = exec_pool(3);
    CHECK_OK(ss2d_selective_scan(&in, &tout2, &tlast2, &pool));
    expect_same("out (pool)", cse, out2, out, bdl);
    expect_same("last_state (pool)", cse, last2, last, bdn);

    /* 3. The host pool through parallel_for, with caller scratch: bitwise. */
    ss2d_exec host = exec_host();
    size_t need = 0;
    CHECK_OK(ss2d_scan_scratch_size(&in, &host, &need));
    float *scratch = malloc(need * sizeof(float));
    host.scratch = scratch;
    host.scratch_len = need;
    memset(out2, 0, bdl * sizeof(float));
    CHECK_OK(ss2d_selective_scan(&in, &tout2, &tlast2, &host));
    expect_same("out (parallel_for)", cse, out2, out, bdl);
    expect_same("last_state (parallel_for)", cse, last2, last, bdn);
    free(scratch);
    host.scratch = NULL; /* back to library scratch */
    host.scratch_len = 0;

    /* 4. Channel-last (batch, seqlen, dim) copies of u and delta, passed as (batch, dim,
     *    seqlen) views with strides (seqlen*dim, 1, dim); the output written through a
     *    transposed view too. */
    float *ucl = malloc(bdl * sizeof(float)), *dcl = malloc(bdl * sizeof(float));
    for (size_t b = 0; b < bsz; b++)
        for (size_t d = 0; d < dim; d++)
            for (size_t l = 0; l < len; l++) {
                ucl[(b * len + l) * dim + d] = u[(b * dim + d) * len + l];
                dcl[(b * len + l) * dim + d] = delta[(b * dim + d) * len + l];
            }
    ss2d_const_tensor tucl = tu, tdcl = tdelta;
    ptrdiff_t cl_strides[3] = {(ptrdiff_t)(len * dim), 1, (ptrdiff_t)dim};
    tucl.data = ucl;
    tdcl.data = dcl;
    memcpy(tucl.strides, cl_strides, sizeof cl_strides);
    memcpy(tdcl.strides, cl_strides, sizeof cl_strides);
    ss2d_scan_inputs incl = in;
    incl.u = &tucl;
    incl.delta = &tdcl;
    float *outcl = malloc(bdl * sizeof(float));
    ss2d_tensor toutcl = mten(outcl, 3, eu->shape);
    memcpy(toutcl.strides, cl_strides, sizeof cl_strides);
    CHECK_OK(ss2d_selective_scan(&incl, &toutcl, NULL, &host));
    for (size_t b = 0; b < bsz; b++)
        for (size_t d = 0; d < dim; d++)
            for (size_t l = 0; l < len; l++) out2[(b * dim + d) * len + l] = outcl[(b * len + l) * dim + d];
    expect_close("out (strided, channel-last)", cse, out2, out, bdl, 1e-5);

    printf("ok   selective_scan %-40s (B=%zu D=%zu L=%zu N=%zu, B/C rank %zu/%zu)\n", cse, bsz,
           dim, len, dstate, eB->ndim, eC->ndim);
    free(ucl); free(dcl); free(outcl);
    free(out); free(last); free(out2); free(last2);
    free(u); free(delta); free(A); free(B); free(C); free(D); free(z); free(bias);
    free(want); free(want_last);
    st_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* The SS2D layer.                                                                            */

static void layer_case(const char *path, const char *cse) {
    st_file f;
    if (!st_open(&f, path)) { fprintf(stderr, "FAIL %s: bad file\n", cse); failures++; return; }
    /* Every state_dict tensor, by name. */
    ss2d_named_tensor named[64];
    float *datas[64];
    size_t n_named = 0;
    for (size_t i = 0; i < f.n_ents && n_named < 64; i++) {
        const st_entry *e = &f.ents[i];
        if (strcmp(e->name, "input") == 0 || strcmp(e->name, "output") == 0 ||
            strncmp(e->name, "debug.", 6) == 0)
            continue;
        datas[n_named] = st_data(&f, e);
        named[n_named].name = e->name;
        named[n_named].tensor = cten(datas[n_named], e->ndim, e->shape);
        n_named++;
    }
    ss2d_layer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.d_model = (size_t)atol(st_meta_get(&f, "d_model"));
    cfg.d_state = (size_t)atol(st_meta_get(&f, "d_state"));
    cfg.ssm_ratio = atof(st_meta_get(&f, "ssm_ratio"));
    const char *dt = st_meta_get(&f, "dt_rank");
    cfg.dt_rank = strcmp(dt, "auto") == 0 ? 0 : (size_t)atol(dt);
    cfg.d_conv = (size_t)atol(st_meta_get(&f, "d_conv"));
    cfg.conv_bias = strcmp(st_meta_get(&f, "conv_bias"), "true") == 0;
    cfg.forward_type = st_meta_get(&f, "forward_type");
    cfg.channel_first = strcmp(st_meta_get(&f, "channel_first"), "true") == 0;

    ss2d_layer *layer = NULL;
    int s = ss2d_layer_create(&cfg, named, n_named, NULL, &layer);
    for (size_t i = 0; i < n_named; i++) free(datas[i]); /* the layer copied them */
    if (s != SS2D_OK) {
        fprintf(stderr, "FAIL %s: ss2d_layer_create -> %s: %s\n", cse, ss2d_status_name(s),
                ss2d_last_error());
        failures++;
        st_close(&f);
        return;
    }
    ss2d_layer_dims dims;
    CHECK_OK(ss2d_layer_get_dims(layer, &dims));

    const st_entry *ein = st_find(&f, "input"), *eout = st_find(&f, "output");
    size_t n = numel(ein);
    float *x = st_data(&f, ein), *want = st_data(&f, eout);
    float *y = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
    ss2d_const_tensor tx = cten(x, 4, ein->shape);
    ss2d_tensor ty = mten(y, 4, ein->shape), ty2 = mten(y2, 4, ein->shape);

    CHECK_OK(ss2d_layer_forward(layer, &tx, &ty, NULL));
    expect_close("output", cse, y, want, n, 1e-5);
    ss2d_exec host = exec_host();
    CHECK_OK(ss2d_layer_forward(layer, &tx, &ty2, &host));
    expect_same("output (parallel_for)", cse, y2, y, n);
    ss2d_exec pool = exec_pool(2);
    memset(y2, 0, n * sizeof(float));
    CHECK_OK(ss2d_layer_forward(layer, &tx, &ty2, &pool));
    expect_same("output (pool)", cse, y2, y, n);

    printf("ok   layer %-50s (%s, %s, d_model=%zu d_inner=%zu d_state=%zu)\n", cse,
           cfg.forward_type, dims.channel_first ? "channel-first" : "channel-last",
           dims.d_model, dims.d_inner, dims.d_state);
    ss2d_layer_free(layer);
    free(x); free(want); free(y); free(y2);
    st_close(&f);
}

/* ------------------------------------------------------------------------------------------ */

typedef void (*case_fn)(const char *, const char *);

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs `fn` on every .safetensors file of dir/sub, in name order. Returns the count. */
static int for_each_case(const char *dir, const char *sub, case_fn fn) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d) { fprintf(stderr, "cannot open %s\n", path); failures++; return 0; }
    char *names[256];
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < 256)
        if (ends_with(ent->d_name, ".safetensors")) names[n++] = strdup(ent->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char file[8192];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        fn(file, names[i]);
        free(names[i]);
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    printf("ss2d %s, built for %s\n", ss2d_version(), ss2d_isa());
    if (ss2d_cpu_check() != SS2D_OK) {
        fprintf(stderr, "%s\n", ss2d_last_error());
        return 1;
    }

    /* An error: the status code and the thread-local message; nothing is written. */
    float one = 1.0f, sentinel = 42.0f;
    size_t shape3[3] = {1, 1, 1}, shape2[2] = {1, 2};
    ss2d_const_tensor t1 = cten(&one, 3, shape3), tA = cten(&one, 2, shape2);
    ss2d_tensor tout = mten(&sentinel, 3, shape3);
    ss2d_scan_inputs bad;
    memset(&bad, 0, sizeof bad);
    bad.u = bad.delta = bad.B = bad.C = &t1;
    bad.A = &tA; /* (1, 2) but B is (batch, dstate=1, seqlen): inconsistent */
    int s = ss2d_selective_scan(&bad, &tout, NULL, NULL);
    printf("a bad call returns %s: %s\n", ss2d_status_name(s), ss2d_last_error());
    if (s != SS2D_BAD_SHAPE || sentinel != 42.0f) failures++;

    int n_scan = for_each_case(argv[1], "selective_scan", scan_case);
    int n_layer = for_each_case(argv[1], "ss2d", layer_case);
    printf("%d selective-scan cases, %d layer cases, %d failures\n", n_scan, n_layer, failures);
    return failures == 0 && n_scan > 0 && n_layer > 0 ? 0 : 1;
}
