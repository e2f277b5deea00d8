/* The hot text path of feature extraction, in C: one pass over an ASCII prompt gives what
 * models/features.py:prompt_signals derives from text.analyze(...) and the word tables.
 *
 * The pure-Python code in models/text.py, capability_areas.py, capability_space.py and
 * elicitation.py stays the definition; this is an optional, faster route to the same numbers
 * (tests/test_native.py checks both give identical signals). It never sees non-ASCII text
 * (scan returns None and the caller takes the Python route) and keeps no text between calls.
 *
 * Scanner(words, wrapper_tokens, n_lexicon, n_capabilities).scan(text) ->
 *     None (text is not ASCII) or
 *     (skeleton, head_end, tail_start, area, capability, elicitation_sum, grader)
 *
 * words: {word: (lexicon_area or -1, ((capability_area, weight), ...), elicitation_weight,
 *                grade_word, scale_word)}, the union of the tables (built by models/native.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_LEXICON 256        /* areas counted on the stack per call */
#define MAX_CAPABILITIES 1024

typedef struct {
    uint32_t key_off;      /* the word's bytes in the arena */
    uint32_t key_len;
    int32_t lexicon_area;  /* coarse area (capability_areas), -1: not a lexicon word */
    uint32_t cap_off;      /* its (area, weight) votes in cap_area / cap_weight */
    uint32_t n_cap;        /* 0: not a capability_space word */
    int64_t elicitation;   /* scaled elicitation weight (0: none) */
    uint8_t grade;
    uint8_t scale;
    uint64_t seen;         /* call stamp: counted once per call (the Python code works on sets) */
    uint64_t edge;         /* call stamp: among the wrapper's head or tail tokens this call */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    Py_ssize_t n_entries;
    uint32_t *slots;       /* open addressing: entry index + 1, 0 = empty */
    uint64_t mask;
    char *arena;
    int32_t *cap_area;
    int64_t *cap_weight;
    int wrapper_tokens;
    int n_lexicon;         /* lexicon areas; index n_lexicon is "other" */
    int n_capabilities;    /* capability areas; index n_capabilities is "other" */
    uint64_t stamp;
} Scanner;

static uint64_t
hash_bytes(const char *s, Py_ssize_t n)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static Entry *
lookup(Scanner *self, const char *s, Py_ssize_t n)
{
    uint64_t i = hash_bytes(s, n) & self->mask;
    for (;;) {
        uint32_t slot = self->slots[i];
        if (slot == 0)
            return NULL;
        Entry *e = &self->entries[slot - 1];
        if (e->key_len == (uint32_t)n && memcmp(self->arena + e->key_off, s, n) == 0)
            return e;
        i = (i + 1) & self->mask;
    }
}

static void
Scanner_dealloc(Scanner *self)
{
    PyMem_Free(self->entries);
    PyMem_Free(self->slots);
    PyMem_Free(self->arena);
    PyMem_Free(self->cap_area);
    PyMem_Free(self->cap_weight);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"words", "wrapper_tokens", "n_lexicon", "n_capabilities", NULL};
    PyObject *words;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!iii", kwlist, &PyDict_Type, &words,
                                     &self->wrapper_tokens, &self->n_lexicon, &self->n_capabilities))
        return -1;
    if (self->entries != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    if (self->wrapper_tokens < 1 || self->n_lexicon < 1 || self->n_lexicon > MAX_LEXICON ||
            self->n_capabilities < 1 || self->n_capabilities > MAX_CAPABILITIES) {
        PyErr_Format(PyExc_ValueError, "need wrapper_tokens >= 1, 1 <= n_lexicon <= %d, "
                     "1 <= n_capabilities <= %d", MAX_LEXICON, MAX_CAPABILITIES);
        return -1;
    }
    Py_ssize_t n = PyDict_Size(words), arena_size = 0, n_votes = 0, pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(words, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || !PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 5 ||
                !PyTuple_Check(PyTuple_GET_ITEM(value, 1))) {
            PyErr_SetString(PyExc_TypeError, "words: {str: (int, ((int, int), ...), int, bool, bool)}");
            return -1;
        }
        arena_size += PyUnicode_GET_LENGTH(key);
        n_votes += PyTuple_GET_SIZE(PyTuple_GET_ITEM(value, 1));
    }
    uint64_t capacity = 16;
    while (capacity < (uint64_t)(2 * n + 1))
        capacity <<= 1;
    self->entries = PyMem_Calloc(n ? n : 1, sizeof(Entry));
    self->slots = PyMem_Calloc(capacity, sizeof(uint32_t));
    self->arena = PyMem_Malloc(arena_size ? arena_size : 1);
    self->cap_area = PyMem_Calloc(n_votes ? n_votes : 1, sizeof(int32_t));
    self->cap_weight = PyMem_Calloc(n_votes ? n_votes : 1, sizeof(int64_t));
    if (!self->entries || !self->slots || !self->arena || !self->cap_area || !self->cap_weight) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = capacity - 1;
    Py_ssize_t arena_used = 0, votes_used = 0;
    pos = 0;
    while (PyDict_Next(words, &pos, &key, &value)) {
        /* a scanned token is ASCII [a-z0]+: a word with any other character can never match */
        if (!PyUnicode_IS_ASCII(key))
            continue;
        Py_ssize_t len = PyUnicode_GET_LENGTH(key);
        const char *s = (const char *)PyUnicode_1BYTE_DATA(key);
        Entry *e = &self->entries[self->n_entries];
        e->key_off = (uint32_t)arena_used;
        e->key_len = (uint32_t)len;
        memcpy(self->arena + arena_used, s, len);
        arena_used += len;
        e->lexicon_area = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(value, 0));
        if (e->lexicon_area < -1 || e->lexicon_area >= self->n_lexicon) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "word %R: lexicon area %d out of range", key, e->lexicon_area);
            return -1;
        }
        PyObject *votes = PyTuple_GET_ITEM(value, 1);
        e->cap_off = (uint32_t)votes_used;
        e->n_cap = (uint32_t)PyTuple_GET_SIZE(votes);
        for (Py_ssize_t v = 0; v < PyTuple_GET_SIZE(votes); v++) {
            PyObject *vote = PyTuple_GET_ITEM(votes, v);
            if (!PyTuple_Check(vote) || PyTuple_GET_SIZE(vote) != 2) {
                PyErr_Format(PyExc_TypeError, "word %R: a capability vote is (area, weight)", key);
                return -1;
            }
            long area = PyLong_AsLong(PyTuple_GET_ITEM(vote, 0));
            long long weight = PyLong_AsLongLong(PyTuple_GET_ITEM(vote, 1));
            if (area < 0 || area >= self->n_capabilities) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "word %R: capability area %ld out of range", key, area);
                return -1;
            }
            self->cap_area[votes_used] = (int32_t)area;
            self->cap_weight[votes_used] = weight;
            votes_used++;
        }
        e->elicitation = PyLong_AsLongLong(PyTuple_GET_ITEM(value, 2));
        e->grade = (uint8_t)PyObject_IsTrue(PyTuple_GET_ITEM(value, 3));
        e->scale = (uint8_t)PyObject_IsTrue(PyTuple_GET_ITEM(value, 4));
        if (PyErr_Occurred())
            return -1;
        uint64_t i = hash_bytes(s, len) & self->mask;
        while (self->slots[i] != 0)
            i = (i + 1) & self->mask;
        self->slots[i] = (uint32_t)(self->n_entries + 1);
        self->n_entries++;
    }
    return 0;
}

/* translated character: ASCII letters lower-cased, digits "0", everything else a separator */
static inline char
fold(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return (char)c;
    if (c >= 'A' && c <= 'Z')
        return (char)(c + 32);
    if (c >= '0' && c <= '9')
        return '0';
    return ' ';
}

static Py_ssize_t
argmax(const int64_t *v, int n)
{
    Py_ssize_t best = 0;   /* ties go to the lower index, like list.index(max(...)) */
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

static PyObject *
Scanner_scan(Scanner *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes a str");
        return NULL;
    }
    if (self->entries == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is not initialised");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_NONE;
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    const unsigned char *src = PyUnicode_1BYTE_DATA(text);
    /* the skeleton is never longer than the text; a token needs 2 characters of it (but the last) */
    char stack_out[1024];
    Py_ssize_t stack_spans[2 * 513];
    char *out = stack_out;
    Py_ssize_t *spans = stack_spans;   /* (start, end) of each token in out */
    if (len + 1 > (Py_ssize_t)sizeof(stack_out)) {
        out = PyMem_Malloc(len + 1);
        spans = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * (len / 2 + 2));
        if (!out || !spans) {
            PyMem_Free(out == stack_out ? NULL : out);
            PyMem_Free(spans == stack_spans ? NULL : spans);
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t n_out = 0, n_tokens = 0;
    char previous = ' ';
    for (Py_ssize_t i = 0; i < len; i++) {
        char c = fold(src[i]);
        if (c == ' ') {
            if (previous != ' ')
                spans[2 * n_tokens++ + 1] = n_out;
        } else if (!(c == '0' && previous == '0')) {   /* a run of digits is one "0" */
            if (previous == ' ') {
                if (n_tokens)
                    out[n_out++] = ' ';
                spans[2 * n_tokens] = n_out;
            }
            out[n_out++] = c;
        }
        previous = c;
    }
    if (previous != ' ')
        spans[2 * n_tokens++ + 1] = n_out;

    int edge = self->wrapper_tokens;
    int split = n_tokens > 2 * (Py_ssize_t)edge;   /* a head and a tail around a payload */
    uint64_t stamp = ++self->stamp;
    Entry *hits_stack[512];
    Entry **hits = hits_stack;
    if (n_tokens > 512) {
        hits = PyMem_Malloc(sizeof(Entry *) * n_tokens);
        if (!hits) {
            if (out != stack_out) { PyMem_Free(out); PyMem_Free(spans); }
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t n_hits = 0;
    for (Py_ssize_t t = 0; t < n_tokens; t++) {
        Entry *e = lookup(self, out + spans[2 * t], spans[2 * t + 1] - spans[2 * t]);
        if (e == NULL)
            continue;
        if (split && (t < edge || t >= n_tokens - edge))
            e->edge = stamp;
        if (e->seen != stamp) {
            e->seen = stamp;
            hits[n_hits++] = e;
        }
    }
    int64_t lexicon[MAX_LEXICON], capability[MAX_CAPABILITIES];
    int n_lex = self->n_lexicon, n_cap = self->n_capabilities;
    memset(lexicon, 0, sizeof(int64_t) * n_lex);
    memset(capability, 0, sizeof(int64_t) * n_cap);
    int lexicon_hit = 0, capability_hit = 0, grade = 0, scale = 0;
    long long elicitation = 0;
    for (Py_ssize_t h = 0; h < n_hits; h++) {
        Entry *e = hits[h];
        if (e->lexicon_area >= 0) {
            lexicon[e->lexicon_area]++;
            lexicon_hit = 1;
        }
        elicitation += e->elicitation;
        grade += e->grade;
        scale |= e->scale;
        /* the capability area is the payload's: the wrapper's words are left out */
        if (e->n_cap && !(split && e->edge == stamp)) {
            capability_hit = 1;
            for (uint32_t v = 0; v < e->n_cap; v++) {
                capability[self->cap_area[e->cap_off + v]] += self->cap_weight[e->cap_off + v];
            }
        }
    }
    Py_ssize_t head_end = -1, tail_start = -1;
    if (split) {
        head_end = spans[2 * (edge - 1) + 1];
        tail_start = spans[2 * (n_tokens - edge)];
    }
    PyObject *skeleton = PyUnicode_New(n_out, 127);
    if (skeleton != NULL)
        memcpy(PyUnicode_1BYTE_DATA(skeleton), out, n_out);
    if (hits != hits_stack)
        PyMem_Free(hits);
    if (out != stack_out) {
        PyMem_Free(out);
        PyMem_Free(spans);
    }
    if (skeleton == NULL)
        return NULL;
    return Py_BuildValue("(NnnnnLO)", skeleton, head_end, tail_start,
                         lexicon_hit ? argmax(lexicon, n_lex) : (Py_ssize_t)self->n_lexicon,
                         capability_hit ? argmax(capability, n_cap) : (Py_ssize_t)self->n_capabilities,
                         elicitation, (grade >= 2 && scale) ? Py_True : Py_False);
}

static PyObject *
Scanner_size(Scanner *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->n_entries);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(text) -> None if text is not ASCII, else "
     "(skeleton, head_end, tail_start, area, capability, elicitation_sum, grader)"},
    {"size", (PyCFunction)Scanner_size, METH_NOARGS, "size() -> words in the table"},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "distillguard.models._textscan.Scanner",
    .tp_doc = "One-pass scanner of ASCII prompt text over the detector's word tables.",
    .tp_basicsize = sizeof(Scanner),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef textscan_module = {
    PyModuleDef_HEAD_INIT, "_textscan", "The native text scanner of distillguard's feature extraction.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__textscan(void)
{
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&textscan_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
