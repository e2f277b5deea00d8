/* The arithmetic of models/state.py:AccountState.learn_one, in C.
 *
 * The Python method stays the definition; this is an optional, faster route to the same bytes
 * (tests/test_native.py checks the states are identical after whole simulated streams). It works
 * on the state's two packed arrays in place: ``num`` (float32 counters, stored scaled by
 * exp((t - base_ms) / tau)) and ``sketch`` (int64 rings and sketches). Each float32 update is done
 * in double and rounded once on store, as Python does through a memoryview.
 *
 * StateCore(layout: dict[str, int]).learn(state, features, model_id) -> None
 *
 * layout names every offset and constant (built by models/state.py from its own constants, so
 * the layout is declared once). tier, created_ms and end users stay in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define N_HORIZONS 3

typedef struct {
    PyObject_HEAD
    int ready;
    /* array sizes and offsets */
    int64_t n_num, n_sketch, n_counters, hour0, day0, gap_mean, gap_var, cap0, n_caps;
    int64_t tau[N_HORIZONS];
    int64_t burst_gap_ms, rebase_after_ms, pivot_history_ms, pivot_recent_ms;
    int64_t skel0, wrap0, ring, kmv0, kmv_k, topfp0, topn0, top_k, model0, max_models, ask0, ask_ring;
    /* counters */
    int64_t c_requests, c_reasoning, c_grader, c_logprob, c_bias, c_long_out, c_truncated,
            c_repeat_skeleton, c_template_fill, c_errors, c_fresh, c_burst, c_new_model,
            c_long_answer, c_short_answer, c_padded, c_in_tokens, c_out_tokens;
} StateCore;

typedef struct { const char *name; Py_ssize_t offset; } Field;

#define F(x) {#x, offsetof(StateCore, x)}
static const Field fields[] = {
    F(n_num), F(n_sketch), F(n_counters), F(hour0), F(day0), F(gap_mean), F(gap_var), F(cap0), F(n_caps),
    {"tau_short", offsetof(StateCore, tau)}, {"tau_hour", offsetof(StateCore, tau) + sizeof(int64_t)},
    {"tau_day", offsetof(StateCore, tau) + 2 * sizeof(int64_t)},
    F(burst_gap_ms), F(rebase_after_ms), F(pivot_history_ms), F(pivot_recent_ms),
    F(skel0), F(wrap0), F(ring), F(kmv0), F(kmv_k), F(topfp0), F(topn0), F(top_k), F(model0), F(max_models),
    F(ask0), F(ask_ring),
    F(c_requests), F(c_reasoning), F(c_grader), F(c_logprob), F(c_bias), F(c_long_out), F(c_truncated),
    F(c_repeat_skeleton), F(c_template_fill), F(c_errors), F(c_fresh), F(c_burst), F(c_new_model),
    F(c_long_answer), F(c_short_answer), F(c_padded), F(c_in_tokens), F(c_out_tokens),
    {NULL, 0},
};
#undef F

static int
StateCore_init(StateCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"layout", NULL};
    PyObject *layout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyDict_Type, &layout))
        return -1;
    for (const Field *f = fields; f->name; f++) {
        PyObject *v = PyDict_GetItemString(layout, f->name);
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "layout has no %s", f->name);
            return -1;
        }
        long long x = PyLong_AsLongLong(v);
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (x < 0) {
            PyErr_Format(PyExc_ValueError, "layout %s is negative", f->name);
            return -1;
        }
        *(int64_t *)((char *)self + f->offset) = x;
    }
    if (PyDict_Size(layout) != (Py_ssize_t)(sizeof(fields) / sizeof(fields[0]) - 1)) {
        PyErr_SetString(PyExc_ValueError, "layout has names StateCore does not read");
        return -1;
    }
    /* every index the arithmetic touches must lie inside the arrays */
    int64_t counters_end = self->day0 + self->n_counters;
    if (counters_end > self->n_num || self->cap0 + self->n_caps > self->n_num || self->gap_var >= self->n_num ||
            self->gap_mean >= self->n_num || self->skel0 + self->ring > self->n_sketch ||
            self->wrap0 + self->ring > self->n_sketch || self->kmv0 + self->kmv_k > self->n_sketch ||
            self->topfp0 + self->top_k > self->n_sketch || self->topn0 + self->top_k > self->n_sketch ||
            self->model0 + 2 * self->max_models > self->n_sketch || self->ask0 + self->ask_ring > self->n_sketch ||
            self->ring < 1 || self->kmv_k < 1 || self->top_k < 1 || self->ask_ring < 1 ||
            self->tau[0] < 1 || self->tau[1] < 1 || self->tau[2] < 1 || self->kmv_k > 4096) {
        PyErr_SetString(PyExc_ValueError, "layout: an offset lies outside the arrays");
        return -1;
    }
    self->ready = 1;
    return 0;
}

static int
holds(const int64_t *sketch, int64_t start, int64_t n, int64_t value)
{
    for (int64_t i = start; i < start + n; i++)
        if (sketch[i] == value)
            return 1;
    return 0;
}

static int
cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* state.AccountState._kmv_add */
static void
kmv_add(StateCore *self, int64_t *sketch, int64_t h)
{
    int64_t *kmv = sketch + self->kmv0, k = self->kmv_k;
    int64_t last = kmv[k - 1];
    if ((last && h >= last) || h == 0)
        return;
    int64_t kept[4097];
    int64_t n = 0;
    for (int64_t i = 0; i < k; i++) {
        if (kmv[i] == h)
            return;
        if (kmv[i])
            kept[n++] = kmv[i];
    }
    kept[n++] = h;
    qsort(kept, n, sizeof(int64_t), cmp_int64);
    if (n > k)
        n = k;
    memcpy(kmv, kept, n * sizeof(int64_t));
}

/* state.AccountState._top_add (Space-Saving) */
static void
top_add(StateCore *self, int64_t *sketch, int64_t fp)
{
    int64_t *fps = sketch + self->topfp0, *ns = sketch + self->topn0;
    for (int64_t i = 0; i < self->top_k; i++)
        if (fps[i] == fp) {
            ns[i] += 1;
            return;
        }
    int64_t low = 0;
    for (int64_t i = 1; i < self->top_k; i++)
        if (ns[i] < ns[low])
            low = i;
    fps[low] = fp;
    ns[low] += 1;
}

/* state.AccountState._model_is_new */
static int
model_is_new(StateCore *self, int64_t *sketch, int64_t mid, int64_t ts, int64_t first_ms)
{
    int64_t first_use = ts;
    for (int64_t i = self->model0; i < self->model0 + 2 * self->max_models; i += 2) {
        if (sketch[i] == mid) {
            first_use = sketch[i + 1];
            break;
        }
        if (sketch[i] == 0) {
            sketch[i] = mid;
            sketch[i + 1] = ts;
            break;
        }
    }
    return first_use - first_ms >= self->pivot_history_ms && ts - first_use <= self->pivot_recent_ms;
}

/* state.AccountState._ask_is_new */
static int
ask_is_new(StateCore *self, int64_t *sketch, int64_t fp)
{
    if (holds(sketch, self->ask0, self->ask_ring, fp))
        return 0;
    memmove(sketch + self->ask0, sketch + self->ask0 + 1, (self->ask_ring - 1) * sizeof(int64_t));
    sketch[self->ask0 + self->ask_ring - 1] = fp;
    return 1;
}

/* the attributes read and written, interned once */
static PyObject *s_num, *s_sketch, *s_events, *s_first_ms, *s_last_ms, *s_base_ms, *s_ts_ms, *s_skeleton_fp,
    *s_wrapper_fp, *s_unrelated_ask, *s_reasoning, *s_grader, *s_logprob_probe, *s_logit_bias_size,
    *s_long_output, *s_truncated, *s_error, *s_fresh, *s_long_answer, *s_short_answer, *s_input_tokens,
    *s_output_tokens, *s_capability;

static int
get_int64(PyObject *obj, PyObject *name, int64_t *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static int
get_truth(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

static int
get_double(PyObject *obj, PyObject *name, double *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    if (v == Py_None) {   /* no count: adds nothing, as ``if v:`` skips it in Python */
        Py_DECREF(v);
        *out = 0.0;
        return 0;
    }
    double x = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (x == -1.0 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static int
set_int64(PyObject *obj, PyObject *name, int64_t value)
{
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL)
        return -1;
    int r = PyObject_SetAttr(obj, name, v);
    Py_DECREF(v);
    return r;
}

static int
writable(PyObject *state, PyObject *name, Py_buffer *view, const char *format, Py_ssize_t itemsize, int64_t n)
{
    PyObject *arr = PyObject_GetAttr(state, name);
    if (arr == NULL)
        return -1;
    int r = PyObject_GetBuffer(arr, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS);
    Py_DECREF(arr);   /* the buffer holds its own reference */
    if (r < 0)
        return -1;
    if (view->itemsize != itemsize || strcmp(view->format, format) != 0 || view->len != n * itemsize) {
        PyErr_Format(PyExc_ValueError, "state.%U: expected %lld items of format %s", name, (long long)n, format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
StateCore_learn(StateCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "learn(state, features, model_id)");
        return NULL;
    }
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "StateCore is not initialised");
        return NULL;
    }
    PyObject *state = args[0], *f = args[1];
    int64_t mid = PyLong_AsLongLong(args[2]);
    if (mid == -1 && PyErr_Occurred())
        return NULL;
    /* read everything first: an error leaves the state untouched */
    int64_t events, first_ms, last_ms, base_ms, ts, sk, wr, ask, capability;
    double input_tokens, output_tokens;
    if (get_int64(state, s_events, &events) || get_int64(state, s_first_ms, &first_ms) ||
            get_int64(state, s_last_ms, &last_ms) || get_int64(state, s_base_ms, &base_ms) ||
            get_int64(f, s_ts_ms, &ts) || get_int64(f, s_skeleton_fp, &sk) || get_int64(f, s_wrapper_fp, &wr) ||
            get_int64(f, s_unrelated_ask, &ask) || get_int64(f, s_capability, &capability) ||
            get_double(f, s_input_tokens, &input_tokens) || get_double(f, s_output_tokens, &output_tokens))
        return NULL;
    int flag[10];
    PyObject *flag_names[10] = {s_reasoning, s_grader, s_logprob_probe, s_logit_bias_size, s_long_output,
                                s_truncated, s_error, s_fresh, s_long_answer, s_short_answer};
    for (int i = 0; i < 10; i++)
        if ((flag[i] = get_truth(f, flag_names[i])) < 0)
            return NULL;
    if (capability < 0 || capability >= self->n_caps) {
        PyErr_Format(PyExc_IndexError, "capability %lld out of range", (long long)capability);
        return NULL;
    }
    Py_buffer nv, sv;
    if (writable(state, s_num, &nv, "f", 4, self->n_num) < 0)
        return NULL;
    if (writable(state, s_sketch, &sv, "q", 8, self->n_sketch) < 0) {
        PyBuffer_Release(&nv);
        return NULL;
    }
    float *num = nv.buf;
    int64_t *sketch = sv.buf;

    int burst = 0;
    if (events == 0) {
        first_ms = last_ms = base_ms = ts;
    } else if (ts >= last_ms) {
        int64_t gap = ts - last_ms;
        burst = gap < self->burst_gap_ms;
        double d = log10((double)gap / 1000.0 + 1e-3) - (double)num[self->gap_mean];
        num[self->gap_mean] = (float)((double)num[self->gap_mean] + 0.1 * d);
        num[self->gap_var] = (float)(0.9 * ((double)num[self->gap_var] + 0.1 * d * d));
        last_ms = ts;
        if (ts - base_ms > self->rebase_after_ms) {   /* AccountState._rebase */
            int64_t dt = ts - base_ms;
            for (int h = 0; h < N_HORIZONS; h++) {
                double k = exp((double)(-dt) / (double)self->tau[h]);
                for (int64_t i = h * self->n_counters; i < (h + 1) * self->n_counters; i++)
                    num[i] = (float)((double)num[i] * k);
            }
            double k = exp((double)(-dt) / (double)self->tau[N_HORIZONS - 1]);
            for (int64_t i = self->cap0; i < self->cap0 + self->n_caps; i++)
                num[i] = (float)((double)num[i] * k);
            base_ms = ts;
        }
    }
    events += 1;
    int repeat_skeleton = holds(sketch, self->skel0, self->ring, sk);
    int template_fill = !repeat_skeleton && sk != wr && holds(sketch, self->wrap0, self->ring, wr);
    int64_t slot = events % self->ring;
    sketch[self->skel0 + slot] = sk;
    sketch[self->wrap0 + slot] = wr;
    if (!repeat_skeleton)
        kmv_add(self, sketch, sk);
    top_add(self, sketch, wr);
    int new_model = model_is_new(self, sketch, mid, ts, first_ms);
    int padded = ask != 0 && ask_is_new(self, sketch, ask);

    int64_t ones[18];
    int n = 0;
    ones[n++] = self->c_requests;
    int64_t by_flag[10] = {self->c_reasoning, self->c_grader, self->c_logprob, self->c_bias, self->c_long_out,
                           self->c_truncated, self->c_errors, self->c_fresh, self->c_long_answer,
                           self->c_short_answer};
    for (int i = 0; i < 10; i++)
        if (flag[i])
            ones[n++] = by_flag[i];
    if (repeat_skeleton)
        ones[n++] = self->c_repeat_skeleton;
    if (template_fill)
        ones[n++] = self->c_template_fill;
    if (burst)
        ones[n++] = self->c_burst;
    if (new_model)
        ones[n++] = self->c_new_model;
    if (padded)
        ones[n++] = self->c_padded;
    int64_t dt = ts - base_ms;
    double w0 = exp((double)dt / (double)self->tau[0]), w1 = exp((double)dt / (double)self->tau[1]),
           w2 = exp((double)dt / (double)self->tau[2]);
    for (int j = 0; j < n; j++) {
        int64_t i = ones[j];
        num[i] = (float)((double)num[i] + w0);
        num[i + self->hour0] = (float)((double)num[i + self->hour0] + w1);
        num[i + self->day0] = (float)((double)num[i + self->day0] + w2);
    }
    int64_t token_counters[2] = {self->c_in_tokens, self->c_out_tokens};
    double token_values[2] = {input_tokens, output_tokens};
    for (int j = 0; j < 2; j++) {
        double v = token_values[j];
        if (v != 0.0) {
            int64_t i = token_counters[j];
            num[i] = (float)((double)num[i] + w0 * v);
            num[i + self->hour0] = (float)((double)num[i + self->hour0] + w1 * v);
            num[i + self->day0] = (float)((double)num[i + self->day0] + w2 * v);
        }
    }
    num[self->cap0 + capability] = (float)((double)num[self->cap0 + capability] + w2);
    PyBuffer_Release(&nv);
    PyBuffer_Release(&sv);
    if (set_int64(state, s_events, events) || set_int64(state, s_first_ms, first_ms) ||
            set_int64(state, s_last_ms, last_ms) || set_int64(state, s_base_ms, base_ms))
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef StateCore_methods[] = {
    {"learn", (PyCFunction)(void (*)(void))StateCore_learn, METH_FASTCALL,
     "learn(state, features, model_id): AccountState.learn_one's arrays and times, in place"},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject StateCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.models._statecore.StateCore",
    .tp_doc = "AccountState.learn_one's arithmetic over the state's packed arrays.",
    .tp_basicsize = sizeof(StateCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)StateCore_init,
    .tp_methods = StateCore_methods,
};

static struct PyModuleDef statecore_module = {
    PyModuleDef_HEAD_INIT, "_statecore", "The native per-account state update of distillguard.", -1, NULL,
};

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC
PyInit__statecore(void)
{
    INTERN(s_num, "num"); INTERN(s_sketch, "sketch"); INTERN(s_events, "events"); INTERN(s_first_ms, "first_ms");
    INTERN(s_last_ms, "last_ms"); INTERN(s_base_ms, "base_ms"); INTERN(s_ts_ms, "ts_ms");
    INTERN(s_skeleton_fp, "skeleton_fp"); INTERN(s_wrapper_fp, "wrapper_fp"); INTERN(s_unrelated_ask, "unrelated_ask");
    INTERN(s_reasoning, "reasoning"); INTERN(s_grader, "grader"); INTERN(s_logprob_probe, "logprob_probe");
    INTERN(s_logit_bias_size, "logit_bias_size"); INTERN(s_long_output, "long_output");
    INTERN(s_truncated, "truncated"); INTERN(s_error, "error"); INTERN(s_fresh, "fresh");
    INTERN(s_long_answer, "long_answer"); INTERN(s_short_answer, "short_answer");
    INTERN(s_input_tokens, "input_tokens"); INTERN(s_output_tokens, "output_tokens");
    INTERN(s_capability, "capability");
    if (PyType_Ready(&StateCoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&statecore_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&StateCoreType);
    if (PyModule_AddObject(m, "StateCore", (PyObject *)&StateCoreType) < 0) {
        Py_DECREF(&StateCoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
