/* The link observer in C: its per-account profile (models/linking.py:_Profile) and its
 * per-request loop (LinkObserver.observe).
 *
 * The Python stays the definition; this is an optional, faster route to the same values
 * (tests/test_link_profile.py checks identical observations, summaries, evidence and profiles
 * after whole streams, under small bounds, and after random call sequences). Same arithmetic in
 * the same order, in double: the day decay is exp() of the same quotient (Python's int / int of
 * two exactly representable numbers is one IEEE division), the summary's numbers go through
 * Python's own round(), and keys are compared as Python compares them.
 *
 * configure(n_topics, topic_names, day_ms, net_ring, wrappers_kept, tails_kept) once per
 * process (linking.py), then Profile(ts) with the methods and attributes of _Profile, and
 * Observer(...) (below) for an observer's loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define MAX_TOPICS 32
#define MAX_RING 8

static int n_topics = -1, net_ring, wrappers_kept, tails_kept;
static long long day_ms;
static PyObject *topic_names;          /* tuple of str: the summary's topic keys */
static PyObject *round_fn, *two, *three;
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

/* round(x, digits) as Python rounds: a new reference */
static PyObject *
rounded(double x, PyObject *digits)
{
    PyObject *f = PyFloat_FromDouble(x);
    if (f == NULL)
        return NULL;
    PyObject *call_args[2] = {f, digits};
    PyObject *out = PyObject_Vectorcall(round_fn, call_args, 2, NULL);
    Py_DECREF(f);
    return out;
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
    if (put(out, k_n, PyLong_FromLongLong(self->n)) < 0 || put(out, k_rd, rounded(req, two)) < 0
        || put(out, k_r, req != 0.0 ? rounded(self->reasoning / req, three) : PyFloat_FromDouble(0.0)) < 0
        || put(out, k_tp, req != 0.0 ? rounded(self->template_ / req, three) : PyFloat_FromDouble(0.0)) < 0)
        goto fail;
    if ((t = PyDict_New()) == NULL)
        goto fail;
    for (int i = 0; i < n_topics; i++)
        if ((self->seen >> i & 1) && self->topics[i] >= 0.01
            && put(t, PyTuple_GET_ITEM(topic_names, i), rounded(self->topics[i], two)) < 0)
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
    Py_ssize_t max_accounts, max_sent;
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
                             "max_accounts", "max_sent", NULL};
    PyObject *profiles, *sent, *link_memos, *dedupe_ms, *cfg, *link_fn, *observation_cls;
    Py_ssize_t max_accounts, max_sent;
    long long slow, idle, window;
    if (!ready() || !PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!O!OOOnn", kwlist, &PyDict_Type, &profiles,
                                                 &PyDict_Type, &sent, &PyDict_Type, &link_memos, &PyDict_Type,
                                                 &dedupe_ms, &cfg, &link_fn, &observation_cls, &max_accounts,
                                                 &max_sent))
        return -1;
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef linkprofile_module = {
    PyModuleDef_HEAD_INIT, "_linkprofile", "The link observer's per-account profile in C.", -1, module_methods,
};

#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL

PyMODINIT_FUNC
PyInit__linkprofile(void)
{
    if (PyType_Ready(&ProfileType) < 0 || PyType_Ready(&ObserverType) < 0)
        return NULL;
    PyObject *builtins = PyEval_GetBuiltins();   /* borrowed */
    round_fn = builtins == NULL ? NULL : PyDict_GetItemString(builtins, "round");
    if (round_fn == NULL) {
        PyErr_SetString(PyExc_ImportError, "builtins.round not found");
        return NULL;
    }
    Py_INCREF(round_fn);
    if (!(two = PyLong_FromLong(2)) || !(three = PyLong_FromLong(3)))
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
    return m;
}
