/*
 * modelotel.stats._kernel: the hot loops of the statistics and its readers of Python
 * records, scores and texts, compiled.
 *
 * Optional: modelotel works without it (numpy does the same work; see
 * modelotel/stats/kernel.py, which picks one and which the tests hold to the same results).
 * What it buys is measured, not assumed (benchmarks/stats.py, section 4): inside an
 * instrumented call every numpy operation costs ~1 us of cold interpreter and numpy code,
 * and a window's row buffer costs ~30 numpy operations to reduce. Here one call does each.
 *
 *   stage(in_dst, in_off, x, out_dst, out_off, y, lo, hi) -> bool | None
 *       Write the values of a 2-D float64 or float32 batch ``x`` (any strides: a pandas
 *       frame's block is columns first) as rows of float64 into ``in_dst`` at byte offset
 *       ``in_off``, and those of the scores ``y`` (1-D, or 2-D with k columns; any strides:
 *       ``predict_proba(X)[:, 1]``) into ``out_dst`` at ``out_off``. Returns True when every
 *       score is finite and within [lo[j], hi[j]] for its column j (``lo``, ``hi``: float64
 *       buffers of k values), False otherwise (the caller then finds out which check fired,
 *       with numpy), None without writing anything when ``x`` or ``y`` is not native
 *       float64 / float32 (or ``x`` is not 2-D, or ``y`` has more than 2 dimensions).
 *       Nothing is written on an error.
 *
 *   accumulate(X, n, d, T, K, count, mean, m2, nan, inf, lo, hi, ge) -> None
 *       Reduce the first ``n`` rows of a rows-first float64 buffer ``X`` (``n x d``; a
 *       C-contiguous buffer, or a 2-D array of ``d`` columns whose rows are contiguous but
 *       spaced further apart, such as every k-th row of a batch, read in place):
 *       per column, the count of finite values, their mean and sum of squared deviations
 *       (``count``, ``mean``, ``m2``: overwritten with this batch's), NaN and +-inf counts
 *       (``nan``, ``inf``: added to), min / max of the finite values (``lo``, ``hi``:
 *       folded in), and for each of the ``K`` rows of thresholds ``T`` (``K x d``) the
 *       number of finite values ``>= T[k, j]`` (``ge``, ``K x d``: added to). Thresholds
 *       of a column ascend; +inf pads a column with fewer. The GIL is released meanwhile.
 *
 *   put_records(dst, off, keys, x) -> int
 *       Write one record (a dict) or each record of a list of dicts as a row of float64
 *       into ``dst`` at byte offset ``off``: a record's keys must be ``keys`` (a tuple of
 *       str) in that order, its values floats, ints within int64 or bools. Returns the rows
 *       written, or 0 when ``x`` is anything else (the caller takes the general reader,
 *       which is the reference: what it makes of such records, this makes too).
 *
 *   put_scores(dst, off, y, lo, hi) -> int
 *       Write a float or an int (one row), or a list of them, as float64 into ``dst`` at
 *       ``off``. Returns the rows written when every value is finite and within [lo, hi],
 *       minus the rows when one is not (the caller finds out which check fired), 0 (nothing
 *       to use) when ``y`` is anything else (bools, ints beyond int64, other types).
 *
 *   put_texts(dst, off, x) -> int
 *       Write the descriptors of a str, or of each str of a list, into ``dst`` at ``off``:
 *       per text its characters, words (as ``len(s.split())``), blank (1.0 with no word) and
 *       share of non-ASCII characters. Returns the rows written, or 0 when ``x`` holds
 *       anything but str (the general reader counts those as nulls).
 *
 *       The three read Python objects without running any Python code of theirs (exact
 *       dicts, lists, str, int and float only): inside an instrumented call one compiled
 *       call costs less than the numpy conversions it replaces, whose code is cold there.
 *
 * Every buffer is checked for size, contiguity, writability and (where it matters) the
 * float64 format before anything is read or written.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Rows per block: the block (about BLOCK_VALUES values across all columns, 128 KiB) stays
   in L2 while each column is gathered from it; a column's values (at most MAX_BLOCK_ROWS,
   16 KiB) stay in L1 for the vector loops. Measured per value: 4096 -> 16384 values per
   block took 100 and 200 columns from 2.4-2.7 ns to 1.8 ns, 20 columns unchanged (1.9). */
/* Bump when a function changes its arguments or meaning, or one is added (and kernel.py's ABI). */
#define MODELOTEL_KERNEL_ABI 6

#define BLOCK_VALUES 16384
#define MAX_BLOCK_ROWS 2048

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    defined(__GLIBC__)
/* one AVX2 build of the loops next to the baseline one, chosen at load time (through an
   ifunc: glibc only; gcc refuses target_clones on musl, as in Alpine's python images) */
#define MODELOTEL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MODELOTEL_CLONES
#endif

static int
get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t need, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    if (need >= 0 && view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, %zd needed", what, view->len, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The one-character struct code of the items, in native byte order, or 0. */
static char
native_code(const Py_buffer *view)
{
    const char *f = view->format;
    if (f == NULL) {
        return 0;
    }
    if (f[0] == '@' || f[0] == '=') {
        f++;
    }
#if PY_LITTLE_ENDIAN
    else if (f[0] == '<') {
        f++;
    }
#else
    else if (f[0] == '>' || f[0] == '!') {
        f++;
    }
#endif
    return f[1] == '\0' ? f[0] : 0;
}

static int
is_float64(const Py_buffer *view)
{
    return view->itemsize == 8 && native_code(view) == 'd';
}

static int
is_int64(const Py_buffer *view)
{
    char c = native_code(view);
    return view->itemsize == 8 && (c == 'q' || (c == 'l' && sizeof(long) == 8));
}

/* ---- stage ------------------------------------------------------------------------ */

/* 4 for float32, 8 for float64 (native byte order), 0 for anything else */
static int
float_width(const Py_buffer *view)
{
    char c = native_code(view);
    if (c == 'd' && view->itemsize == 8) {
        return 8;
    }
    if (c == 'f' && view->itemsize == 4) {
        return 4;
    }
    return 0;
}

/* n values of width w (4 or 8) as float64 into dst */
static void
copy_as_float64(double *dst, const void *src, Py_ssize_t n, int w)
{
    if (w == 8) {
        memcpy(dst, src, (size_t)n * 8);
        return;
    }
    const float *f = (const float *)src;
    for (Py_ssize_t i = 0; i < n; i++) {
        dst[i] = (double)f[i];
    }
}

/* The values of a 1-D or 2-D buffer of width w (4 or 8), any strides, as rows of float64
   into dst: one memcpy when C-contiguous, else element by element (a transposing copy for a
   columns-first block; memcpy per value because a strided view need not be aligned). */
static void
copy_strided_as_float64(double *dst, const Py_buffer *v, int w)
{
    if (PyBuffer_IsContiguous(v, 'C')) {
        copy_as_float64(dst, v->buf, v->len / w, w);
        return;
    }
    Py_ssize_t rows = v->shape[0], cols = v->ndim == 2 ? v->shape[1] : 1;
    Py_ssize_t s0 = v->strides[0], s1 = v->ndim == 2 ? v->strides[1] : 0;
    for (Py_ssize_t i = 0; i < rows; i++) {
        const char *r = (const char *)v->buf + i * s0;
        for (Py_ssize_t j = 0; j < cols; j++) {
            if (w == 8) {
                memcpy(dst + i * cols + j, r + j * s1, 8);
            }
            else {
                float f;
                memcpy(&f, r + j * s1, 4);
                dst[i * cols + j] = (double)f;
            }
        }
    }
}

/* Every value of the rows x k block finite and within [lo[j], hi[j]] for its column j?
   (v >= lo) & (v <= hi) is false for NaN; +-inf fail the finite test. */
MODELOTEL_CLONES
static int
scores_ok(const double *y, Py_ssize_t rows, Py_ssize_t k, const double *lo, const double *hi)
{
    int ok = 1;
    if (k == 1) {
        double l = lo[0], h = hi[0];
        for (Py_ssize_t i = 0; i < rows; i++) {
            double v = y[i];
            ok &= (v - v == 0.0) & (v >= l) & (v <= h);
        }
        return ok;
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        const double *r = y + i * k;
        for (Py_ssize_t j = 0; j < k; j++) {
            double v = r[j];
            ok &= (v - v == 0.0) & (v >= lo[j]) & (v <= hi[j]);
        }
    }
    return ok;
}

static PyObject *
stage(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *in_dst, *x, *out_dst, *y, *olo, *ohi;
    Py_ssize_t in_off, out_off;
    if (!PyArg_ParseTuple(args, "OnOOnOOO:stage", &in_dst, &in_off, &x, &out_dst, &out_off,
                          &y, &olo, &ohi)) {
        return NULL;
    }
    Py_buffer vx, vy, vin, vout, vlo, vhi;
    if (PyObject_GetBuffer(x, &vx, PyBUF_RECORDS_RO) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(y, &vy, PyBUF_RECORDS_RO) < 0) {
        PyBuffer_Release(&vx);
        return NULL;
    }
    PyObject *result = NULL;
    int wx = float_width(&vx), wy = float_width(&vy);
    if (wx == 0 || wy == 0 || vx.ndim != 2 || vy.ndim < 1 || vy.ndim > 2) {
        result = Py_None; /* not for this path: the caller takes the general one */
        Py_INCREF(result);
        goto done_xy;
    }
    Py_ssize_t nx = vx.len / wx, ny = vy.len / wy;
    Py_ssize_t k = vy.ndim == 2 ? vy.shape[1] : 1;
    Py_ssize_t rows = k > 0 ? ny / k : 0;
    if (get_buffer(olo, &vlo, 0, k * 8, "lo") < 0) {
        goto done_xy;
    }
    if (get_buffer(ohi, &vhi, 0, k * 8, "hi") < 0) {
        PyBuffer_Release(&vlo);
        goto done_xy;
    }
    if (!is_float64(&vlo) || !is_float64(&vhi)) {
        PyErr_SetString(PyExc_TypeError, "stage: lo and hi must be float64");
        goto done_bounds;
    }
    if (get_buffer(in_dst, &vin, 1, -1, "in_dst") < 0) {
        goto done_bounds;
    }
    if (get_buffer(out_dst, &vout, 1, -1, "out_dst") < 0) {
        PyBuffer_Release(&vin);
        goto done_bounds;
    }
    if (in_off < 0 || out_off < 0 || in_off > vin.len - nx * 8 || out_off > vout.len - ny * 8) {
        PyErr_SetString(PyExc_ValueError, "stage: the batch does not fit the buffer there");
    }
    else {
        double *yd = (double *)((char *)vout.buf + out_off);
        copy_strided_as_float64((double *)((char *)vin.buf + in_off), &vx, wx);
        copy_strided_as_float64(yd, &vy, wy);
        result = PyBool_FromLong(
            scores_ok(yd, rows, k, (const double *)vlo.buf, (const double *)vhi.buf));
    }
    PyBuffer_Release(&vout);
    PyBuffer_Release(&vin);
done_bounds:
    PyBuffer_Release(&vhi);
    PyBuffer_Release(&vlo);
done_xy:
    PyBuffer_Release(&vy);
    PyBuffer_Release(&vx);
    return result;
}

/* ---- accumulate ------------------------------------------------------------------- */

/* Statistics of the c finite values in v (L1-resident): sum, min, max, and the squared
   deviations from their mean (two passes: exact where the one-pass formula cancels). Four
   partial sums let the additions overlap instead of waiting on each other. */
MODELOTEL_CLONES
static void
block_moments(const double *v, Py_ssize_t c, double *sum, double *mn, double *mx, double *q)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    double lo0 = v[0], lo1 = v[0], hi0 = v[0], hi1 = v[0];
    Py_ssize_t i = 0;
    for (; i + 4 <= c; i += 4) {
        s0 += v[i];
        s1 += v[i + 1];
        s2 += v[i + 2];
        s3 += v[i + 3];
        double a = v[i] < v[i + 1] ? v[i] : v[i + 1];
        double b = v[i + 2] < v[i + 3] ? v[i + 2] : v[i + 3];
        double e = v[i] > v[i + 1] ? v[i] : v[i + 1];
        double f = v[i + 2] > v[i + 3] ? v[i + 2] : v[i + 3];
        lo0 = a < lo0 ? a : lo0;
        lo1 = b < lo1 ? b : lo1;
        hi0 = e > hi0 ? e : hi0;
        hi1 = f > hi1 ? f : hi1;
    }
    for (; i < c; i++) {
        s0 += v[i];
        lo0 = v[i] < lo0 ? v[i] : lo0;
        hi0 = v[i] > hi0 ? v[i] : hi0;
    }
    double s = (s0 + s1) + (s2 + s3);
    double m = s / (double)c;
    double q0 = 0, q1 = 0, q2 = 0, q3 = 0;
    i = 0;
    for (; i + 4 <= c; i += 4) {
        double a = v[i] - m, b = v[i + 1] - m, e = v[i + 2] - m, f = v[i + 3] - m;
        q0 += a * a;
        q1 += b * b;
        q2 += e * e;
        q3 += f * f;
    }
    for (; i < c; i++) {
        double a = v[i] - m;
        q0 += a * a;
    }
    *sum = s;
    *mn = lo0 < lo1 ? lo0 : lo1;
    *mx = hi0 > hi1 ? hi0 : hi1;
    *q = (q0 + q1) + (q2 + q3);
}

/* How many of the c values are >= t: a compare and an add per value, vectorized. */
MODELOTEL_CLONES
static int64_t
count_ge(const double *v, Py_ssize_t c, double t)
{
    int64_t g = 0;
    for (Py_ssize_t i = 0; i < c; i++) {
        g += v[i] >= t;
    }
    return g;
}

/* Rows per block for d columns (see BLOCK_VALUES). */
static Py_ssize_t
block_rows(Py_ssize_t d)
{
    Py_ssize_t br = BLOCK_VALUES / d;
    if (br > MAX_BLOCK_ROWS) {
        br = MAX_BLOCK_ROWS;
    }
    return br < 16 ? 16 : br;
}

/* count_ge for four thresholds in one pass: each value is loaded once for the four. */
MODELOTEL_CLONES
static void
count_ge4(const double *v, Py_ssize_t c, double t0, double t1, double t2, double t3,
          int64_t *out)
{
    int64_t g0 = 0, g1 = 0, g2 = 0, g3 = 0;
    for (Py_ssize_t i = 0; i < c; i++) {
        double x = v[i];
        g0 += x >= t0;
        g1 += x >= t1;
        g2 += x >= t2;
        g3 += x >= t3;
    }
    out[0] = g0;
    out[1] = g1;
    out[2] = g2;
    out[3] = g3;
}

/* rs: the row stride of X in values (d when X is C-contiguous). With rs > d (a row sample
   of a batch, usually not in cache) each block's rows are first copied to ``scratch``
   (block_rows(d) x d values): row by row, the loads are independent and the memory
   system fetches many rows at once, where gathering a column straight from spaced rows
   waits on one row after the other (measured on a 50,000-row batch out of cache, 2,048
   rows sampled: 290 us in place, 156 us with numpy's copy first). */
static void
accumulate_impl(const double *X, Py_ssize_t n, Py_ssize_t d, Py_ssize_t rs, double *scratch,
                const double *T, Py_ssize_t K, int64_t *cnt, double *mean, double *m2,
                int64_t *nnan, int64_t *ninf, double *lo, double *hi, int64_t *ge)
{
    double col[MAX_BLOCK_ROWS];
    Py_ssize_t br = block_rows(d);
    for (Py_ssize_t j = 0; j < d; j++) {
        cnt[j] = 0;
        mean[j] = 0.0;
        m2[j] = 0.0;
    }
    for (Py_ssize_t r0 = 0; r0 < n; r0 += br) {
        Py_ssize_t rb = n - r0 < br ? n - r0 : br;
        const double *base = X + r0 * rs;
        if (rs != d) {
            for (Py_ssize_t i = 0; i < rb; i++) {
                memcpy(scratch + i * d, base + i * rs, (size_t)d * 8);
            }
            base = scratch;
        }
        for (Py_ssize_t j = 0; j < d; j++) {
            const double *p = base + j;
            /* gather the column; v - v is 0 for finite values, NaN for NaN and +-inf (an
               integer AND, not a floating-point sum: no 4-cycle chain from value to value) */
            int finite = 1;
            for (Py_ssize_t i = 0; i < rb; i++) {
                double v = p[i * d];
                col[i] = v;
                finite &= v - v == 0.0;
            }
            Py_ssize_t c = rb;
            if (!finite) { /* keep the finite values, count the others */
                c = 0;
                for (Py_ssize_t i = 0; i < rb; i++) {
                    double v = col[i];
                    if (v - v == 0.0) {
                        col[c++] = v;
                    }
                    else if (v != v) {
                        nnan[j]++;
                    }
                    else {
                        ninf[j]++;
                    }
                }
                if (c == 0) {
                    continue;
                }
            }
            double s, mn, mx, q;
            block_moments(col, c, &s, &mn, &mx, &q);
            if (mn < lo[j]) {
                lo[j] = mn;
            }
            if (mx > hi[j]) {
                hi[j] = mx;
            }
            /* Chan et al.: merge this block's (c, mean, M2) into the batch's */
            int64_t na = cnt[j], nt = na + (int64_t)c;
            double bm = s / (double)c;
            double delta = bm - mean[j];
            mean[j] += delta * ((double)c / (double)nt);
            m2[j] += q + delta * delta * ((double)na * ((double)c / (double)nt));
            cnt[j] = nt;
            const double *t = T + j;
            int64_t *g = ge + j;
            /* the block's min and max settle the thresholds outside them without a pass:
               every value is >= one at or below the min, none >= one above the max (nor,
               ascending, >= any after it) */
            Py_ssize_t k = 0;
            for (; k < K && t[k * d] <= mn; k++) {
                g[k * d] += (int64_t)c;
            }
            Py_ssize_t end = k; /* the thresholds in (mn, mx]: a NaN one ends them too */
            while (end < K && t[end * d] <= mx) {
                end++;
            }
            for (; k + 4 <= end; k += 4) {
                int64_t a[4];
                count_ge4(col, c, t[k * d], t[(k + 1) * d], t[(k + 2) * d], t[(k + 3) * d], a);
                for (int q = 0; q < 4; q++) {
                    g[(k + q) * d] += a[q];
                }
            }
            for (; k < end; k++) {
                g[k * d] += count_ge(col, c, t[k * d]);
            }
        }
    }
}

/* The rows of X, a read-only view of n rows of d float64 values: a C-contiguous buffer,
   or a 2-D array with d columns, contiguous rows and a positive row stride that is a whole
   number of values (a row sample such as X[::k] of a C-contiguous batch). Returns the row
   stride in values, or -1 with an exception set (nothing held). */
static Py_ssize_t
rows_view(PyObject *obj, Py_buffer *view, Py_ssize_t n, Py_ssize_t d)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        return -1;
    }
    Py_ssize_t rs = -1;
    if (PyBuffer_IsContiguous(view, 'C')) {
        if (view->len < n * d * 8) {
            PyErr_Format(PyExc_ValueError, "X: %zd bytes, %zd needed", view->len, n * d * 8);
        }
        else {
            rs = d;
        }
    }
    else if (view->ndim != 2 || view->shape[1] != d || view->strides[1] != 8 ||
             view->strides[0] < 8 * d || view->strides[0] % 8 != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "X: not C-contiguous, nor d contiguous columns in evenly spaced rows");
    }
    else if (view->shape[0] < n) {
        PyErr_Format(PyExc_ValueError, "X: %zd rows, %zd needed", view->shape[0], n);
    }
    else {
        rs = view->strides[0] / 8;
    }
    if (rs < 0) {
        PyBuffer_Release(view);
    }
    return rs;
}

static PyObject *
accumulate(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *oX, *oT, *o[8];
    Py_ssize_t n, d, K;
    if (!PyArg_ParseTuple(args, "OnnOnOOOOOOOO:accumulate", &oX, &n, &d, &oT, &K, &o[0], &o[1],
                          &o[2], &o[3], &o[4], &o[5], &o[6], &o[7])) {
        return NULL;
    }
    if (n < 0 || d < 1 || K < 0 || (n > 0 && d > PY_SSIZE_T_MAX / 8 / n) ||
        (K > 0 && d > PY_SSIZE_T_MAX / 8 / K)) {
        PyErr_SetString(PyExc_ValueError, "accumulate: bad n, d or K");
        return NULL;
    }
    static const char *names[8] = {"count", "mean", "m2", "nan", "inf", "lo", "hi", "ge"};
    Py_buffer vX, vT, v[8];
    int got = 0;
    PyObject *result = NULL;
    Py_ssize_t rs = rows_view(oX, &vX, n, d);
    if (rs < 0) {
        return NULL;
    }
    if (get_buffer(oT, &vT, 0, K * d * 8, "T") < 0) {
        PyBuffer_Release(&vX);
        return NULL;
    }
    if (!is_float64(&vX) || !is_float64(&vT)) {
        PyErr_SetString(PyExc_TypeError, "accumulate: X and T must be float64");
        goto done;
    }
    for (; got < 8; got++) {
        Py_ssize_t need = (got == 7 ? K : 1) * d * 8;
        if (get_buffer(o[got], &v[got], 1, need, names[got]) < 0) {
            goto done;
        }
        /* count, nan, inf, ge: int64; mean, m2, lo, hi: float64 */
        int want_int = got == 0 || got == 3 || got == 4 || got == 7;
        if (want_int ? !is_int64(&v[got]) : !is_float64(&v[got])) {
            PyErr_Format(PyExc_TypeError, "accumulate: %s must be %s", names[got],
                         want_int ? "int64" : "float64");
            got++;
            goto done;
        }
    }
    double *scratch = NULL;
    if (rs != d && n > 0) {
        scratch = PyMem_Malloc((size_t)block_rows(d) * (size_t)d * 8);
        if (scratch == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    accumulate_impl((const double *)vX.buf, n, d, rs, scratch, (const double *)vT.buf, K,
                    (int64_t *)v[0].buf,
                    (double *)v[1].buf, (double *)v[2].buf, (int64_t *)v[3].buf,
                    (int64_t *)v[4].buf, (double *)v[5].buf, (double *)v[6].buf,
                    (int64_t *)v[7].buf);
    Py_END_ALLOW_THREADS
    PyMem_Free(scratch);
    result = Py_None;
    Py_INCREF(result);
done:
    for (int i = 0; i < got; i++) {
        PyBuffer_Release(&v[i]);
    }
    PyBuffer_Release(&vT);
    PyBuffer_Release(&vX);
    return result;
}

/* ---- put_records / put_scores / put_texts ----------------------------------------- */

/* An exact int as a double when it fits int64 (numpy's int64), else 0. */
static int
int64_value(PyObject *v, double *out)
{
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) {
        return 0;
    }
    *out = (double)n;
    return 1;
}

/* A record's value as a double: a float, an int within int64, a bool; 0 for anything else
   (None, str, an int beyond int64, numpy scalars but float64: what numpy's own conversion
   would make another dtype of, or refuse). Runs no Python code. */
static int
record_value(PyObject *v, double *out)
{
    if (PyFloat_Check(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        return int64_value(v, out);
    }
    if (v == Py_True || v == Py_False) {
        *out = v == Py_True ? 1.0 : 0.0;
        return 1;
    }
    return 0;
}

/* Whether k and want are exact str of the same characters. Each request's records are
   parsed anew, so their keys are other objects than the plan's: compared here inline
   (length, kind, bytes), without a call of PyUnicode_Compare per key. */
static inline int
same_str(PyObject *k, PyObject *want)
{
    if (k == want) {
        return 1;
    }
    if (!PyUnicode_CheckExact(k) || !PyUnicode_CheckExact(want)) {
        return 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(k);
    int kind = PyUnicode_KIND(k);
    return n == PyUnicode_GET_LENGTH(want) && kind == (int)PyUnicode_KIND(want)
           && memcmp(PyUnicode_DATA(k), PyUnicode_DATA(want), (size_t)n * (size_t)kind) == 0;
}

/* One record's d values in the order of keys into row; 0 if it is not such a record. */
static int
record_row(PyObject *rec, PyObject *keys, Py_ssize_t d, double *row)
{
    if (!PyDict_CheckExact(rec) || PyDict_GET_SIZE(rec) != d) {
        return 0;
    }
    Py_ssize_t pos = 0, j = 0;
    PyObject *k, *v;
    while (j < d && PyDict_Next(rec, &pos, &k, &v)) {
        if (!same_str(k, PyTuple_GET_ITEM(keys, j))) {
            return 0;
        }
        if (!record_value(v, &row[j])) {
            return 0;
        }
        j++;
    }
    return j == d;
}

/* The output buffer at off for n float64 values (borrowed into *view), or NULL with an
   exception set. */
static double *
place(PyObject *dst, Py_ssize_t off, Py_ssize_t n, Py_buffer *view, const char *who)
{
    if (get_buffer(dst, view, 1, -1, who) < 0) {
        return NULL;
    }
    if (off < 0 || n > view->len / 8 || off > view->len - n * 8) {
        PyErr_Format(PyExc_ValueError, "%s: the rows do not fit the buffer there", who);
        PyBuffer_Release(view);
        return NULL;
    }
    return (double *)((char *)view->buf + off);
}

static PyObject *
put_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4 || !PyTuple_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "put_records(dst, off, keys: tuple, x)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *keys = args[2], *x = args[3];
    Py_ssize_t d = PyTuple_GET_SIZE(keys);
    int one = PyDict_CheckExact(x);
    Py_ssize_t rows = one ? 1 : (PyList_CheckExact(x) ? PyList_GET_SIZE(x) : 0);
    if (rows == 0 || d == 0 || rows > PY_SSIZE_T_MAX / 8 / d) {
        return PyLong_FromLong(0);
    }
    Py_buffer view;
    double *out = place(args[0], off, rows * d, &view, "put_records");
    if (out == NULL) {
        return NULL;
    }
    int ok = 1;
    if (one) {
        ok = record_row(x, keys, d, out);
    }
    else {
        for (Py_ssize_t i = 0; ok && i < rows; i++) {
            ok = record_row(PyList_GET_ITEM(x, i), keys, d, out + i * d);
        }
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(ok ? rows : 0);
}

/* A score as a double: an exact float, or an exact int within int64 (not a bool). */
static int
score_value(PyObject *v, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        return int64_value(v, out);
    }
    return 0;
}

static PyObject *
put_scores(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "put_scores(dst, off, y, lo, hi)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred()) {
        return NULL;
    }
    double lo = PyFloat_AsDouble(args[3]), hi = PyFloat_AsDouble(args[4]);
    if ((lo == -1.0 || hi == -1.0) && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *y = args[2];
    int list = PyList_CheckExact(y);
    Py_ssize_t rows = list ? PyList_GET_SIZE(y) : 1;
    if (rows == 0) {
        return PyLong_FromLong(0);
    }
    Py_buffer view;
    double *out = place(args[0], off, rows, &view, "put_scores");
    if (out == NULL) {
        return NULL;
    }
    int usable = 1, ok = 1;
    for (Py_ssize_t i = 0; usable && i < rows; i++) {
        double v = 0.0;
        usable = score_value(list ? PyList_GET_ITEM(y, i) : y, &v);
        out[i] = v;
        ok &= (v - v == 0.0) & (v >= lo) & (v <= hi);
    }
    PyBuffer_Release(&view);
    if (!usable) {
        return PyLong_FromLong(0);
    }
    return PyLong_FromSsize_t(ok ? rows : -rows);
}

/* The descriptors of one str into row (see put_texts), as Python computes them. */
static void
describe_text(PyObject *s, double *row)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), words = 0, high = 0;
    int kind = PyUnicode_KIND(s), in_word = 0;
    const void *data = PyUnicode_DATA(s);
    int ascii = PyUnicode_IS_ASCII(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        /* str.split()'s whitespace */
        int space = Py_UNICODE_ISSPACE(ch);
        words += !space && !in_word;
        in_word = !space;
        high += ch > 127;
    }
    row[0] = (double)n;
    row[1] = (double)words;
    row[2] = words ? 0.0 : 1.0;
    row[3] = ascii ? 0.0 : (double)high / (double)n;
}

static PyObject *
put_texts(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "put_texts(dst, off, x)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *x = args[2];
    int one = PyUnicode_CheckExact(x);
    Py_ssize_t rows = one ? 1 : (PyList_CheckExact(x) ? PyList_GET_SIZE(x) : 0);
    if (rows == 0 || rows > PY_SSIZE_T_MAX / 32) {
        return PyLong_FromLong(0);
    }
    for (Py_ssize_t i = 0; !one && i < rows; i++) {
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(x, i))) {
            return PyLong_FromLong(0);
        }
    }
    Py_buffer view;
    double *out = place(args[0], off, rows * 4, &view, "put_texts");
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        describe_text(one ? x : PyList_GET_ITEM(x, i), out + 4 * i);
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(rows);
}

static PyMethodDef methods[] = {
    {"stage", stage, METH_VARARGS,
     "stage(in_dst, in_off, x, out_dst, out_off, y, lo, hi) -> bool | None: write a float64 / "
     "float32 batch and its scores as float64 into the row buffers; True if every score is "
     "finite and within its column's [lo, hi]; None (nothing written) if x or y is not "
     "C-contiguous native float64 / float32."},
    {"accumulate", accumulate, METH_VARARGS,
     "accumulate(X, n, d, T, K, count, mean, m2, nan, inf, lo, hi, ge) -> None: reduce the "
     "first n rows of a rows-first float64 buffer (see the module source)."},
    {"put_records", (PyCFunction)(void (*)(void))put_records, METH_FASTCALL,
     "put_records(dst, off, keys, x) -> int: a dict record or a list of them as float64 "
     "rows (0: not such records; see the module source)."},
    {"put_scores", (PyCFunction)(void (*)(void))put_scores, METH_FASTCALL,
     "put_scores(dst, off, y, lo, hi) -> int: a float / int or a list of them as float64; "
     "rows if all finite and in [lo, hi], -rows if not, 0 if not such values."},
    {"put_texts", (PyCFunction)(void (*)(void))put_texts, METH_FASTCALL,
     "put_texts(dst, off, x) -> int: the descriptors of a str or a list of str as rows of "
     "4 float64 (0: not such texts)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel",
    "The statistics' hot loops and readers, compiled (optional: see modelotel.stats.kernel).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    PyObject *m = PyModule_Create(&module);
    /* the calling convention of stage / accumulate: modelotel.stats.kernel uses the module
       only when it matches (a stale build from an older checkout falls back to numpy) */
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", MODELOTEL_KERNEL_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
