/* Shared by the extensions that build NamedTuple instances themselves (_eventfront.c,
 * _linkprofile.c): whether a class can be filled with tp_alloc and PyTuple_SET_ITEM. */
#ifndef DISTILLGUARD_NAMEDTUPLE_H
#define DISTILLGUARD_NAMEDTUPLE_H
#include <Python.h>

/* cls is a NamedTuple of n fields: a tuple subclass without fields of its own (no larger
 * instances, no __dict__), whose __new__ is tuple.__new__(cls, values), so an instance made
 * with tp_alloc(cls, n) and filled item by item is the one the class would make */
static int
plain_tuple_class(PyObject *cls, Py_ssize_t n)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)
        || ((PyTypeObject *)cls)->tp_basicsize != PyTuple_Type.tp_basicsize || ((PyTypeObject *)cls)->tp_dictoffset != 0)
        return 0;
    PyObject *fields = PyObject_GetAttrString(cls, "_fields");
    int ok = fields != NULL && PyTuple_Check(fields) && PyTuple_GET_SIZE(fields) == n;
    Py_XDECREF(fields);
    PyErr_Clear();
    return ok;
}

#endif
