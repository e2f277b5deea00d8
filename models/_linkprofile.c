/* Cross-account linking in C: the link observer's per-account profile (models/linking.py:_Profile)
 * and per-request loop (LinkObserver.observe), and the per-key linker (Linker.process, below).
 *
 * The Python stays the definition; this is an optional, faster route to the same values
 * (tests/test_link_profile.py checks identical observations, summaries, evidence and profiles
 * after whole streams, under small bounds, and after random call sequences). Same arithmetic in
 * the same order, in double: the day decay is exp() of the same quotient (Python's int / int of
 * two exactly representable numbers is one IEEE division), the summary's numbers are rounded as
 * Python's round() rounds them (round_to), and keys are compared as Python compares them.
 *
 * configure(n_topics, topic_names, day_ms, net_ring, wrappers_kept, tails_kept) once per
 * process (linking.py), then Profile(ts) with the methods and attributes of _Profile,
 * Observer(...) (below) for an observer's loop and LinkerCore(...) for a linker's
 * (tests/test_linker_core.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_namedtuple.h"
#include <math.h>
#include <string.h>

#define MAX_TOPICS 32
#define MAX_RING 8

static int n_topics = -1, net_ring, wrappers_kept, tails_kept;
static long long day_ms;
static PyObject *topic_names;          /* tuple of str: the summary's topic keys */
static PyObject *round_fn, *two, *three, *four;
static PyObject *k_n, *k_rd, *k_r, *k_tp, *k_t, *k_first, *k_created, *k_tier, *k_nets;
static PyObject *k_dedupe_ms, *k_novel_wrap_budget;

typedef struct {
    PyObject_HEAD
    long long first, last, n, budget_t, budget;
    double req, reasoning, template_;
    double topics[MAX_TOPICS];
    unsigned long long seen;           /* bit t: topic t seen (the Python dict has the key) */
    PyObject *wrappers[MAX_RING + 1];  /* recent wrapper fingerprints, oldest first */
    int n_wrappers;
    PyObject *tails[MAX_RING + 1];     /* recent wrapper keys, oldest first */
    int n_tails;
    PyObject *nets[MAX_RING + 1];      /* networks and when last used, in insertion order */
    long long net_ts[MAX_RING + 1];
    int n_nets;
} Profile;

static int
ready(void)
{
    if (n_topics < 0) {
        PyErr_SetString(PyExc_RuntimeError, "_linkprofile.configure() was not called");
        return 0;
    }
    return 1;
}

static void
Profile_dealloc(Profile *self)
{
    for (int i = 0; i < self->n_wrappers; i++)
        Py_DECREF(self->wrappers[i]);
    for (int i = 0; i < self->n_tails; i++)
        Py_DECREF(self->tails[i]);
    for (int i = 0; i < self->n_nets; i++)
        Py_DECREF(self->nets[i]);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Profile_init(Profile *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ts", NULL};
    long long ts;
    if (!ready() || !PyArg_ParseTupleAndKeywords(args, kwds, "L", kwlist, &ts))
        return -1;
    if (self->n_wrappers || self->n_tails || self->n_nets) {
        PyErr_SetString(PyExc_RuntimeError, "a Profile is initialised once");
        return -1;
    }
    self->first = self->last = ts;
    self->n = self->budget_t = self->budget = 0;
    self->req = self->reasoning = self->template_ = 0.0;
    memset(self->topics, 0, sizeof(self->topics));
    self->seen = 0;
    return 0;
}

/* 1 if x is in ring[0..n) (identity, then ==: Python's ``in``), 0 if not, -1 on error */
static int
in_ring(PyObject **ring, int n, PyObject *x)
{
    for (int i = 0; i < n; i++) {
        if (ring[i] == x)
            return 1;
        int eq = PyObject_RichCompareBool(ring[i], x, Py_EQ);
        if (eq != 0)
            return eq;
    }
    return 0;
}

/* ``ring.append(x); del ring[:-kept]`` */
static void
push(PyObject **ring, int *n, int kept, PyObject *x)
{
    Py_INCREF(x);
    ring[(*n)++] = x;
    while (*n > kept) {
        Py_DECREF(ring[0]);
        memmove(ring, ring + 1, (size_t)(*n - 1) * sizeof(PyObject *));
        (*n)--;
    }
}

static PyObject *
Profile_learn(Profile *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "learn(feats, ts)");
        return NULL;
    }
    PyObject *feats = args[0];
    long long ts = PyLong_AsLongLong(args[1]);
    if (ts == -1 && PyErr_Occurred())
        return NULL;
    PyObject *reasoning = NULL, *topic = NULL, *w = NULL;
    if (feats != Py_None) {   /* read everything before changing anything */
        if (!PyTuple_Check(feats) || PyTuple_GET_SIZE(feats) != 3) {
            PyErr_SetString(PyExc_TypeError, "feats must be (reasoning, topic, wrapper_fp) or None");
            return NULL;
        }
        reasoning = PyTuple_GET_ITEM(feats, 0);
        topic = PyTuple_GET_ITEM(feats, 1);
        w = PyTuple_GET_ITEM(feats, 2);
    }
    double r = 0.0;
    long long t = -1;
    if (reasoning != NULL) {
        r = PyFloat_AsDouble(reasoning);
        if (r == -1.0 && PyErr_Occurred())
            return NULL;
        if (topic != Py_None) {
            if (!PyLong_Check(topic)) {
                PyErr_SetString(PyExc_TypeError, "topic must be an int or None");
                return NULL;
            }
            int overflow;
            t = PyLong_AsLongLongAndOverflow(topic, &overflow);
            if (overflow || t < 0 || t >= n_topics)
                t = -1;
        }
    }
    int repeated = 0;
    if (w != NULL && w != Py_None) {
        repeated = in_ring(self->wrappers, self->n_wrappers, w);
        if (repeated < 0)
            return NULL;
    }
    if (ts > self->last) {
        double d = exp((double)(-(ts - self->last)) / (double)day_ms);
        self->req *= d;
        self->reasoning *= d;
        self->template_ *= d;
        for (int i = 0; i < n_topics; i++)
            if (self->seen >> i & 1)
                self->topics[i] *= d;
        self->last = ts;
    }
    self->n += 1;
    self->req += 1.0;
    if (reasoning == NULL)
        Py_RETURN_NONE;
    self->reasoning += r;
    if (t >= 0) {
        self->topics[t] += 1.0;   /* a topic not seen yet holds 0.0: get(topic, 0.0) + 1.0 */
        self->seen |= 1ULL << t;
    }
    if (w != Py_None) {
        if (repeated)
            self->template_ += 1.0;
        else
            push(self->wrappers, &self->n_wrappers, wrappers_kept, w);
    }
    Py_RETURN_NONE;
}

static int
long_attr(PyObject *obj, PyObject *name, long long *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *
Profile_allow_wrap(Profile *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "allow_wrap(k, ts, cfg)");
        return NULL;
    }
    PyObject *k = args[0];
    long long ts = PyLong_AsLongLong(args[1]), dedupe_ms, budget_max;
    if (ts == -1 && PyErr_Occurred())
        return NULL;
    int repeated = in_ring(self->tails, self->n_tails, k);
    if (repeated < 0)
        return NULL;
    if (repeated)
        Py_RETURN_TRUE;
    if (long_attr(args[2], k_dedupe_ms, &dedupe_ms) < 0 || long_attr(args[2], k_novel_wrap_budget, &budget_max) < 0)
        return NULL;
    push(self->tails, &self->n_tails, tails_kept, k);
    if (ts - self->budget_t >= dedupe_ms) {
        self->budget_t = ts;
        self->budget = 0;
    }
    if (self->budget >= budget_max)
        Py_RETURN_FALSE;
    self->budget += 1;
    Py_RETURN_TRUE;
}

static PyObject *
Profile_saw_network(Profile *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "saw_network(net, ts)");
        return NULL;
    }
    PyObject *net = args[0];
    long long ts = PyLong_AsLongLong(args[1]);
    if (ts == -1 && PyErr_Occurred())
        return NULL;
    for (int i = 0; i < self->n_nets; i++) {
        int eq = self->nets[i] == net ? 1 : PyObject_RichCompareBool(self->nets[i], net, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq) {   /* ring[net] = max(ts, ring[net]) */
            if (ts > self->net_ts[i])
                self->net_ts[i] = ts;
            Py_RETURN_NONE;
        }
    }
    Py_INCREF(net);
    self->nets[self->n_nets] = net;
    self->net_ts[self->n_nets++] = ts > 0 ? ts : 0;   /* max(ts, 0) */
    if (self->n_nets > net_ring) {   /* the least (last use, network) goes */
        int least = 0;
        for (int i = 1; i < self->n_nets; i++) {
            if (self->net_ts[i] != self->net_ts[least]) {
                if (self->net_ts[i] < self->net_ts[least])
                    least = i;
                continue;
            }
            int lt = PyObject_RichCompareBool(self->nets[i], self->nets[least], Py_LT);
            if (lt < 0)
                return NULL;
            if (lt)
                least = i;
        }
        Py_DECREF(self->nets[least]);
        memmove(self->nets + least, self->nets + least + 1, (size_t)(self->n_nets - least - 1) * sizeof(PyObject *));
        memmove(self->net_ts + least, self->net_ts + least + 1, (size_t)(self->n_nets - least - 1) * sizeof(long long));
        self->n_nets--;
    }
    Py_RETURN_NONE;
}

/* round(x, digits) as Python rounds (digits 2, 3 or 4): a new reference.
 *
 * Python rounds the exact binary value of x half-even to a decimal string and converts that back
 * (correctly rounded). Here y = x * 10^digits is within half an ulp of the exact product, so where
 * y is farther than that from a half-integer, the exact product rounds to the integer y rounds to,
 * r; and r / 10^digits (two exact doubles: one correctly rounded division) is the double nearest
 * that decimal, as Python's conversion gives. Near a half-integer (a tie or nearly one), beyond
 * 2^52 or not finite, Python's round() itself decides. tests/test_link_profile.py compares the two
 * on random and near-tie values. */
static PyObject *
round_to(double x, int digits)
{
    static const double scale[] = {1.0, 10.0, 100.0, 1000.0, 10000.0};
    double y = x * scale[digits];
    if (isfinite(y) && fabs(y) < 0x1p52) {
        double r = nearbyint(y);
        if (fabs(fabs(y - r) - 0.5) > fabs(y) * 0x1p-50)
            return PyFloat_FromDouble(r / scale[digits]);
    }
    PyObject *f = PyFloat_FromDouble(x);
    if (f == NULL)
        return NULL;
    PyObject *call_args[2] = {f, digits == 2 ? two : digits == 3 ? three : four};
    PyObject *out = PyObject_Vectorcall(round_fn, call_args, 2, NULL);
    Py_DECREF(f);
    return out;
}

/* round(x, digits) for the tests: the rounding summary() and the linker use */
static PyObject *
round_digits(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyFloat_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "round_digits(x: float, digits: 2, 3 or 4)");
        return NULL;
    }
    long digits = PyLong_AsLong(args[1]);
    if (digits < 2 || digits > 4) {
        PyErr_SetString(PyExc_ValueError, "digits must be 2, 3 or 4");
        return NULL;
    }
    return round_to(PyFloat_AS_DOUBLE(args[0]), (int)digits);
}

/* d[key] = value, stealing value */
static int
put(PyObject *d, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *
Profile_summary(Profile *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "summary(ts, created, tier, net_window_ms)");
        return NULL;
    }
    long long ts = PyLong_AsLongLong(args[0]);
    if (ts == -1 && PyErr_Occurred())
        return NULL;
    long long window = PyLong_AsLongLong(args[3]);
    if (window == -1 && PyErr_Occurred())
        return NULL;
    double req = self->req;
    PyObject *out = PyDict_New(), *t = NULL;
    if (out == NULL)
        return NULL;
    if (put(out, k_n, PyLong_FromLongLong(self->n)) < 0 || put(out, k_rd, round_to(req, 2)) < 0
        || put(out, k_r, req != 0.0 ? round_to(self->reasoning / req, 3) : PyFloat_FromDouble(0.0)) < 0
        || put(out, k_tp, req != 0.0 ? round_to(self->template_ / req, 3) : PyFloat_FromDouble(0.0)) < 0)
        goto fail;
    if ((t = PyDict_New()) == NULL)
        goto fail;
    for (int i = 0; i < n_topics; i++)
        if ((self->seen >> i & 1) && self->topics[i] >= 0.01
            && put(t, PyTuple_GET_ITEM(topic_names, i), round_to(self->topics[i], 2)) < 0)
            goto fail;
    int rc = PyDict_SetItem(out, k_t, t);
    Py_CLEAR(t);
    if (rc < 0)
        goto fail;
    long long nets = 0;
    for (int i = 0; i < self->n_nets; i++)
        nets += ts - self->net_ts[i] <= window;
    if (put(out, k_first, PyLong_FromLongLong(self->first)) < 0 || PyDict_SetItem(out, k_created, args[1]) < 0
        || PyDict_SetItem(out, k_tier, args[2]) < 0 || put(out, k_nets, PyLong_FromLongLong(nets)) < 0)
        goto fail;
    return out;
fail:
    Py_XDECREF(t);
    Py_DECREF(out);
    return NULL;
}

static PyObject *
ring_list(PyObject **ring, int n)
{
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        Py_INCREF(ring[i]);
        PyList_SET_ITEM(out, i, ring[i]);
    }
    return out;
}

static PyObject *
Profile_get_topics(Profile *self, void *closure)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int i = 0; i < n_topics; i++) {
        if (!(self->seen >> i & 1))
            continue;
        PyObject *key = PyLong_FromLong(i);
        if (key == NULL || put(out, key, PyFloat_FromDouble(self->topics[i])) < 0) {
            Py_XDECREF(key);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(key);
    }
    return out;
}

static PyObject *
Profile_get_nets(Profile *self, void *closure)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int i = 0; i < self->n_nets; i++)
        if (put(out, self->nets[i], PyLong_FromLongLong(self->net_ts[i])) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    return out;
}

static PyObject *Profile_get_wrappers(Profile *self, void *c) { return ring_list(self->wrappers, self->n_wrappers); }
static PyObject *Profile_get_tails(Profile *self, void *c) { return ring_list(self->tails, self->n_tails); }
static PyObject *Profile_get_first(Profile *self, void *c) { return PyLong_FromLongLong(self->first); }
static PyObject *Profile_get_last(Profile *self, void *c) { return PyLong_FromLongLong(self->last); }
static PyObject *Profile_get_n(Profile *self, void *c) { return PyLong_FromLongLong(self->n); }
static PyObject *Profile_get_budget_t(Profile *self, void *c) { return PyLong_FromLongLong(self->budget_t); }
static PyObject *Profile_get_budget(Profile *self, void *c) { return PyLong_FromLongLong(self->budget); }
static PyObject *Profile_get_req(Profile *self, void *c) { return PyFloat_FromDouble(self->req); }
static PyObject *Profile_get_reasoning(Profile *self, void *c) { return PyFloat_FromDouble(self->reasoning); }
static PyObject *Profile_get_template(Profile *self, void *c) { return PyFloat_FromDouble(self->template_); }

/* pickling (replay --jobs 2 sends the cross-account stages to a child process):
 * Profile(first) then __setstate__((last, n, req, reasoning, template, topics, wrappers, nets,
 * wrap_tails, budget_t, budget)), the attributes' values */
static PyObject *
Profile_reduce(Profile *self, PyObject *unused)
{
    PyObject *topics = Profile_get_topics(self, NULL), *wrappers = Profile_get_wrappers(self, NULL);
    PyObject *nets = Profile_get_nets(self, NULL), *tails = Profile_get_tails(self, NULL);
    PyObject *out = NULL;
    if (topics && wrappers && nets && tails)
        out = Py_BuildValue("O(L)(LLdddOOOOLL)", (PyObject *)Py_TYPE(self), self->first, self->last, self->n,
                            self->req, self->reasoning, self->template_, topics, wrappers, nets, tails,
                            self->budget_t, self->budget);
    Py_XDECREF(topics);
    Py_XDECREF(wrappers);
    Py_XDECREF(nets);
    Py_XDECREF(tails);
    return out;
}

/* ring[0..n) from a list of at most kept items */
static int
ring_from(PyObject *list, PyObject **ring, int *n, int kept)
{
    if (!PyList_Check(list) || PyList_GET_SIZE(list) > kept) {
        PyErr_SetString(PyExc_ValueError, "a ring must be a list within its bound");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++)
        push(ring, n, kept, PyList_GET_ITEM(list, i));
    return 0;
}

static PyObject *
Profile_setstate(Profile *self, PyObject *state)
{
    long long last, n, budget_t, budget;
    double req, reasoning, template_;
    PyObject *topics, *wrappers, *nets, *tails;
    if (!PyArg_ParseTuple(state, "LLdddO!O!O!O!LL", &last, &n, &req, &reasoning, &template_, &PyDict_Type, &topics,
                          &PyList_Type, &wrappers, &PyDict_Type, &nets, &PyList_Type, &tails, &budget_t, &budget))
        return NULL;
    if (self->n_wrappers || self->n_tails || self->n_nets || self->seen || PyDict_GET_SIZE(nets) > net_ring) {
        PyErr_SetString(PyExc_ValueError, "__setstate__ needs a fresh Profile and a state within its bounds");
        return NULL;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(topics, &pos, &key, &value)) {
        long t = PyLong_AsLong(key);
        double v = PyFloat_AsDouble(value);
        if (PyErr_Occurred())
            return NULL;
        if (t < 0 || t >= n_topics) {
            PyErr_SetString(PyExc_ValueError, "a topic out of range");
            return NULL;
        }
        self->topics[t] = v;
        self->seen |= 1ULL << t;
    }
    pos = 0;
    while (PyDict_Next(nets, &pos, &key, &value)) {
        long long ts = PyLong_AsLongLong(value);
        if (ts == -1 && PyErr_Occurred())
            return NULL;
        Py_INCREF(key);
        self->nets[self->n_nets] = key;
        self->net_ts[self->n_nets++] = ts;
    }
    if (ring_from(wrappers, self->wrappers, &self->n_wrappers, wrappers_kept) < 0
        || ring_from(tails, self->tails, &self->n_tails, tails_kept) < 0)
        return NULL;
    self->last = last;
    self->n = n;
    self->req = req;
    self->reasoning = reasoning;
    self->template_ = template_;
    self->budget_t = budget_t;
    self->budget = budget;
    Py_RETURN_NONE;
}

static PyGetSetDef Profile_getset[] = {
    {"first", (getter)Profile_get_first, NULL, NULL, NULL},
    {"last", (getter)Profile_get_last, NULL, NULL, NULL},
    {"n", (getter)Profile_get_n, NULL, NULL, NULL},
    {"req", (getter)Profile_get_req, NULL, NULL, NULL},
    {"reasoning", (getter)Profile_get_reasoning, NULL, NULL, NULL},
    {"template", (getter)Profile_get_template, NULL, NULL, NULL},
    {"topics", (getter)Profile_get_topics, NULL, "a copy: topic -> decayed count", NULL},
    {"wrappers", (getter)Profile_get_wrappers, NULL, "a copy", NULL},
    {"nets", (getter)Profile_get_nets, NULL, "a copy: network -> last use", NULL},
    {"wrap_tails", (getter)Profile_get_tails, NULL, "a copy", NULL},
    {"budget_t", (getter)Profile_get_budget_t, NULL, NULL, NULL},
    {"budget", (getter)Profile_get_budget, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Profile_methods[] = {
    {"learn", (PyCFunction)(void (*)(void))Profile_learn, METH_FASTCALL, "learn(feats, ts)"},
    {"allow_wrap", (PyCFunction)(void (*)(void))Profile_allow_wrap, METH_FASTCALL, "allow_wrap(k, ts, cfg) -> bool"},
    {"saw_network", (PyCFunction)(void (*)(void))Profile_saw_network, METH_FASTCALL, "saw_network(net, ts)"},
    {"summary", (PyCFunction)(void (*)(void))Profile_summary, METH_FASTCALL,
     "summary(ts, created, tier, net_window_ms) -> dict"},
    {"__reduce__", (PyCFunction)Profile_reduce, METH_NOARGS, "pickling"},
    {"__setstate__", (PyCFunction)Profile_setstate, METH_O, "pickling"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProfileType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.models._linkprofile.Profile",
    .tp_basicsize = sizeof(Profile),
    .tp_flags = Py_TPFLAGS_DEFAULT,   /* holds str and int only: no cycles through it */
    .tp_doc = "linking._Profile in C: the same values.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Profile_init,
    .tp_dealloc = (destructor)Profile_dealloc,
    .tp_methods = Profile_methods,
    .tp_getset = Profile_getset,
};


/* ---- the observer's per-request loop (linking.LinkObserver.observe) ------------------------
 *
 * Observer(profiles, sent, link_memos, dedupe_ms, cfg, link_fn, observation_cls, max_accounts,
 *          max_sent, slow_dedupe_ms, profile_idle_ms).observe(record) -> list of observations
 *
 * The same steps as the Python method, on the observer's own objects: its OrderedDicts are
 * read with PyDict_GetItem (an OrderedDict is a dict) and changed only through their own
 * methods and item assignment, so their order is kept as Python keeps it. A memo miss calls
 * back into Python (link_fn: LinkObserver._link).
 */
static PyObject *s_move_to_end, *s_popitem, *s_summary, *s_net, *s_wrap, *s_last;
static PyObject *s_slow_dedupe_ms, *s_profile_idle_ms, *s_net_window_ms;
static PyObject *kw_last;   /* ("last",): popitem(last=False) */

typedef struct {
    PyObject_HEAD
    PyObject *profiles, *sent, *link_memos, *dedupe_ms, *cfg, *link_fn, *observation_cls;
    /* for wrap links made here: the wrap kind's key memo map, LinkObserver._key_of, the wrap link
     * memo's put; all NULL where _link makes every link */
    PyObject *wrap_keys, *key_fn, *wrap_put;
    Py_ssize_t max_accounts, max_sent, memo_chars, wrap_tokens;
    long long slow_dedupe_ms, profile_idle_ms, net_window_ms;
} Observer;

static int
Observer_traverse(Observer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->profiles);
    Py_VISIT(self->sent);
    Py_VISIT(self->link_memos);
    Py_VISIT(self->dedupe_ms);
    Py_VISIT(self->cfg);
    Py_VISIT(self->link_fn);
    Py_VISIT(self->observation_cls);
    Py_VISIT(self->wrap_keys);
    Py_VISIT(self->key_fn);
    Py_VISIT(self->wrap_put);
    return 0;
}

static int
Observer_clear(Observer *self)
{
    Py_CLEAR(self->profiles);
    Py_CLEAR(self->sent);
    Py_CLEAR(self->link_memos);
    Py_CLEAR(self->dedupe_ms);
    Py_CLEAR(self->cfg);
    Py_CLEAR(self->link_fn);
    Py_CLEAR(self->observation_cls);
    Py_CLEAR(self->wrap_keys);
    Py_CLEAR(self->key_fn);
    Py_CLEAR(self->wrap_put);
    return 0;
}

static void
Observer_dealloc(Observer *self)
{
    PyObject_GC_UnTrack(self);
    Observer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Observer_init(Observer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"profiles", "sent", "link_memos", "dedupe_ms", "cfg", "link_fn", "observation_cls",
                             "max_accounts", "max_sent", "wrap_keys", "key_fn", "wrap_put", "memo_chars",
                             "wrap_tokens", NULL};
    PyObject *profiles, *sent, *link_memos, *dedupe_ms, *cfg, *link_fn, *observation_cls;
    PyObject *wrap_keys = NULL, *key_fn = NULL, *wrap_put = NULL;
    Py_ssize_t max_accounts, max_sent, memo_chars = 0, wrap_tokens = 0;
    long long slow, idle, window;
    if (!ready() || !PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!O!OOOnn|O!OOnn", kwlist, &PyDict_Type, &profiles,
                                                 &PyDict_Type, &sent, &PyDict_Type, &link_memos, &PyDict_Type,
                                                 &dedupe_ms, &cfg, &link_fn, &observation_cls, &max_accounts,
                                                 &max_sent, &PyDict_Type, &wrap_keys, &key_fn, &wrap_put,
                                                 &memo_chars, &wrap_tokens))
        return -1;
    if (wrap_keys != NULL && (key_fn == NULL || !PyCallable_Check(key_fn) || wrap_put == NULL
                              || !PyCallable_Check(wrap_put) || memo_chars < 0 || wrap_tokens < 1)) {
        PyErr_SetString(PyExc_TypeError, "wrap_keys needs callable key_fn and wrap_put, memo_chars >= 0 and "
                        "wrap_tokens >= 1");
        return -1;
    }
    if (!PyCallable_Check(link_fn) || !PyCallable_Check(observation_cls)) {
        PyErr_SetString(PyExc_TypeError, "link_fn and observation_cls must be callable");
        return -1;
    }
    if (long_attr(cfg, s_slow_dedupe_ms, &slow) < 0 || long_attr(cfg, s_profile_idle_ms, &idle) < 0
        || long_attr(cfg, s_net_window_ms, &window) < 0)
        return -1;
    Observer_clear(self);
    PyObject **slots[] = {&self->profiles, &self->sent, &self->link_memos, &self->dedupe_ms, &self->cfg,
                          &self->link_fn, &self->observation_cls};
    PyObject *values[] = {profiles, sent, link_memos, dedupe_ms, cfg, link_fn, observation_cls};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(values[i]);
        *slots[i] = values[i];
    }
    if (wrap_keys != NULL) {
        Py_INCREF(wrap_keys);
        Py_INCREF(key_fn);
        Py_INCREF(wrap_put);
        self->wrap_keys = wrap_keys;
        self->key_fn = key_fn;
        self->wrap_put = wrap_put;
    }
    self->memo_chars = memo_chars;
    self->wrap_tokens = wrap_tokens;
    self->max_accounts = max_accounts;
    self->max_sent = max_sent;
    self->slow_dedupe_ms = slow;
    self->profile_idle_ms = idle;
    self->net_window_ms = window;
    return 0;
}

/* od.popitem(last=False), the result dropped */
static int
pop_oldest(PyObject *od)
{
    PyObject *call_args[2] = {od, Py_False};
    PyObject *r = PyObject_VectorcallMethod(s_popitem, call_args, 1, kw_last);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
move_to_end(PyObject *od, PyObject *key)
{
    PyObject *r = PyObject_CallMethodOneArg(od, s_move_to_end, key);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* the first value of an OrderedDict (its least recently used entry), a new reference; NULL
 * with no error if it is empty */
static PyObject *
first_value(PyObject *od)
{
    PyObject *it = PyObject_GetIter(od);
    if (it == NULL)
        return NULL;
    PyObject *key = PyIter_Next(it);
    Py_DECREF(it);
    if (key == NULL)
        return NULL;
    PyObject *value = PyObject_GetItem(od, key);
    Py_DECREF(key);
    return value;
}

/* LinkObserver._forget(now) */
static int
forget(Observer *self, long long now)
{
    for (;;) {
        Py_ssize_t n = PyObject_Length(self->sent);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (n <= self->max_sent) {
            PyObject *v = first_value(self->sent);
            if (v == NULL)
                return PyErr_Occurred() ? -1 : 0;
            long long first = PyLong_AsLongLong(v);
            Py_DECREF(v);
            if (first == -1 && PyErr_Occurred())
                return -1;
            if (now - first < self->slow_dedupe_ms)
                break;
        }
        if (pop_oldest(self->sent) < 0)
            return -1;
    }
    for (;;) {
        PyObject *p = first_value(self->profiles);
        if (p == NULL)
            return PyErr_Occurred() ? -1 : 0;
        long long last;
        if (Py_IS_TYPE(p, &ProfileType))
            last = ((Profile *)p)->last;
        else {
            int rc = long_attr(p, s_last, &last);
            if (rc < 0) {
                Py_DECREF(p);
                return -1;
            }
        }
        Py_DECREF(p);
        if (now - last < self->profile_idle_ms)
            return 0;
        if (pop_oldest(self->profiles) < 0)
            return -1;
    }
}

#define MAX_WRAP_TOKENS 32

/* str.isalnum() of an ASCII character (text.words' tokens are runs of these) */
static inline int
ascii_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* linking._wrapper_of(tail) of an ASCII tail: its tokens (runs of ASCII letters and digits,
 * lower-cased: text.words) but the first, which may be cut; the last ``n`` of them, a token that
 * starts with a digit masked to "0", joined by spaces; None if fewer than ``n``. A new reference. */
static PyObject *
ascii_wrapper(PyObject *tail, Py_ssize_t n)
{
    const char *text = (const char *)PyUnicode_DATA(tail);
    Py_ssize_t len = PyUnicode_GET_LENGTH(tail), starts[MAX_WRAP_TOKENS + 1], ends[MAX_WRAP_TOKENS + 1], count = 0;
    if (n > MAX_WRAP_TOKENS)
        Py_RETURN_NOTIMPLEMENTED;
    /* the last n tokens, found from the end; ``seen`` counts every token of the tail */
    /* from the end: the last n tokens, plus one before them (then the first, which is dropped,
     * is not among them) */
    for (Py_ssize_t i = len; i > 0 && count < n + 1;) {
        while (i > 0 && !ascii_alnum(text[i - 1]))
            i--;
        if (i == 0)
            break;
        ends[count] = i;
        while (i > 0 && ascii_alnum(text[i - 1]))
            i--;
        starts[count++] = i;
    }
    if (count < n + 1)
        Py_RETURN_NONE;   /* fewer than n tokens after the first */
    char out[1024];
    Py_ssize_t size = 0;
    for (Py_ssize_t k = n - 1; k >= 0; k--) {   /* in text order */
        Py_ssize_t a = starts[k], b = ends[k];
        int digit = text[a] <= '9';   /* t[0] <= "9": a token that starts with a digit is masked */
        if (size + (digit ? 1 : b - a) + 1 > (Py_ssize_t)sizeof out)
            Py_RETURN_NOTIMPLEMENTED;   /* longer than the buffer: the Python does it */
        if (digit)
            out[size++] = '0';
        else
            for (Py_ssize_t j = a; j < b; j++)
                out[size++] = (char)(text[j] | (text[j] >= 'A' && text[j] <= 'Z' ? 32 : 0));
        if (k)
            out[size++] = ' ';
    }
    return PyUnicode_FromStringAndSize(out, size);
}

/* LinkObserver._link for the wrap kind, where it can run in C (an ASCII tail whose wrapper fits);
 * NotImplemented where the Python must */
static PyObject *
wrap_link(Observer *self, PyObject *raw)
{
    if (!PyUnicode_CheckExact(raw) || !PyUnicode_IS_ASCII(raw))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *value = ascii_wrapper(raw, self->wrap_tokens), *key = NULL;
    if (value == NULL || value == Py_NotImplemented)
        return value;
    if (value == Py_None) {
        key = Py_None;
        Py_INCREF(key);
    }
    else {
        key = PyDict_GetItemWithError(self->wrap_keys, value);
        if (key != NULL) {   /* Memo.get: a hit is now the most recently used */
            Py_INCREF(key);
            if (move_to_end(self->wrap_keys, value) < 0)
                Py_CLEAR(key);
        }
        else if (!PyErr_Occurred()) {
            PyObject *key_args[2] = {s_wrap, value};
            key = PyObject_Vectorcall(self->key_fn, key_args, 2, NULL);
        }
        if (key == NULL) {
            Py_DECREF(value);
            return NULL;
        }
    }
    PyObject *link = PyTuple_Pack(2, value, key);
    Py_DECREF(value);
    Py_DECREF(key);
    if (link != NULL && PyUnicode_GET_LENGTH(raw) <= self->memo_chars) {   /* as _link remembers it */
        PyObject *put_args[2] = {raw, link};
        PyObject *r = PyObject_Vectorcall(self->wrap_put, put_args, 2, NULL);
        if (r == NULL)
            Py_CLEAR(link);
        Py_XDECREF(r);
    }
    return link;
}

/* the (value, key) link of one raw input, borrowed from the memo or new from link_fn; *owned
 * says which (the caller releases an owned one) */
static PyObject *
link_of(Observer *self, PyObject *kind, PyObject *raw, int *owned)
{
    *owned = 0;
    PyObject *memo = PyDict_GetItemWithError(self->link_memos, kind);
    if (memo == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_KeyError, "no link memo for kind %R", kind);
        return NULL;
    }
    PyObject *link = PyDict_GetItemWithError(memo, raw);
    if (link != NULL) {
        Py_INCREF(link);   /* move_to_end runs Python-level code paths: hold it */
        if (move_to_end(memo, raw) < 0) {
            Py_DECREF(link);
            return NULL;
        }
        *owned = 1;
        return link;
    }
    if (PyErr_Occurred())
        return NULL;
    if (self->wrap_keys != NULL && PyUnicode_Compare(kind, s_wrap) == 0) {
        link = wrap_link(self, raw);
        if (link != Py_NotImplemented) {
            if (link != NULL)
                *owned = 1;
            return link;
        }
        Py_DECREF(link);
    }
    PyObject *call_args[2] = {kind, raw};
    link = PyObject_Vectorcall(self->link_fn, call_args, 2, NULL);
    if (link != NULL)
        *owned = 1;
    return link;
}

static PyObject *
Observer_observe(Observer *self, PyObject *record)
{
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 8) {
        PyErr_SetString(PyExc_TypeError, "observe(record): a LinkRecord");
        return NULL;
    }
    PyObject *account = PyTuple_GET_ITEM(record, 0), *ts_obj = PyTuple_GET_ITEM(record, 1);
    PyObject *event_id = PyTuple_GET_ITEM(record, 2), *model = PyTuple_GET_ITEM(record, 3);
    PyObject *created = PyTuple_GET_ITEM(record, 4), *tier = PyTuple_GET_ITEM(record, 5);
    PyObject *inputs = PyTuple_GET_ITEM(record, 6), *feats = PyTuple_GET_ITEM(record, 7);
    long long ts = PyLong_AsLongLong(ts_obj);
    if (ts == -1 && PyErr_Occurred())
        return NULL;
    PyObject *prof = PyDict_GetItemWithError(self->profiles, account);   /* then a new reference */
    if (prof == NULL) {
        if (PyErr_Occurred())
            return NULL;
        prof = PyObject_CallOneArg((PyObject *)&ProfileType, ts_obj);
        if (prof == NULL)
            return NULL;
        Py_ssize_t n;
        if (PyObject_SetItem(self->profiles, account, prof) < 0 || (n = PyObject_Length(self->profiles)) < 0
            || (n > self->max_accounts && pop_oldest(self->profiles) < 0)) {
            Py_DECREF(prof);
            return NULL;
        }
    }
    else {
        if (!Py_IS_TYPE(prof, &ProfileType)) {
            PyErr_SetString(PyExc_TypeError, "the compiled observer keeps compiled profiles only");
            return NULL;
        }
        Py_INCREF(prof);
        if (move_to_end(self->profiles, account) < 0) {
            Py_DECREF(prof);
            return NULL;
        }
    }
    PyObject *out = NULL, *seq = NULL, *learned = NULL;
    PyObject *learn_args[2] = {feats, ts_obj};
    learned = Profile_learn((Profile *)prof, learn_args, 2);
    if (learned == NULL)
        goto fail;
    Py_DECREF(learned);
    if ((out = PyList_New(0)) == NULL || (seq = PySequence_Fast(inputs, "inputs must be a sequence")) == NULL)
        goto fail;
    Py_ssize_t n_inputs = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n_inputs; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "an input must be a (kind, raw) pair");
            goto fail;
        }
        PyObject *kind = PyTuple_GET_ITEM(pair, 0), *raw = PyTuple_GET_ITEM(pair, 1);
        int owned;
        PyObject *link = link_of(self, kind, raw, &owned);
        if (link == NULL)
            goto fail;
        if (!PyTuple_Check(link) || PyTuple_GET_SIZE(link) != 2) {
            Py_DECREF(link);
            PyErr_SetString(PyExc_TypeError, "a link must be a (value, key) pair");
            goto fail;
        }
        PyObject *value = PyTuple_GET_ITEM(link, 0), *k = PyTuple_GET_ITEM(link, 1);
        Py_INCREF(value);
        Py_INCREF(k);
        Py_DECREF(link);
        int skip = k == Py_None;
        PyObject *dk = NULL;
        if (!skip && PyUnicode_Compare(kind, s_net) == 0) {
            PyObject *net_args[2] = {value, ts_obj};
            PyObject *r = Profile_saw_network((Profile *)prof, net_args, 2);
            if (r == NULL)
                goto fail_link;
            Py_DECREF(r);
        }
        if (!skip) {
            if ((dk = PyTuple_Pack(2, account, k)) == NULL)
                goto fail_link;
            PyObject *last = PyDict_GetItemWithError(self->sent, dk);
            if (last == NULL && PyErr_Occurred())
                goto fail_link;
            if (last != NULL) {
                PyObject *window = PyDict_GetItemWithError(self->dedupe_ms, kind);
                if (window == NULL) {
                    if (!PyErr_Occurred())
                        PyErr_Format(PyExc_KeyError, "no dedupe window for kind %R", kind);
                    goto fail_link;
                }
                long long last_ts = PyLong_AsLongLong(last), w = PyLong_AsLongLong(window);
                if (PyErr_Occurred())
                    goto fail_link;
                skip = ts - last_ts < w;
            }
        }
        if (!skip && PyUnicode_Compare(kind, s_wrap) == 0) {
            PyObject *wrap_args[3] = {k, ts_obj, self->cfg};
            PyObject *allowed = Profile_allow_wrap((Profile *)prof, wrap_args, 3);
            if (allowed == NULL)
                goto fail_link;
            skip = allowed == Py_False;
            Py_DECREF(allowed);
        }
        if (!skip) {
            if (PyObject_SetItem(self->sent, dk, ts_obj) < 0 || move_to_end(self->sent, dk) < 0)
                goto fail_link;
            PyObject *obs_args[7] = {account, kind, k, ts_obj, event_id, model, Py_None};
            PyObject *obs = PyObject_Vectorcall(self->observation_cls, obs_args, 7, NULL);
            if (obs == NULL)
                goto fail_link;
            int rc = PyList_Append(out, obs);
            Py_DECREF(obs);
            if (rc < 0)
                goto fail_link;
        }
        Py_XDECREF(dk);
        Py_DECREF(value);
        Py_DECREF(k);
        continue;
    fail_link:
        Py_XDECREF(dk);
        Py_DECREF(value);
        Py_DECREF(k);
        goto fail;
    }
    Py_ssize_t n_out = PyList_GET_SIZE(out);
    if (n_out) {
        PyObject *window = PyLong_FromLongLong(self->net_window_ms);
        if (window == NULL)
            goto fail;
        PyObject *summary_args[4] = {ts_obj, created, tier, window};
        PyObject *summary = Profile_summary((Profile *)prof, summary_args, 4);
        Py_DECREF(window);
        if (summary == NULL)
            goto fail;
        for (Py_ssize_t i = 0; i < n_out; i++)
            if (PyObject_SetAttr(PyList_GET_ITEM(out, i), s_summary, summary) < 0) {
                Py_DECREF(summary);
                goto fail;
            }
        Py_DECREF(summary);
    }
    Py_DECREF(seq);
    Py_DECREF(prof);
    if (forget(self, ts) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
fail:
    Py_XDECREF(seq);
    Py_XDECREF(out);
    Py_DECREF(prof);
    return NULL;
}

static PyMethodDef Observer_methods[] = {
    {"observe", (PyCFunction)Observer_observe, METH_O, "observe(record) -> list of LinkObservation"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ObserverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.models._linkprofile.Observer",
    .tp_basicsize = sizeof(Observer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "linking.LinkObserver.observe's loop in C: the same observations.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Observer_init,
    .tp_dealloc = (destructor)Observer_dealloc,
    .tp_traverse = (traverseproc)Observer_traverse,
    .tp_clear = (inquiry)Observer_clear,
    .tp_methods = Observer_methods,
};

/* ---- stage 2: the per-key linker (linking.Linker.process) ---------------------------------
 *
 * LinkerCore(linker, keys, key_cls, cfg, account_hash, partner_cls, evidence_cls, anchors, recent,
 *            max_keys).process(obs) -> PairEvidence or None
 *
 * The same steps as the Python method, on the linker's own objects: ``keys`` (an OrderedDict,
 * changed only through its own methods and item assignment), its _Key objects (their slots, read
 * and set as attributes) and their anchor and recent lists. Integers are compared as Python
 * compares them: in 64 bits where both fit, otherwise with Python's own operators, so a message
 * with an odd timestamp from the wire gives what the Python gives. Partners are built only for a
 * message that returns evidence.
 */
static PyObject *s_kind, *s_anchors, *s_recent, *s_last_ts, *s_evicted, *s_key, *s_account, *s_ts_ms;
static PyObject *s_event_id, *s_model, *s_base_weight, *s_ref_card, *s_min_weight, *s_pair_window_ms;
static PyObject *s_sync_ms, *s_key_ttl_ms;

typedef struct {
    PyObject_HEAD
    PyObject *linker, *keys, *key_cls, *cfg, *account_hash, *partner_cls, *evidence_cls;
    PyObject *window_obj, *sync_obj, *ttl_obj;
    PyObject *base_weight, *ref_card;   /* the config's per-kind dicts (it is frozen: read once) */
    long long window, sync_ms, ttl;
    double min_weight;
    Py_ssize_t anchors, recent, max_keys;
} LinkerCore;

static int
LinkerCore_traverse(LinkerCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->linker);
    Py_VISIT(self->keys);
    Py_VISIT(self->key_cls);
    Py_VISIT(self->cfg);
    Py_VISIT(self->account_hash);
    Py_VISIT(self->partner_cls);
    Py_VISIT(self->evidence_cls);
    Py_VISIT(self->base_weight);
    Py_VISIT(self->ref_card);
    return 0;
}

static int
LinkerCore_clear(LinkerCore *self)
{
    Py_CLEAR(self->linker);
    Py_CLEAR(self->keys);
    Py_CLEAR(self->key_cls);
    Py_CLEAR(self->cfg);
    Py_CLEAR(self->account_hash);
    Py_CLEAR(self->partner_cls);
    Py_CLEAR(self->evidence_cls);
    Py_CLEAR(self->window_obj);
    Py_CLEAR(self->sync_obj);
    Py_CLEAR(self->ttl_obj);
    Py_CLEAR(self->base_weight);
    Py_CLEAR(self->ref_card);
    return 0;
}

static void
LinkerCore_dealloc(LinkerCore *self)
{
    PyObject_GC_UnTrack(self);
    LinkerCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
LinkerCore_init(LinkerCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"linker", "keys", "key_cls", "cfg", "account_hash", "partner_cls", "evidence_cls",
                             "anchors", "recent", "max_keys", NULL};
    PyObject *linker, *keys, *key_cls, *cfg, *account_hash, *partner_cls, *evidence_cls;
    Py_ssize_t anchors, recent, max_keys;
    long long window, sync_ms, ttl;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!OOOO!Onnn", kwlist, &linker, &PyDict_Type, &keys, &key_cls,
                                     &cfg, &account_hash, &PyType_Type, &partner_cls, &evidence_cls, &anchors,
                                     &recent, &max_keys))
        return -1;
    if (!plain_tuple_class(partner_cls, 3) || !PyCallable_Check(key_cls)
        || !PyCallable_Check(account_hash) || !PyCallable_Check(evidence_cls) || anchors < 1 || recent < 1) {
        PyErr_SetString(PyExc_TypeError, "LinkerCore: a NamedTuple class of 3 fields for partners, callables, bounds >= 1");
        return -1;
    }
    if (long_attr(cfg, s_pair_window_ms, &window) < 0 || long_attr(cfg, s_sync_ms, &sync_ms) < 0
        || long_attr(cfg, s_key_ttl_ms, &ttl) < 0)
        return -1;
    LinkerCore_clear(self);
    PyObject **slots[] = {&self->linker, &self->keys, &self->key_cls, &self->cfg, &self->account_hash,
                          &self->partner_cls, &self->evidence_cls};
    PyObject *values[] = {linker, keys, key_cls, cfg, account_hash, partner_cls, evidence_cls};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(values[i]);
        *slots[i] = values[i];
    }
    if (!(self->window_obj = PyLong_FromLongLong(window)) || !(self->sync_obj = PyLong_FromLongLong(sync_ms))
        || !(self->ttl_obj = PyLong_FromLongLong(ttl)) || !(self->base_weight = PyObject_GetAttr(cfg, s_base_weight))
        || !(self->ref_card = PyObject_GetAttr(cfg, s_ref_card)))
        return -1;
    PyObject *min_w = PyObject_GetAttr(cfg, s_min_weight);
    if (min_w == NULL)
        return -1;
    self->min_weight = PyFloat_AsDouble(min_w);
    Py_DECREF(min_w);
    if (self->min_weight == -1.0 && PyErr_Occurred())
        return -1;
    self->window = window;
    self->sync_ms = sync_ms;
    self->ttl = ttl;
    self->anchors = anchors;
    self->recent = recent;
    self->max_keys = max_keys;
    return 0;
}

/* an int that fits in 64 bits: 1 and its value; 0 for anything else (Python's arithmetic then) */
static inline int
as_ll(PyObject *v, long long *out)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    return !overflow;   /* an exact int raises nothing here */
}

/* 1 if (a - b) <= limit, else 0 (absolute: |a - b| <= limit); -1 on error. ``x``, ``y``: a's and
 * b's values where ``fits`` (as_ll of both); Python's arithmetic where they or their difference
 * do not fit in 64 bits. */
static int
within_ll(PyObject *a, long long x, PyObject *b, long long y, int fits, long long limit, PyObject *limit_obj,
          int absolute)
{
    long long d;
    if (fits && !__builtin_sub_overflow(x, y, &d) && !(absolute && d == LLONG_MIN))
        return (absolute && d < 0 ? -d : d) <= limit;
    PyObject *diff = PyNumber_Subtract(a, b);
    if (diff != NULL && absolute)
        Py_SETREF(diff, PyNumber_Absolute(diff));
    if (diff == NULL)
        return -1;
    int r = PyObject_RichCompareBool(diff, limit_obj, Py_LE);
    Py_DECREF(diff);
    return r;
}

static int
diff_within(PyObject *a, PyObject *b, long long limit, PyObject *limit_obj, int absolute)
{
    long long x = 0, y = 0;
    int fits = as_ll(a, &x) && as_ll(b, &y);
    return within_ll(a, x, b, y, fits, limit, limit_obj, absolute);
}

/* max(a, b) as Python's max returns it (b only if b > a), a new reference */
static PyObject *
py_max(PyObject *a, PyObject *b)
{
    int gt = PyObject_RichCompareBool(b, a, Py_GT);
    if (gt < 0)
        return NULL;
    PyObject *m = gt ? b : a;
    Py_INCREF(m);
    return m;
}

static int
set_max_attr(PyObject *obj, PyObject *name, PyObject *ts)
{
    PyObject *old = PyObject_GetAttr(obj, name);
    if (old == NULL)
        return -1;
    PyObject *m = py_max(old, ts);
    Py_DECREF(old);
    if (m == NULL)
        return -1;
    int rc = PyObject_SetAttr(obj, name, m);
    Py_DECREF(m);
    return rc;
}

/* a list attribute of a _Key (a new reference), checked */
static PyObject *
list_attr(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v != NULL && !PyList_CheckExact(v)) {
        PyErr_Format(PyExc_TypeError, "_Key.%U must be a list", name);
        Py_CLEAR(v);
    }
    return v;
}

/* item ``i`` of a list entry of ``n`` items, borrowed; NULL with TypeError if it is not one */
static PyObject **
entry_items(PyObject *entry, Py_ssize_t n)
{
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != n) {
        PyErr_Format(PyExc_TypeError, "a linker entry must be a list of %zd items", n);
        return NULL;
    }
    return ((PyListObject *)entry)->ob_item;
}

/* Linker._evict(now) */
static int
linker_evict(LinkerCore *self, PyObject *now)
{
    long evicted = 0;
    int rc = 0;
    for (;;) {
        Py_ssize_t n = PyDict_GET_SIZE(self->keys);
        if (n == 0)
            break;
        PyObject *it = PyObject_GetIter(self->keys);
        if (it == NULL) { rc = -1; break; }
        PyObject *k = PyIter_Next(it);
        Py_DECREF(it);
        if (k == NULL) { rc = PyErr_Occurred() ? -1 : 0; break; }
        int drop = n > self->max_keys;
        if (!drop) {
            PyObject *st = PyObject_GetItem(self->keys, k), *last = NULL;
            if (st != NULL)
                last = PyObject_GetAttr(st, s_last_ts);
            Py_XDECREF(st);
            if (last == NULL) { Py_DECREF(k); rc = -1; break; }
            /* now - last > ttl  <=>  not (now - last <= ttl) */
            int within = diff_within(now, last, self->ttl, self->ttl_obj, 0);
            Py_DECREF(last);
            if (within < 0) { Py_DECREF(k); rc = -1; break; }
            drop = !within;
        }
        if (!drop) { Py_DECREF(k); break; }
        rc = PyObject_DelItem(self->keys, k);
        Py_DECREF(k);
        if (rc < 0)
            break;
        evicted++;
    }
    if (evicted) {   /* Linker.evicted, as the Python counts it */
        PyObject *old = PyObject_GetAttr(self->linker, s_evicted), *add = PyLong_FromLong(evicted), *sum = NULL;
        if (old != NULL && add != NULL)
            sum = PyNumber_Add(old, add);
        Py_XDECREF(old);
        Py_XDECREF(add);
        if (sum == NULL || PyObject_SetAttr(self->linker, s_evicted, sum) < 0)
            rc = -1;
        Py_XDECREF(sum);
    }
    return rc;
}

/* key_weight(kind, st.cardinality(), cfg) in double, the Python's operations in its order */
static int
linker_weight(LinkerCore *self, PyObject *kind, PyObject *anchors, double *out)
{
    Py_ssize_t n = PyList_GET_SIZE(anchors);
    double card;
    if (n < self->anchors)
        card = (double)n;
    else {
        PyObject **last = entry_items(PyList_GET_ITEM(anchors, n - 1), 4);
        if (last == NULL)
            return -1;
        double h = PyFloat_AsDouble(last[0]);   /* int / float: the int made a double first */
        if (h == -1.0 && PyErr_Occurred())
            return -1;
        double x = h / 18446744073709551616.0;
        if (x == 0.0) {
            PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
            return -1;
        }
        card = (double)(self->anchors - 1) / x;
    }
    double base, ref;
    PyObject *b = PyObject_GetItem(self->base_weight, kind), *r = b ? PyObject_GetItem(self->ref_card, kind) : NULL;
    if (b == NULL || r == NULL) {
        Py_XDECREF(b);
        Py_XDECREF(r);
        return -1;
    }
    base = PyFloat_AsDouble(b);
    ref = PyFloat_AsDouble(r);
    Py_DECREF(b);
    Py_DECREF(r);
    if (PyErr_Occurred())
        return -1;
    double floor_card = 1.0 > card ? 1.0 : card;    /* max(card, 1.0) */
    double share = ref / floor_card;
    *out = base * (share < 1.0 ? share : 1.0);       /* min(1.0, share) */
    return 0;
}

#define MAX_PARTNERS 64

/* 1 if two str are certainly unequal by their cached hashes (the check a dict makes first) */
static inline int
differ_by_hash(PyObject *a, PyObject *b)
{
    if (a == b || !PyUnicode_CheckExact(a) || !PyUnicode_CheckExact(b))
        return 0;
    Py_hash_t ha = ((PyASCIIObject *)a)->hash, hb = ((PyASCIIObject *)b)->hash;
    return ha != -1 && hb != -1 && ha != hb;
}

/* partners[account] = (sync, summary), as a dict does it: an account already there keeps its
 * place (and key object) and takes the new values */
static int
add_partner(PyObject **acct, PyObject **sum, int *sync, Py_ssize_t *n, PyObject *account, PyObject *summary,
            int synced)
{
    Py_ssize_t j = 0;
    for (; j < *n; j++) {
        if (differ_by_hash(acct[j], account))
            continue;
        int eq = PyObject_RichCompareBool(acct[j], account, Py_EQ);
        if (eq < 0)
            return -1;
        if (eq)
            break;
    }
    Py_INCREF(summary);
    if (j < *n)
        Py_SETREF(sum[j], summary);
    else {
        Py_INCREF(account);
        acct[j] = account;
        sum[j] = summary;
        (*n)++;
    }
    sync[j] = synced;
    return 0;
}

static PyObject *
LinkerCore_process(LinkerCore *self, PyObject *obs)
{
    PyObject *k = NULL, *account = NULL, *ts = NULL, *summary = NULL, *st = NULL, *anchors = NULL, *recent = NULL;
    PyObject *kept = NULL, *own = NULL, *out = NULL;
    PyObject *p_acct[MAX_PARTNERS], *p_sum[MAX_PARTNERS];
    int p_sync[MAX_PARTNERS];
    Py_ssize_t n_p = 0;
    if (!(k = PyObject_GetAttr(obs, s_key)) || !(account = PyObject_GetAttr(obs, s_account))
        || !(ts = PyObject_GetAttr(obs, s_ts_ms)) || !(summary = PyObject_GetAttr(obs, s_summary)))
        goto done;
    st = PyDict_GetItemWithError(self->keys, k);
    if (st == NULL) {
        if (PyErr_Occurred())
            goto done;
        PyObject *kind = PyObject_GetAttr(obs, s_kind);
        if (kind == NULL)
            goto done;
        st = PyObject_CallOneArg(self->key_cls, kind);
        Py_DECREF(kind);
        if (st == NULL || PyObject_SetItem(self->keys, k, st) < 0)
            goto done;
    }
    else {
        Py_INCREF(st);
        PyObject *r = PyObject_CallMethodOneArg(self->keys, s_move_to_end, k);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    if (set_max_attr(st, s_last_ts, ts) < 0 || !(anchors = list_attr(st, s_anchors))
        || !(recent = list_attr(st, s_recent)))
        goto done;
    long long ts_ll = 0;
    int ts_fits = as_ll(ts, &ts_ll);
    /* partners: account -> (sync, summary); a later one replaces an earlier one, as in a dict */
    Py_ssize_t n_anchors = PyList_GET_SIZE(anchors), n_recent = PyList_GET_SIZE(recent);
    if (n_anchors + n_recent > MAX_PARTNERS) {
        PyErr_SetString(PyExc_ValueError, "a linker key holds more entries than its bounds");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_anchors; i++) {
        PyObject *entry = PyList_GET_ITEM(anchors, i), **e = entry_items(entry, 4);
        if (e == NULL)
            goto done;
        int same = differ_by_hash(e[1], account) ? 0 : PyObject_RichCompareBool(e[1], account, Py_EQ);
        if (same < 0)
            goto done;
        if (same) {
            Py_INCREF(entry);
            Py_XSETREF(own, entry);
            continue;
        }
        long long a_ts = 0;
        int fits = ts_fits && as_ll(e[2], &a_ts);
        int within = within_ll(ts, ts_ll, e[2], a_ts, fits, self->window, self->window_obj, 0);
        if (within < 0)
            goto done;
        if (!within)
            continue;
        int sync = within_ll(ts, ts_ll, e[2], a_ts, fits, self->sync_ms, self->sync_obj, 1);
        if (sync < 0 || add_partner(p_acct, p_sum, p_sync, &n_p, e[1], e[3], sync) < 0)
            goto done;
    }
    if (!(kept = PyList_New(0)))   /* the ring without this account, which goes last */
        goto done;
    for (Py_ssize_t i = 0; i < n_recent; i++) {
        PyObject *entry = PyList_GET_ITEM(recent, i), **e = entry_items(entry, 3);
        if (e == NULL)
            goto done;
        int same = differ_by_hash(e[0], account) ? 0 : PyObject_RichCompareBool(e[0], account, Py_EQ);
        if (same < 0)
            goto done;
        if (same)
            continue;
        long long r_ts = 0;
        int fits = ts_fits && as_ll(e[1], &r_ts);   /* before the call: argument order is unspecified */
        int sync = within_ll(ts, ts_ll, e[1], r_ts, fits, self->sync_ms, self->sync_obj, 1);
        if (sync < 0)
            goto done;
        if (sync && add_partner(p_acct, p_sum, p_sync, &n_p, e[0], e[2], 1) < 0)
            goto done;
        if (PyList_Append(kept, entry) < 0)
            goto done;
    }
    PyObject *mine = PyList_New(3);
    if (mine == NULL)
        goto done;
    Py_INCREF(account);
    Py_INCREF(ts);
    Py_INCREF(summary);
    PyList_SET_ITEM(mine, 0, account);
    PyList_SET_ITEM(mine, 1, ts);
    PyList_SET_ITEM(mine, 2, summary);
    int rc = PyList_Append(kept, mine);
    Py_DECREF(mine);
    if (rc < 0)
        goto done;
    Py_ssize_t n_kept = PyList_GET_SIZE(kept);
    PyObject *ring = PyList_GetSlice(kept, n_kept > self->recent ? n_kept - self->recent : 0, n_kept);
    if (ring == NULL)
        goto done;
    rc = PyObject_SetAttr(st, s_recent, ring);
    Py_DECREF(ring);
    if (rc < 0)
        goto done;
    /* the sketch */
    if (own != NULL) {
        PyObject *m = py_max(PyList_GET_ITEM(own, 2), ts);
        if (m == NULL || PyList_SetItem(own, 2, m) < 0)
            goto done;
        Py_INCREF(summary);
        if (PyList_SetItem(own, 3, summary) < 0)
            goto done;
    }
    else {
        PyObject *hash_args[2] = {account, ts};
        PyObject *h = PyObject_Vectorcall(self->account_hash, hash_args, 2, NULL);
        if (h == NULL)
            goto done;
        n_anchors = PyList_GET_SIZE(anchors);
        int lower = 1;
        if (n_anchors >= self->anchors) {
            PyObject **last = entry_items(PyList_GET_ITEM(anchors, n_anchors - 1), 4);
            lower = last == NULL ? -1 : PyObject_RichCompareBool(h, last[0], Py_LT);
        }
        if (lower < 0) {
            Py_DECREF(h);
            goto done;
        }
        if (lower) {
            /* append, then sort by (hash, account): a list's order is that of its items in turn,
             * and no two anchors share both */
            PyObject *entry = PyList_New(4);
            if (entry == NULL) {
                Py_DECREF(h);
                goto done;
            }
            Py_INCREF(account);
            Py_INCREF(ts);
            Py_INCREF(summary);
            PyList_SET_ITEM(entry, 0, h);
            PyList_SET_ITEM(entry, 1, account);
            PyList_SET_ITEM(entry, 2, ts);
            PyList_SET_ITEM(entry, 3, summary);
            rc = PyList_Append(anchors, entry);
            Py_DECREF(entry);
            if (rc < 0 || PyList_Sort(anchors) < 0
                || PyList_SetSlice(anchors, self->anchors, PY_SSIZE_T_MAX, NULL) < 0)
                goto done;
        }
        else
            Py_DECREF(h);
    }
    if (linker_evict(self, ts) < 0)
        goto done;
    PyObject *kind = PyObject_GetAttr(st, s_kind);
    if (kind == NULL)
        goto done;
    double w;
    if (linker_weight(self, kind, anchors, &w) < 0) {
        Py_DECREF(kind);
        goto done;
    }
    if (n_p == 0 || w < self->min_weight) {
        Py_DECREF(kind);
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    /* [partners[p] for p in sorted(partners)] */
    PyObject *order = PyList_New(n_p), *partners = NULL, *rounded = NULL, *event_id = NULL, *model = NULL;
    if (order == NULL)
        goto evidence_done;
    for (Py_ssize_t i = 0; i < n_p; i++) {
        Py_INCREF(p_acct[i]);
        PyList_SET_ITEM(order, i, p_acct[i]);
    }
    if (PyList_Sort(order) < 0 || !(partners = PyList_New(n_p)))
        goto evidence_done;
    for (Py_ssize_t i = 0; i < n_p; i++) {
        PyObject *a = PyList_GET_ITEM(order, i);
        Py_ssize_t j = 0;
        while (j < n_p && p_acct[j] != a)
            j++;
        /* Partner(...): a NamedTuple's __new__ is tuple.__new__(Partner, fields), which allocates
         * the subclass's tuple and fills it; done here without the intermediate tuples */
        PyTypeObject *cls = (PyTypeObject *)self->partner_cls;
        PyObject *partner = cls->tp_alloc(cls, 3);
        if (partner == NULL)
            goto evidence_done;
        Py_INCREF(p_acct[j]);
        Py_INCREF(p_sum[j]);
        PyTuple_SET_ITEM(partner, 0, p_acct[j]);
        PyTuple_SET_ITEM(partner, 1, PyLong_FromLong(p_sync[j]));   /* 0 and 1 are cached ints */
        PyTuple_SET_ITEM(partner, 2, p_sum[j]);
        PyList_SET_ITEM(partners, i, partner);
    }
    if (!(rounded = round_to(w, 4)))
        goto evidence_done;
    if (!(event_id = PyObject_GetAttr(obs, s_event_id)) || !(model = PyObject_GetAttr(obs, s_model)))
        goto evidence_done;
    PyObject *ev_args[8] = {account, summary, kind, rounded, ts, event_id, model, partners};
    out = PyObject_Vectorcall(self->evidence_cls, ev_args, 8, NULL);
evidence_done:
    Py_XDECREF(order);
    Py_XDECREF(partners);
    Py_XDECREF(rounded);
    Py_XDECREF(event_id);
    Py_XDECREF(model);
    Py_DECREF(kind);
done:
    for (Py_ssize_t i = 0; i < n_p; i++) {
        Py_DECREF(p_acct[i]);
        Py_DECREF(p_sum[i]);
    }
    Py_XDECREF(k);
    Py_XDECREF(account);
    Py_XDECREF(ts);
    Py_XDECREF(summary);
    Py_XDECREF(st);
    Py_XDECREF(anchors);
    Py_XDECREF(recent);
    Py_XDECREF(kept);
    Py_XDECREF(own);
    return out;
}

static PyMethodDef LinkerCore_methods[] = {
    {"process", (PyCFunction)LinkerCore_process, METH_O, "process(observation) -> PairEvidence or None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LinkerCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.models._linkprofile.LinkerCore",
    .tp_basicsize = sizeof(LinkerCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "linking.Linker.process in C: the same evidence, on the linker's own objects.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LinkerCore_init,
    .tp_dealloc = (destructor)LinkerCore_dealloc,
    .tp_traverse = (traverseproc)LinkerCore_traverse,
    .tp_clear = (inquiry)LinkerCore_clear,
    .tp_methods = LinkerCore_methods,
};

static PyObject *
configure(PyObject *module, PyObject *args)
{
    int topics, ring, wrappers, tails;
    long long day;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "iO!Liii", &topics, &PyTuple_Type, &names, &day, &ring, &wrappers, &tails))
        return NULL;
    if (topics < 0 || topics > MAX_TOPICS || PyTuple_GET_SIZE(names) != topics || day <= 0
        || ring < 1 || ring > MAX_RING || wrappers < 1 || wrappers > MAX_RING || tails < 1 || tails > MAX_RING) {
        PyErr_Format(PyExc_ValueError, "configure: at most %d topics (one name each), rings of 1-%d, day_ms > 0",
                     MAX_TOPICS, MAX_RING);
        return NULL;
    }
    for (int i = 0; i < topics; i++)
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "topic names must be str");
            return NULL;
        }
    Py_INCREF(names);
    Py_XSETREF(topic_names, names);
    n_topics = topics;
    day_ms = day;
    net_ring = ring;
    wrappers_kept = wrappers;
    tails_kept = tails;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(n_topics, topic_names, day_ms, net_ring, wrappers_kept, tails_kept)"},
    {"round_digits", (PyCFunction)(void (*)(void))round_digits, METH_FASTCALL,
     "round_digits(x, digits): round(x, digits) as summary() and the linker round (digits 2-4)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef linkprofile_module = {
    PyModuleDef_HEAD_INIT, "_linkprofile", "Cross-account linking in C: the link observer and the linker.", -1, module_methods,
};

#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL

PyMODINIT_FUNC
PyInit__linkprofile(void)
{
    if (PyType_Ready(&ProfileType) < 0 || PyType_Ready(&ObserverType) < 0 || PyType_Ready(&LinkerCoreType) < 0)
        return NULL;
    PyObject *builtins = PyEval_GetBuiltins();   /* borrowed */
    round_fn = builtins == NULL ? NULL : PyDict_GetItemString(builtins, "round");
    if (round_fn == NULL) {
        PyErr_SetString(PyExc_ImportError, "builtins.round not found");
        return NULL;
    }
    Py_INCREF(round_fn);
    if (!(two = PyLong_FromLong(2)) || !(three = PyLong_FromLong(3)) || !(four = PyLong_FromLong(4)))
        return NULL;
    INTERN(k_n, "n");
    INTERN(k_rd, "rd");
    INTERN(k_r, "r");
    INTERN(k_tp, "tp");
    INTERN(k_t, "t");
    INTERN(k_first, "first");
    INTERN(k_created, "created");
    INTERN(k_tier, "tier");
    INTERN(k_nets, "nets");
    INTERN(k_dedupe_ms, "dedupe_ms");
    INTERN(k_novel_wrap_budget, "novel_wrap_budget");
    INTERN(s_move_to_end, "move_to_end");
    INTERN(s_popitem, "popitem");
    INTERN(s_summary, "summary");
    INTERN(s_net, "net");
    INTERN(s_wrap, "wrap");
    INTERN(s_last, "last");
    INTERN(s_slow_dedupe_ms, "slow_dedupe_ms");
    INTERN(s_profile_idle_ms, "profile_idle_ms");
    INTERN(s_net_window_ms, "net_window_ms");
    INTERN(s_kind, "kind");
    INTERN(s_anchors, "anchors");
    INTERN(s_recent, "recent");
    INTERN(s_last_ts, "last_ts");
    INTERN(s_evicted, "evicted");
    INTERN(s_key, "key");
    INTERN(s_account, "account");
    INTERN(s_ts_ms, "ts_ms");
    INTERN(s_event_id, "event_id");
    INTERN(s_model, "model");
    INTERN(s_base_weight, "base_weight");
    INTERN(s_ref_card, "ref_card");
    INTERN(s_min_weight, "min_weight");
    INTERN(s_pair_window_ms, "pair_window_ms");
    INTERN(s_sync_ms, "sync_ms");
    INTERN(s_key_ttl_ms, "key_ttl_ms");
    if (!(kw_last = Py_BuildValue("(O)", s_last)))
        return NULL;
    PyObject *m = PyModule_Create(&linkprofile_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ProfileType);
    if (PyModule_AddObject(m, "Profile", (PyObject *)&ProfileType) < 0) {
        Py_DECREF(&ProfileType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ObserverType);
    if (PyModule_AddObject(m, "Observer", (PyObject *)&ObserverType) < 0) {
        Py_DECREF(&ObserverType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&LinkerCoreType);
    if (PyModule_AddObject(m, "LinkerCore", (PyObject *)&LinkerCoreType) < 0) {
        Py_DECREF(&LinkerCoreType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
