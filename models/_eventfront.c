/* The per-request front of the account stage, in C: features.prompt_parts (the one scan of a
 * request's messages) and linking.link_record (what the cross-account stage reads of it).
 *
 * The Python functions stay the definition; these return the same values, or None where the
 * Python must run (anything but the types the contract gives: str roles and contents, a dict or
 * None for extra). tests/test_event_front.py compares the two routes on every simulated
 * scenario, on redacted and content-less events and on random messages.
 *
 * Front(parts_cls, no_parts, markers, marker_max_chars, redacted_field
 *       [, record_cls=, wrap_min_chars=, wrap_tail_chars=, system_chars=])
 *   .parts(event)                    -> PromptParts | None
 *   .record(event, features, parts)  -> LinkRecord | None  (a Front made with record_cls)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_namedtuple.h"

typedef struct {
    PyObject_HEAD
    PyObject *parts_cls, *no_parts, *markers, *redacted_field, *record_cls, *empty;
    Py_ssize_t marker_max_chars, wrap_min_chars, wrap_tail_chars, system_chars;
} Front;

static PyObject *s_messages, *s_extra, *s_operation, *s_role, *s_content, *s_batch, *s_user, *s_system;
static PyObject *s_payment_fingerprint, *s_client_ip, *s_user_agent, *s_api_key_id, *s_account_id, *s_ts_ms;
static PyObject *s_event_id, *s_model, *s_account_created_ms, *s_access_tier, *s_reasoning, *s_area;
static PyObject *s_wrapper_fp, *s_strip, *s_lower, *k_pay, *k_net, *k_wrap, *k_sys, *k_ua;

static int
Front_traverse(Front *self, visitproc visit, void *arg)
{
    Py_VISIT(self->parts_cls);
    Py_VISIT(self->no_parts);
    Py_VISIT(self->markers);
    Py_VISIT(self->redacted_field);
    Py_VISIT(self->record_cls);
    Py_VISIT(self->empty);
    return 0;
}

static int
Front_clear(Front *self)
{
    Py_CLEAR(self->parts_cls);
    Py_CLEAR(self->no_parts);
    Py_CLEAR(self->markers);
    Py_CLEAR(self->redacted_field);
    Py_CLEAR(self->record_cls);
    Py_CLEAR(self->empty);
    return 0;
}

static void
Front_dealloc(Front *self)
{
    PyObject_GC_UnTrack(self);
    Front_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Front_init(Front *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"parts_cls", "no_parts", "markers", "marker_max_chars", "redacted_field", "record_cls",
                             "wrap_min_chars", "wrap_tail_chars", "system_chars", NULL};
    PyObject *parts_cls, *no_parts, *markers, *redacted_field, *record_cls = Py_None;
    Py_ssize_t marker_max, wrap_min = 0, wrap_tail = 1, system_chars = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO!nU|$Onnn", kwlist, &parts_cls, &no_parts, &PyFrozenSet_Type,
                                     &markers, &marker_max, &redacted_field, &record_cls, &wrap_min, &wrap_tail,
                                     &system_chars))
        return -1;
    if (!plain_tuple_class(parts_cls, 4) || (record_cls != Py_None && !plain_tuple_class(record_cls, 8))) {
        PyErr_SetString(PyExc_TypeError, "parts_cls and record_cls must be NamedTuple classes of 4 and 8 fields");
        return -1;
    }
    if (!PyObject_TypeCheck(no_parts, (PyTypeObject *)parts_cls) || PyTuple_GET_SIZE(no_parts) != 4) {
        PyErr_SetString(PyExc_TypeError, "no_parts must be a parts_cls of 4 fields");
        return -1;
    }
    if (marker_max < 0 || wrap_min < 0 || wrap_tail <= 0 || system_chars <= 0) {
        PyErr_SetString(PyExc_ValueError, "the lengths must be positive");
        return -1;
    }
    Front_clear(self);
    PyObject *empty = PyUnicode_New(0, 0);
    if (empty == NULL)
        return -1;
    self->empty = empty;
    Py_INCREF(parts_cls);
    self->parts_cls = parts_cls;
    Py_INCREF(no_parts);
    self->no_parts = no_parts;
    Py_INCREF(markers);
    self->markers = markers;
    Py_INCREF(redacted_field);
    self->redacted_field = redacted_field;
    Py_INCREF(record_cls);
    self->record_cls = record_cls;
    self->marker_max_chars = marker_max;
    self->wrap_min_chars = wrap_min;
    self->wrap_tail_chars = wrap_tail;
    self->system_chars = system_chars;
    return 0;
}

/* redaction.is_marker(text) of a str: 1, 0, or -1 with an error set */
static int
is_marker(Front *self, PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n <= self->marker_max_chars) {   /* short: the Python expression itself */
        PyObject *stripped = PyObject_CallMethodNoArgs(text, s_strip);
        if (stripped == NULL)
            return -1;
        int blank = PyObject_Length(stripped) == 0;
        PyObject *lowered = blank ? NULL : PyObject_CallMethodNoArgs(stripped, s_lower);
        Py_DECREF(stripped);
        if (blank)
            return 1;
        if (lowered == NULL)
            return -1;
        int found = PySet_Contains(self->markers, lowered);
        Py_DECREF(lowered);
        return found;
    }
    /* long: a marker only if str.strip() leaves nothing, i.e. every character is whitespace */
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
            return 0;
    return 1;
}

static PyObject *
get(PyObject *obj, PyObject *name)
{
    return PyObject_GetAttr(obj, name);
}

/* redaction.is_content_less(event): 1, 0, -1 with an error set, -2: not the types expected */
static int
content_less(Front *self, PyObject *event, PyObject *messages)
{
    PyObject *extra = get(event, s_extra);
    if (extra == NULL)
        return -1;
    if (extra != Py_None && !PyDict_CheckExact(extra)) {
        Py_DECREF(extra);
        return -2;
    }
    if (extra != Py_None && PyDict_GET_SIZE(extra) > 0) {
        PyObject *flag = PyDict_GetItemWithError(extra, self->redacted_field);
        int redacted = flag == Py_True;
        if (flag == NULL && PyErr_Occurred()) {
            Py_DECREF(extra);
            return -1;
        }
        if (redacted) {
            Py_DECREF(extra);
            return 1;
        }
    }
    Py_DECREF(extra);
    PyObject *operation = get(event, s_operation);
    if (operation == NULL)
        return -1;
    int batch = PyObject_RichCompareBool(operation, s_batch, Py_EQ);
    Py_DECREF(operation);
    if (batch < 0)
        return -1;
    if (batch)
        return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(messages); i++) {
        PyObject *content = get(PyList_GET_ITEM(messages, i), s_content);
        if (content == NULL)
            return -1;
        int marker = PyUnicode_CheckExact(content) ? is_marker(self, content) : -2;
        Py_DECREF(content);
        if (marker != 1)
            return marker;   /* 0: a prompt; errors pass on */
    }
    return 1;
}

/* m.content if it is a str (a new reference); NULL with an error set, or NULL without one where
 * it is another type (the Python decides) */
static PyObject *
str_content(PyObject *m)
{
    PyObject *content = get(m, s_content);
    if (content != NULL && !PyUnicode_CheckExact(content))
        Py_CLEAR(content);
    return content;
}

static PyObject *
Front_parts(Front *self, PyObject *event)
{
    PyObject *messages = get(event, s_messages), *out = NULL;
    PyObject *prompt = self->empty, *system = self->empty, *question = self->empty;
    Py_INCREF(prompt);
    Py_INCREF(system);
    Py_INCREF(question);
    long turns = 0;
    if (messages == NULL)
        goto done;
    if (!PyList_CheckExact(messages))
        goto python;
    int less = content_less(self, event, messages);
    if (less == -1)
        goto done;
    if (less == -2)
        goto python;
    if (less == 1) {
        out = self->no_parts;
        Py_INCREF(out);
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(messages); i++) {
        PyObject *m = PyList_GET_ITEM(messages, i);
        PyObject *role = get(m, s_role);
        if (role == NULL)
            goto done;
        if (!PyUnicode_CheckExact(role)) {
            Py_DECREF(role);
            goto python;
        }
        int user = PyUnicode_Compare(role, s_user) == 0, is_system = !user && PyUnicode_Compare(role, s_system) == 0;
        Py_DECREF(role);
        if (user) {
            PyObject *content = str_content(m);
            if (content == NULL)
                goto python;
            Py_SETREF(prompt, content);
            if (PyUnicode_GET_LENGTH(question) == 0) {
                Py_INCREF(prompt);
                Py_SETREF(question, prompt);
            }
            turns++;
        }
        else if (is_system) {
            if (PyUnicode_GET_LENGTH(system) == 0) {
                PyObject *content = str_content(m);
                if (content == NULL)
                    goto python;
                Py_SETREF(system, content);
            }
        }
        else
            turns++;
    }
    /* PromptParts(prompt, system, turns, question): a NamedTuple, filled as tuple.__new__ fills it */
    PyTypeObject *cls = (PyTypeObject *)self->parts_cls;
    PyObject *t = cls->tp_alloc(cls, 4), *n = PyLong_FromLong(turns);
    if (t == NULL || n == NULL) {
        Py_XDECREF(t);
        Py_XDECREF(n);
        goto done;
    }
    PyTuple_SET_ITEM(t, 0, prompt);
    PyTuple_SET_ITEM(t, 1, system);
    PyTuple_SET_ITEM(t, 2, n);
    PyTuple_SET_ITEM(t, 3, question);
    prompt = system = question = NULL;   /* stolen */
    out = t;
    goto done;
python:   /* a type the C does not expect, or an error: None (no error) lets the Python decide */
    if (!PyErr_Occurred()) {
        out = Py_None;
        Py_INCREF(out);
    }
done:
    Py_XDECREF(messages);
    Py_XDECREF(prompt);
    Py_XDECREF(system);
    Py_XDECREF(question);
    return out;
}

/* out.append((kind, value)) */
static int
add(PyObject *out, PyObject *kind, PyObject *value)
{
    if (value == NULL)
        return -1;
    PyObject *pair = PyTuple_Pack(2, kind, value);
    Py_DECREF(value);
    if (pair == NULL)
        return -1;
    int rc = PyList_Append(out, pair);
    Py_DECREF(pair);
    return rc;
}

/* event.<name> if truthy (a new reference), else NULL with *err 0 (or 1 on an error) */
static PyObject *
truthy(PyObject *event, PyObject *name, int *err)
{
    PyObject *v = get(event, name);
    if (v == NULL) {
        *err = 1;
        return NULL;
    }
    int t = PyObject_IsTrue(v);
    if (t <= 0) {
        *err = t < 0;
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

/* linking.link_inputs(event, parts): a new list */
static PyObject *
inputs(Front *self, PyObject *event, PyObject *parts)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    int err = 0;
    PyObject *v = truthy(event, s_payment_fingerprint, &err);
    if ((v != NULL && add(out, k_pay, v) < 0) || err)
        goto fail;
    v = truthy(event, s_client_ip, &err);
    if ((v != NULL && add(out, k_net, v) < 0) || err)
        goto fail;
    PyObject *prompt = PyTuple_GET_ITEM(parts, 0), *system = PyTuple_GET_ITEM(parts, 1);
    Py_ssize_t n = PyUnicode_GET_LENGTH(prompt);
    if (n >= self->wrap_min_chars
        && add(out, k_wrap, PyUnicode_Substring(prompt, n > self->wrap_tail_chars ? n - self->wrap_tail_chars : 0, n)) < 0)
        goto fail;
    if (PyUnicode_GET_LENGTH(system) > 0 && add(out, k_sys, PyUnicode_Substring(system, 0, self->system_chars)) < 0)
        goto fail;
    v = truthy(event, s_user_agent, &err);
    if (err)
        goto fail;
    if (v != NULL) {
        PyObject *key = get(event, s_api_key_id);
        PyObject *client = key == NULL ? NULL : PyTuple_Pack(2, v, key);
        Py_DECREF(v);
        Py_XDECREF(key);
        if (add(out, k_ua, client) < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
Front_record(Front *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "record(event, features, parts)");
        return NULL;
    }
    PyObject *event = args[0], *features = args[1], *parts = args[2];
    if (self->record_cls == Py_None) {
        PyErr_SetString(PyExc_TypeError, "this Front was made without record_cls");
        return NULL;
    }
    if (!PyObject_TypeCheck(parts, (PyTypeObject *)self->parts_cls) || PyTuple_GET_SIZE(parts) != 4
        || !PyUnicode_CheckExact(PyTuple_GET_ITEM(parts, 0)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(parts, 1)))
        Py_RETURN_NONE;
    static PyObject **const names[6] = {&s_account_id, &s_ts_ms, &s_event_id, &s_model, &s_account_created_ms,
                                        &s_access_tier};
    PyTypeObject *cls = (PyTypeObject *)self->record_cls;
    PyObject *record = cls->tp_alloc(cls, 8);
    if (record == NULL)
        return NULL;
    for (int i = 0; i < 6; i++) {
        PyObject *v = get(event, *names[i]);
        if (v == NULL)
            goto fail;
        PyTuple_SET_ITEM(record, i, v);
    }
    PyObject *in = inputs(self, event, parts);
    if (in == NULL)
        goto fail;
    PyTuple_SET_ITEM(record, 6, in);
    PyObject *feats;
    if (features == Py_None) {
        feats = Py_None;
        Py_INCREF(feats);
    }
    else {   /* (bool(features.reasoning), features.area, features.wrapper_fp) */
        PyObject *reasoning = get(features, s_reasoning);
        int r = reasoning == NULL ? -1 : PyObject_IsTrue(reasoning);
        Py_XDECREF(reasoning);
        if (r < 0)
            goto fail;
        PyObject *area = get(features, s_area), *wrapper = area == NULL ? NULL : get(features, s_wrapper_fp);
        feats = wrapper == NULL ? NULL : PyTuple_Pack(3, r ? Py_True : Py_False, area, wrapper);
        Py_XDECREF(area);
        Py_XDECREF(wrapper);
        if (feats == NULL)
            goto fail;
    }
    PyTuple_SET_ITEM(record, 7, feats);
    return record;
fail:
    Py_DECREF(record);   /* unset items are NULL: tuple dealloc skips them */
    return NULL;
}

static PyMethodDef Front_methods[] = {
    {"parts", (PyCFunction)Front_parts, METH_O, "parts(event) -> features.prompt_parts(event), or None"},
    {"record", (PyCFunction)(void (*)(void))Front_record, METH_FASTCALL,
     "record(event, features, parts) -> linking.link_record(event, features, parts), or None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FrontType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.models._eventfront.Front",
    .tp_basicsize = sizeof(Front),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "features.prompt_parts and linking.link_record in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Front_init,
    .tp_dealloc = (destructor)Front_dealloc,
    .tp_traverse = (traverseproc)Front_traverse,
    .tp_clear = (inquiry)Front_clear,
    .tp_methods = Front_methods,
};

static struct PyModuleDef eventfront_module = {
    PyModuleDef_HEAD_INIT, "_eventfront", "The per-request front of the account stage in C.", -1, NULL,
};

#define INTERN(var, text) if (!(var = PyUnicode_InternFromString(text))) return NULL

PyMODINIT_FUNC
PyInit__eventfront(void)
{
    INTERN(s_messages, "messages");
    INTERN(s_extra, "extra");
    INTERN(s_operation, "operation");
    INTERN(s_role, "role");
    INTERN(s_content, "content");
    INTERN(s_batch, "batch");
    INTERN(s_user, "user");
    INTERN(s_system, "system");
    INTERN(s_payment_fingerprint, "payment_fingerprint");
    INTERN(s_client_ip, "client_ip");
    INTERN(s_user_agent, "user_agent");
    INTERN(s_api_key_id, "api_key_id");
    INTERN(s_account_id, "account_id");
    INTERN(s_ts_ms, "ts_ms");
    INTERN(s_event_id, "event_id");
    INTERN(s_model, "model");
    INTERN(s_account_created_ms, "account_created_ms");
    INTERN(s_access_tier, "access_tier");
    INTERN(s_reasoning, "reasoning");
    INTERN(s_area, "area");
    INTERN(s_wrapper_fp, "wrapper_fp");
    INTERN(s_strip, "strip");
    INTERN(s_lower, "lower");
    INTERN(k_pay, "pay");
    INTERN(k_net, "net");
    INTERN(k_wrap, "wrap");
    INTERN(k_sys, "sys");
    INTERN(k_ua, "ua");
    if (PyType_Ready(&FrontType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&eventfront_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&FrontType);
    if (PyModule_AddObject(m, "Front", (PyObject *)&FrontType) < 0) {
        Py_DECREF(&FrontType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
