/* The happy path of schemas/event.py:event_from_dict, in C.
 *
 * Checker(event_cls, message_cls, operations, roles, known, param_kinds, max_messages,
 *         max_logit_bias, max_ts[, event_fields=, message_fields=]).build(doc) -> RequestEvent | None
 *
 * build() makes the RequestEvent that event_from_dict makes for a decoded event that keeps
 * contract v1 and has no unknown fields, through the same constructors and with the same
 * objects (params and usage are the decoded dicts; messages a new list of Message). For
 * anything else -- any check that fails, unknown fields, a type it does not expect -- it
 * returns None and the Python function runs: it is the definition, and it alone raises
 * BadEvent, with its reason and detail (tests/test_schemas.py runs every case on both routes).
 *
 * With event_fields and message_fields (the dataclasses' field names in constructor order), the
 * RequestEvent and each Message are filled in here, slot by slot, as their generated __init__
 * fills them (``self.name = name`` for each field, through the class's own slot descriptors, found
 * at init): without a Python call per object. event.py passes them only for slotted dataclasses
 * without __post_init__; init refuses a class whose fields are not plain writable object slots.
 *
 * param_kinds maps a params key to its kind: 1 a number (int or float), 2 an int, 3 a bool,
 * 4 an object (logit_bias: at most max_logit_bias numbers). Types are exact, as in Python
 * (type(x) is int: a bool is not an int).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

enum { KIND_NUMBER = 1, KIND_INT = 2, KIND_BOOL = 3, KIND_OBJECT = 4 };

#define N_OPTIONAL 11
/* RequestEvent's fields after params, in constructor order; usage is the 9th (index 8) */
static const char *optional_names[N_OPTIONAL] = {
    "api_key_id", "user_id", "client_ip", "user_agent", "session_id", "payment_fingerprint",
    "account_created_ms", "access_tier", "usage", "status", "latency_ms"};
/* 1: None or str, 2: None or int, 0: usage (checked apart) */
static const int optional_kind[N_OPTIONAL] = {1, 1, 1, 1, 1, 1, 2, 1, 0, 1, 2};
#define USAGE_AT 8
#define MAX_FIELDS 24

/* where a class's fields live: the offsets of their slots, in constructor order (n 0: call the class) */
typedef struct {
    Py_ssize_t n;
    Py_ssize_t offset[MAX_FIELDS];
} Layout;

typedef struct {
    PyObject_HEAD
    PyObject *event_cls, *message_cls, *operations, *roles, *known, *param_kinds;
    PyObject *k_schema_version, *k_ts_ms, *k_event_id, *k_account_id, *k_model, *k_operation,
             *k_messages, *k_params, *k_role, *k_content, *k_logit_bias, *k_finish_reason, *version;
    PyObject *optional[N_OPTIONAL];
    PyObject *usage_keys[3];
    Py_ssize_t max_messages, max_logit_bias;
    long long max_ts;
    Layout event_layout, message_layout;
} Checker;

static int
Checker_traverse(Checker *self, visitproc visit, void *arg)
{
    Py_VISIT(self->event_cls);
    Py_VISIT(self->message_cls);
    Py_VISIT(self->operations);
    Py_VISIT(self->roles);
    Py_VISIT(self->known);
    Py_VISIT(self->param_kinds);
    return 0;
}

static void
Checker_clear_refs(Checker *self)
{
    Py_CLEAR(self->event_cls);
    Py_CLEAR(self->message_cls);
    Py_CLEAR(self->operations);
    Py_CLEAR(self->roles);
    Py_CLEAR(self->known);
    Py_CLEAR(self->param_kinds);
    Py_CLEAR(self->k_schema_version);
    Py_CLEAR(self->k_ts_ms);
    Py_CLEAR(self->k_event_id);
    Py_CLEAR(self->k_account_id);
    Py_CLEAR(self->k_model);
    Py_CLEAR(self->k_operation);
    Py_CLEAR(self->k_messages);
    Py_CLEAR(self->k_params);
    Py_CLEAR(self->k_role);
    Py_CLEAR(self->k_content);
    Py_CLEAR(self->k_logit_bias);
    Py_CLEAR(self->k_finish_reason);
    Py_CLEAR(self->version);
    for (int i = 0; i < N_OPTIONAL; i++)
        Py_CLEAR(self->optional[i]);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(self->usage_keys[i]);
}

static int
Checker_clear(Checker *self)
{
    Checker_clear_refs(self);
    return 0;
}

static void
Checker_dealloc(Checker *self)
{
    PyObject_GC_UnTrack(self);
    Checker_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* the slot offsets of cls's fields ``names`` (a tuple of str), or -1 with an error set */
static int
layout_of(PyObject *cls, PyObject *names, Layout *out)
{
    out->n = 0;
    if (names == Py_None)
        return 0;
    if (!PyType_Check(cls) || !PyTuple_Check(names) || PyTuple_GET_SIZE(names) > MAX_FIELDS
        || ((PyTypeObject *)cls)->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "fields: a tuple of field names of a class with object's __new__");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *d = PyObject_GetAttr(cls, PyTuple_GET_ITEM(names, i));
        if (d == NULL)
            return -1;
        int ok = Py_IS_TYPE(d, &PyMemberDescr_Type);
        PyMemberDef *member = ok ? ((PyMemberDescrObject *)d)->d_member : NULL;
        ok = ok && member->type == T_OBJECT_EX && !(member->flags & READONLY)
             && ((PyMemberDescrObject *)d)->d_common.d_type == (PyTypeObject *)cls;
        Py_ssize_t offset = ok ? member->offset : 0;
        Py_DECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%R is not a writable object slot of %R", PyTuple_GET_ITEM(names, i), cls);
            return -1;
        }
        out->offset[i] = offset;
    }
    out->n = PyTuple_GET_SIZE(names);
    return 0;
}

/* cls(*values) where layout knows its slots: the instance filled as its __init__ fills it */
static PyObject *
make(PyObject *cls, const Layout *layout, PyObject *const *values, Py_ssize_t n)
{
    if (layout->n != n)
        return PyObject_Vectorcall(cls, values, n, NULL);
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *obj = type->tp_alloc(type, 0);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(values[i]);
        *(PyObject **)((char *)obj + layout->offset[i]) = values[i];
    }
    return obj;
}

#define INTERN(field, text) if (!(self->field = PyUnicode_InternFromString(text))) return -1

static int
Checker_init(Checker *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"event_cls", "message_cls", "operations", "roles", "known", "param_kinds",
                             "max_messages", "max_logit_bias", "max_ts", "event_fields", "message_fields", NULL};
    PyObject *event_cls, *message_cls, *operations, *roles, *known, *param_kinds;
    PyObject *event_fields = Py_None, *message_fields = Py_None;
    Py_ssize_t max_messages, max_logit_bias;
    long long max_ts;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!O!O!O!nnL|$OO", kwlist, &event_cls, &message_cls,
                                     &PyFrozenSet_Type, &operations, &PyFrozenSet_Type, &roles,
                                     &PyFrozenSet_Type, &known, &PyDict_Type, &param_kinds,
                                     &max_messages, &max_logit_bias, &max_ts, &event_fields, &message_fields))
        return -1;
    if (!PyCallable_Check(event_cls) || !PyCallable_Check(message_cls)) {
        PyErr_SetString(PyExc_TypeError, "event_cls and message_cls must be callable");
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(param_kinds, &pos, &key, &value)) {
        long kind = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
        if (!PyUnicode_CheckExact(key) || kind < KIND_NUMBER || kind > KIND_OBJECT) {
            PyErr_SetString(PyExc_ValueError, "param_kinds maps names to kinds 1-4");
            return -1;
        }
    }
    if (max_messages < 0 || max_logit_bias < 0 || max_ts <= 0) {
        PyErr_SetString(PyExc_ValueError, "the maxima must be positive");
        return -1;
    }
    Layout event_layout, message_layout;
    if (layout_of(event_cls, event_fields, &event_layout) < 0 || layout_of(message_cls, message_fields, &message_layout) < 0)
        return -1;
    if ((event_layout.n && event_layout.n != 20) || (message_layout.n && message_layout.n != 2)) {
        PyErr_SetString(PyExc_ValueError, "event_fields names 20 fields, message_fields 2");
        return -1;
    }
    self->event_layout = event_layout;
    self->message_layout = message_layout;
    Checker_clear_refs(self);
    Py_INCREF(event_cls);
    self->event_cls = event_cls;
    Py_INCREF(message_cls);
    self->message_cls = message_cls;
    Py_INCREF(operations);
    self->operations = operations;
    Py_INCREF(roles);
    self->roles = roles;
    Py_INCREF(known);
    self->known = known;
    Py_INCREF(param_kinds);
    self->param_kinds = param_kinds;
    self->max_messages = max_messages;
    self->max_logit_bias = max_logit_bias;
    self->max_ts = max_ts;
    INTERN(k_schema_version, "schema_version");
    INTERN(k_ts_ms, "ts_ms");
    INTERN(k_event_id, "event_id");
    INTERN(k_account_id, "account_id");
    INTERN(k_model, "model");
    INTERN(k_operation, "operation");
    INTERN(k_messages, "messages");
    INTERN(k_params, "params");
    INTERN(k_role, "role");
    INTERN(k_content, "content");
    INTERN(k_logit_bias, "logit_bias");
    INTERN(k_finish_reason, "finish_reason");
    INTERN(version, "1");
    for (int i = 0; i < N_OPTIONAL; i++)
        if (!(self->optional[i] = PyUnicode_InternFromString(optional_names[i])))
            return -1;
    static const char *usage_names[3] = {"input_tokens", "output_tokens", "reasoning_tokens"};
    for (int i = 0; i < 3; i++)
        if (!(self->usage_keys[i] = PyUnicode_InternFromString(usage_names[i])))
            return -1;
    return 0;
}

/* value of key in doc, borrowed; NULL if absent (no error is ever set: str keys hash safely) */
static inline PyObject *
get(PyObject *doc, PyObject *key)
{
    return PyDict_GetItemWithError(doc, key);
}

/* 1 if every key of doc is a known field */
static int
only_known(Checker *self, PyObject *doc)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(doc, &pos, &key, &value)) {
        int known = PySet_Contains(self->known, key);
        if (known != 1) {
            PyErr_Clear();
            return 0;
        }
    }
    return 1;
}

/* 1 if params keeps the contract (its known keys' types, logit_bias' size and values) */
static int
params_ok(Checker *self, PyObject *params)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(params, &pos, &key, &value)) {
        if (value == Py_None)
            continue;
        PyObject *kind_obj = PyDict_GetItemWithError(self->param_kinds, key);
        if (kind_obj == NULL) {
            if (PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            continue;
        }
        switch (PyLong_AsLong(kind_obj)) {
        case KIND_NUMBER:
            if (!PyLong_CheckExact(value) && !PyFloat_CheckExact(value))
                return 0;
            break;
        case KIND_INT:
            if (!PyLong_CheckExact(value))
                return 0;
            break;
        case KIND_BOOL:
            if (!PyBool_Check(value))
                return 0;
            break;
        default:
            if (!PyDict_CheckExact(value))
                return 0;
        }
    }
    PyObject *bias = get(params, self->k_logit_bias);
    if (bias != NULL && bias != Py_None) {   /* a dict here: checked above */
        if (PyDict_GET_SIZE(bias) > self->max_logit_bias)
            return 0;
        pos = 0;
        while (PyDict_Next(bias, &pos, &key, &value))
            if (!PyLong_CheckExact(value) && !PyFloat_CheckExact(value))
                return 0;
    }
    return 1;
}

/* a new list of Message, or NULL (with no error set) where a message breaks the contract */
static PyObject *
messages_of(Checker *self, PyObject *raw, int *failed)
{
    Py_ssize_t n = PyList_GET_SIZE(raw);
    if (n > self->max_messages)
        return NULL;
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        *failed = 1;
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(raw, i);
        if (!PyDict_CheckExact(m))
            goto unexpected;
        PyObject *role = get(m, self->k_role), *content = get(m, self->k_content);
        if (role == NULL || content == NULL || !PyUnicode_CheckExact(role) || !PyUnicode_CheckExact(content))
            goto unexpected;
        int is_role = PySet_Contains(self->roles, role);
        if (is_role != 1) {
            if (is_role < 0)
                PyErr_Clear();
            goto unexpected;
        }
        PyObject *call_args[2] = {role, content};
        PyObject *message = make(self->message_cls, &self->message_layout, call_args, 2);
        if (message == NULL) {
            *failed = 1;
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, message);
    }
    return out;
unexpected:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
Checker_build(Checker *self, PyObject *doc)
{
    if (self->event_cls == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Checker not initialised");
        return NULL;
    }
    if (!PyDict_CheckExact(doc))
        Py_RETURN_NONE;
    PyObject *version = get(doc, self->k_schema_version);
    if (version == NULL || !PyUnicode_CheckExact(version) || PyUnicode_Compare(version, self->version) != 0)
        Py_RETURN_NONE;
    PyObject *ts = get(doc, self->k_ts_ms);
    if (ts == NULL || !PyLong_CheckExact(ts))
        Py_RETURN_NONE;
    int overflow = 0;
    long long ts_value = PyLong_AsLongLongAndOverflow(ts, &overflow);
    if (overflow || ts_value < 0 || ts_value >= self->max_ts)
        Py_RETURN_NONE;
    PyObject *event_id = get(doc, self->k_event_id), *account_id = get(doc, self->k_account_id);
    PyObject *model = get(doc, self->k_model), *operation = get(doc, self->k_operation);
    if (event_id == NULL || account_id == NULL || model == NULL || operation == NULL
        || !PyUnicode_CheckExact(event_id) || !PyUnicode_CheckExact(account_id)
        || !PyUnicode_CheckExact(model) || !PyUnicode_CheckExact(operation)
        || PyUnicode_GET_LENGTH(event_id) == 0 || PyUnicode_GET_LENGTH(account_id) == 0)
        Py_RETURN_NONE;
    int is_operation = PySet_Contains(self->operations, operation);
    if (is_operation != 1) {
        if (is_operation < 0)
            PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *raw_messages = get(doc, self->k_messages), *params = get(doc, self->k_params);
    if (raw_messages == NULL || params == NULL || !PyList_CheckExact(raw_messages) || !PyDict_CheckExact(params))
        Py_RETURN_NONE;
    if (!params_ok(self, params) || !only_known(self, doc))
        Py_RETURN_NONE;
    /* the optional fields, in constructor order; borrowed (None where absent) */
    PyObject *optional[N_OPTIONAL];
    for (int i = 0; i < N_OPTIONAL; i++) {
        PyObject *value = get(doc, self->optional[i]);
        if (value == NULL)
            value = Py_None;
        if (value != Py_None) {
            if (optional_kind[i] == 1 && !PyUnicode_CheckExact(value))
                Py_RETURN_NONE;
            if (optional_kind[i] == 2 && !PyLong_CheckExact(value))
                Py_RETURN_NONE;
        }
        optional[i] = value;
    }
    PyObject *finish_reason = get(doc, self->k_finish_reason);
    if (finish_reason == NULL)
        finish_reason = Py_None;
    else if (finish_reason != Py_None && !PyUnicode_CheckExact(finish_reason))
        Py_RETURN_NONE;
    PyObject *usage = optional[USAGE_AT];
    if (usage != Py_None) {
        if (!PyDict_CheckExact(usage))
            Py_RETURN_NONE;
        for (int i = 0; i < 3; i++) {
            PyObject *value = get(usage, self->usage_keys[i]);
            if (value == NULL || value == Py_None)
                continue;
            if (!PyLong_CheckExact(value))
                Py_RETURN_NONE;
            long long count = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (overflow < 0 || (overflow == 0 && count < 0))
                Py_RETURN_NONE;
        }
    }
    int failed = 0;
    PyObject *messages = messages_of(self, raw_messages, &failed);
    if (messages == NULL) {
        if (failed)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *new_usage = NULL;
    if (usage == Py_None) {   /* as event_from_dict: a new empty dict */
        new_usage = PyDict_New();
        if (new_usage == NULL) {
            Py_DECREF(messages);
            return NULL;
        }
        usage = new_usage;
    }
    /* the 19 fields the document gives, and extra (None: no unknown fields) */
    PyObject *call_args[20] = {event_id, ts, account_id, model, operation, messages, params,
                               optional[0], optional[1], optional[2], optional[3], optional[4], optional[5],
                               optional[6], optional[7], usage, optional[9], optional[10], finish_reason, Py_None};
    PyObject *event = make(self->event_cls, &self->event_layout, call_args, self->event_layout.n ? 20 : 19);
    Py_DECREF(messages);
    Py_XDECREF(new_usage);
    return event;
}

static PyMethodDef Checker_methods[] = {
    {"build", (PyCFunction)Checker_build, METH_O,
     "build(doc) -> the RequestEvent event_from_dict makes of doc, or None where it must run itself"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CheckerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.schemas._eventcheck.Checker",
    .tp_basicsize = sizeof(Checker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The happy path of event_from_dict (schemas/event.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Checker_init,
    .tp_dealloc = (destructor)Checker_dealloc,
    .tp_traverse = (traverseproc)Checker_traverse,
    .tp_clear = (inquiry)Checker_clear,
    .tp_methods = Checker_methods,
};

static struct PyModuleDef eventcheck_module = {
    PyModuleDef_HEAD_INIT, "_eventcheck", "The native happy path of distillguard's request event parse.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__eventcheck(void)
{
    if (PyType_Ready(&CheckerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&eventcheck_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&CheckerType);
    if (PyModule_AddObject(m, "Checker", (PyObject *)&CheckerType) < 0) {
        Py_DECREF(&CheckerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
