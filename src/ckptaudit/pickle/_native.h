/* What the parts of the compiled core share: the node classes and their slot layout.
 *
 * The extension ckptaudit.pickle._native is three C files: _native.c (the module: its method
 * table and the node registration below), _loop.c (the emulator's dispatch loop, transcribing
 * loop.py) and _walker.c (the path walker, transcribing paths.py). Nothing here imports,
 * resolves or calls anything named by a pickle; the parts build and read the same inert nodes
 * as the Python code, through the nodes' __slots__.
 *
 * Names shared between the files start with cka_ and are hidden from the dynamic symbol
 * table, so that only PyInit__native is exported from the shared object.
 */
#ifndef CKPTAUDIT_NATIVE_H
#define CKPTAUDIT_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__GNUC__) || defined(__clang__)
#define CKA_HIDDEN __attribute__((visibility("hidden")))
#else
#define CKA_HIDDEN
#endif

/* The object stored in a __slots__ member at byte offset `off` (NULL when unset). */
#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Call's slots, in the order of cka_call_slot_names. */
enum { C_FUNC, C_ARGS, C_KWARGS, C_OPCODE, C_OFFSET, C_STATE, C_BUILDS, C_BUILD_OFFSET,
       C_ITEMS, C_SETITEMS, C_NSLOTS };

/* Registered by either configure function: both parts build or read Call and PDict nodes. */
CKA_HIDDEN extern PyTypeObject *cka_Call_T, *cka_PDict_T;
CKA_HIDDEN extern Py_ssize_t cka_call_off[C_NSLOTS];
CKA_HIDDEN extern Py_ssize_t cka_pdict_flat_off; /* PDict.flat: key0, value0, key1, ... */

/* Store a new reference to the class `obj` in *out (TypeError unless it is a class). */
CKA_HIDDEN int cka_take_type(PyObject *obj, PyTypeObject **out);

/* Find the byte offset of a writable object member of __slots__ in a plain slotted class. */
CKA_HIDDEN int cka_slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out);

/* Register Call and PDict and find their slots (TypeError if their layout is not as above). */
CKA_HIDDEN int cka_register_nodes(PyObject *call_type, PyObject *pdict_type);

/* Fail with TypeError naming the first keyword argument that was not given. */
CKA_HIDDEN int cka_require(const char *func, const char *const *names, PyObject *const *values,
                           int n);

/* The module's functions, defined in _loop.c and _walker.c (see _native.pyi for their
 * Python signatures). */
CKA_HIDDEN int cka_loop_init(void);
CKA_HIDDEN PyObject *cka_configure_loop(PyObject *self, PyObject *args, PyObject *kwargs);
CKA_HIDDEN PyObject *cka_run(PyObject *self, PyObject *machine);
CKA_HIDDEN PyObject *cka_configure_walker(PyObject *self, PyObject *args, PyObject *kwargs);
CKA_HIDDEN PyObject *cka_locate(PyObject *self, PyObject *args);

#endif
