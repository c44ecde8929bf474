/* The compiled core's module: its method table, and the node registration both parts use.
 *
 * The parts are _loop.c (the emulator's dispatch loop) and _walker.c (the path walker); see
 * _native.h. Built by setup.py as an optional extension: without a C compiler the package
 * falls back to the pure-Python code, and the tests run both and compare their results.
 */
#include "_native.h"

#include <structmember.h>

PyTypeObject *cka_Call_T = NULL, *cka_PDict_T = NULL;
Py_ssize_t cka_call_off[C_NSLOTS];
Py_ssize_t cka_pdict_flat_off;

static const char *call_slot_names[C_NSLOTS] = {
    "func", "args", "kwargs", "opcode", "offset", "state", "builds", "build_offset", "items",
    "setitems"};

int
cka_slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", type->tp_name, name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || (member->flags & READONLY)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a writable object slot", type->tp_name,
                     name);
        return -1;
    }
    *out = member->offset;
    return 0;
}

int
cka_take_type(PyObject *obj, PyTypeObject **out)
{
    if (!PyType_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "expected a class");
        return -1;
    }
    Py_INCREF(obj);
    Py_XSETREF(*out, (PyTypeObject *)obj);
    return 0;
}

int
cka_register_nodes(PyObject *call_type, PyObject *pdict_type)
{
    if (cka_take_type(call_type, &cka_Call_T) < 0 || cka_take_type(pdict_type, &cka_PDict_T) < 0)
        return -1;
    for (int i = 0; i < C_NSLOTS; i++)
        if (cka_slot_offset(cka_Call_T, call_slot_names[i], &cka_call_off[i]) < 0)
            return -1;
    return cka_slot_offset(cka_PDict_T, "flat", &cka_pdict_flat_off);
}

int
cka_require(const char *func, const char *const *names, PyObject *const *values, int n)
{
    for (int i = 0; i < n; i++) {
        if (values[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required keyword argument '%s'", func,
                         names[i]);
            return -1;
        }
    }
    return 0;
}

static PyMethodDef methods[] = {
    {"configure_loop", (PyCFunction)(void (*)(void))cka_configure_loop,
     METH_VARARGS | METH_KEYWORDS,
     "configure_loop(*, call_type, pdict_type, persid_type, event_type, pickle_error, "
     "struct_error, append_to, setitems_on, handlers, noted, nest_tuple, passed_buffer): "
     "register what the loop builds "
     "and calls."},
    {"run", cka_run, METH_O,
     "run(machine) -> (pos, op_pos, exception): the compiled dispatch loop."},
    {"configure_walker", (PyCFunction)(void (*)(void))cka_configure_walker,
     METH_VARARGS | METH_KEYWORDS,
     "configure_walker(*, call_type, pdict_type, global_type, pset_type, render_steps, "
     "leaf_calls): register what the walker reads and calls."},
    {"locate", cka_locate, METH_VARARGS,
     "locate(root, wanted, max_paths, /) -> (paths, counts, reached): the compiled path "
     "walker."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "The pickle emulator's dispatch loop and the path walker, compiled (loop.py and paths.py "
    "are the reference).",
    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (cka_loop_init() < 0)
        return NULL;
    return PyModule_Create(&module);
}
