/* The pickle emulator's dispatch loop, compiled.
 *
 * This is a transcription of _Machine._loop in vm.py, which stays the reference: the same
 * opcodes are handled inline, in the same way, raising the same exception types, and every
 * other opcode goes to the same registered Python handler. Nothing here imports, resolves or
 * calls anything named by the pickle; it builds the same inert nodes (Call, PDict, PersId)
 * by filling their __slots__ directly, as the pure-Python constructors would.
 *
 * Built by setup.py as an optional extension: without a C compiler the package falls back to
 * the pure-Python loop, and tests run both and compare their results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

/* Registered once by configure(). */
static PyTypeObject *Call_T = NULL, *PDict_T = NULL, *PersId_T = NULL;
static PyObject *PickleError = NULL, *StructError = NULL, *Event = NULL;
static PyObject *append_to = NULL, *setitems_on = NULL;
static unsigned char record_first[256];

enum { C_FUNC, C_ARGS, C_KWARGS, C_OPCODE, C_OFFSET, C_STATE, C_BUILDS, C_BUILD_OFFSET,
       C_ITEMS, C_SETITEMS, C_NSLOTS };
static const char *call_slot_names[C_NSLOTS] = {
    "func", "args", "kwargs", "opcode", "offset", "state", "builds", "build_offset", "items",
    "setitems"};
static Py_ssize_t call_off[C_NSLOTS];
static Py_ssize_t pdict_pairs_off;
enum { P_PID, P_OFFSET, P_OPCODE, P_NSLOTS };
static const char *persid_slot_names[P_NSLOTS] = {"pid", "offset", "opcode"};
static Py_ssize_t persid_off[P_NSLOTS];

static PyObject *s_NEWOBJ, *s_REDUCE, *s_BINPERSID, *s_SETITEMS, *s_APPENDS, *s_BUILD;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Find the byte offset of a __slots__ member; the class must be a plain slotted class. */
static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out)
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

static int
take_type(PyObject *obj, PyTypeObject **out)
{
    if (!PyType_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "expected a class");
        return -1;
    }
    Py_INCREF(obj);
    Py_XSETREF(*out, (PyTypeObject *)obj);
    return 0;
}

static PyObject *
configure(PyObject *self, PyObject *args)
{
    PyObject *call, *pdict, *persid, *pickle_error, *struct_error, *event, *app, *seti, *mask;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO", &call, &pdict, &persid, &pickle_error,
                          &struct_error, &event, &app, &seti, &mask))
        return NULL;
    if (take_type(call, &Call_T) < 0 || take_type(pdict, &PDict_T) < 0 ||
        take_type(persid, &PersId_T) < 0)
        return NULL;
    for (int i = 0; i < C_NSLOTS; i++)
        if (slot_offset(Call_T, call_slot_names[i], &call_off[i]) < 0)
            return NULL;
    for (int i = 0; i < P_NSLOTS; i++)
        if (slot_offset(PersId_T, persid_slot_names[i], &persid_off[i]) < 0)
            return NULL;
    if (slot_offset(PDict_T, "pairs", &pdict_pairs_off) < 0)
        return NULL;
    if (!PyBytes_Check(mask) || PyBytes_GET_SIZE(mask) != 256) {
        PyErr_SetString(PyExc_TypeError, "mask must be 256 bytes");
        return NULL;
    }
    memcpy(record_first, PyBytes_AS_STRING(mask), 256);
    Py_INCREF(pickle_error); Py_XSETREF(PickleError, pickle_error);
    Py_INCREF(struct_error); Py_XSETREF(StructError, struct_error);
    Py_INCREF(event); Py_XSETREF(Event, event);
    Py_INCREF(app); Py_XSETREF(append_to, app);
    Py_INCREF(seti); Py_XSETREF(setitems_on, seti);
    Py_RETURN_NONE;
}

/* A fresh Call node, as Call(func, args, None, opcode, offset) would make it. Steals func and
 * args. */
static PyObject *
new_call(PyObject *func, PyObject *cargs, PyObject *opcode, Py_ssize_t offset)
{
    PyObject *off = PyLong_FromSsize_t(offset);
    PyObject *node = off ? Call_T->tp_alloc(Call_T, 0) : NULL;
    if (node == NULL) {
        Py_XDECREF(off);
        Py_DECREF(func);
        Py_DECREF(cargs);
        return NULL;
    }
    SLOT(node, call_off[C_FUNC]) = func;
    SLOT(node, call_off[C_ARGS]) = cargs;
    SLOT(node, call_off[C_KWARGS]) = Py_NewRef(Py_None);
    SLOT(node, call_off[C_OPCODE]) = Py_NewRef(opcode);
    SLOT(node, call_off[C_OFFSET]) = off;
    SLOT(node, call_off[C_STATE]) = Py_NewRef(Py_None);
    SLOT(node, call_off[C_BUILDS]) = PyLong_FromLong(0);
    SLOT(node, call_off[C_BUILD_OFFSET]) = Py_NewRef(Py_None);
    SLOT(node, call_off[C_ITEMS]) = Py_NewRef(Py_None);
    SLOT(node, call_off[C_SETITEMS]) = Py_NewRef(Py_None);
    return node;
}

static PyObject *
new_pdict(void)
{
    PyObject *pairs = PyList_New(0);
    PyObject *node = pairs ? PDict_T->tp_alloc(PDict_T, 0) : NULL;
    if (node == NULL) {
        Py_XDECREF(pairs);
        return NULL;
    }
    SLOT(node, pdict_pairs_off) = pairs;
    return node;
}

static PyObject *
pickle_error(const char *message, Py_ssize_t offset)
{
    PyObject *exc = PyObject_CallFunction(PickleError, "sn", message, offset);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Pop everything above the innermost MARK, as a new list (NULL with PickleError if none). */
static PyObject *
pop_mark(PyObject *stack, PyObject *metastack, Py_ssize_t op_pos)
{
    Py_ssize_t nmarks = PyList_GET_SIZE(metastack);
    if (nmarks == 0)
        return pickle_error("MARK expected but not found", op_pos);
    Py_ssize_t start = PyLong_AsSsize_t(PyList_GET_ITEM(metastack, nmarks - 1));
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(stack);
    if (start > n)  /* a handler popped below a fence: cannot happen, but never trust it */
        start = n;
    PyObject *items = PyList_GetSlice(stack, start, n);
    if (items == NULL || PyList_SetSlice(stack, start, n, NULL) < 0 ||
        PyList_SetSlice(metastack, nmarks - 1, nmarks, NULL) < 0) {
        Py_XDECREF(items);
        return NULL;
    }
    return items;
}

static Py_ssize_t
current_fence(PyObject *metastack)
{
    Py_ssize_t n = PyList_GET_SIZE(metastack);
    return n ? PyLong_AsSsize_t(PyList_GET_ITEM(metastack, n - 1)) : 0;
}

/* Pop the top of the stack, passing its reference to the caller. The caller has checked
 * that the stack is not empty. */
static inline PyObject *
pop_top(PyObject *stack)
{
    Py_ssize_t n = PyList_GET_SIZE(stack);
    PyObject *v = PyList_GET_ITEM(stack, n - 1);
    Py_SET_SIZE(stack, n - 1);
    return v;
}

static inline uint32_t
u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline double
f64be(const unsigned char *p)
{
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = (bits << 8) | p[i];
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Raise what an out-of-range read raises in the Python loop. */
#define RAISE_INDEX() do { PyErr_SetNone(PyExc_IndexError); goto error; } while (0)
#define NEED_BYTES(k) do { if (pos + (k) > end) { \
        if ((k) == 1) RAISE_INDEX(); \
        PyErr_SetString(StructError, "unpack_from requires a buffer"); goto error; } } while (0)
#define PUSH(v) do { PyObject *v_ = (v); if (v_ == NULL) goto error; \
        if (PyList_Append(stack, v_) < 0) { Py_DECREF(v_); goto error; } Py_DECREF(v_); \
    } while (0)
#define DEPTH() (PyList_GET_SIZE(stack) - fence)

static int
memo_get(PyObject *memo, PyObject *stack, PyObject *key)
{
    if (key == NULL)
        return -1;
    PyObject *value = PyDict_GetItemWithError(memo, key);
    if (value == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, key);
        Py_DECREF(key);
        return -1;
    }
    Py_DECREF(key);
    return PyList_Append(stack, value);
}

static int
memo_put(PyObject *memo, PyObject *key, PyObject *value)
{
    if (key == NULL)
        return -1;
    int rc = PyDict_SetItem(memo, key, value);
    Py_DECREF(key);
    return rc;
}

/* A list of (key, value) tuples from a flat list of alternating keys and values. */
static PyObject *
pair_up(PyObject *items)
{
    Py_ssize_t n = PyList_GET_SIZE(items) / 2;
    PyObject *pairs = PyList_New(n);
    if (pairs == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_Pack(2, PyList_GET_ITEM(items, 2 * i),
                                   PyList_GET_ITEM(items, 2 * i + 1));
        if (t == NULL) {
            Py_DECREF(pairs);
            return NULL;
        }
        PyList_SET_ITEM(pairs, i, t);
    }
    return pairs;
}

/* run(machine, data, start, end, stack, metastack, memo, calls, events, persids, first,
 *     counts, table) -> (pos, op_pos, exception)
 *
 * Runs until an exception ends the loop (STOP's handler raises one too) and returns it with
 * the positions, for _Machine.run to classify exactly as it does the Python loop's. */
static PyObject *
run(PyObject *self, PyObject *args)
{
    PyObject *m, *data_obj, *stack, *metastack, *memo, *calls, *events, *persids, *first;
    PyObject *counts_list, *table;
    Py_ssize_t start, end;
    if (Call_T == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOnnO!O!O!O!O!O!O!O!O!", &m, &data_obj, &start, &end,
                          &PyList_Type, &stack, &PyList_Type, &metastack, &PyDict_Type, &memo,
                          &PyList_Type, &calls, &PyList_Type, &events, &PyList_Type, &persids,
                          &PyDict_Type, &first, &PyList_Type, &counts_list, &PyList_Type,
                          &table))
        return NULL;
    if (PyList_GET_SIZE(counts_list) != 256 || PyList_GET_SIZE(table) != 256) {
        PyErr_SetString(PyExc_ValueError, "counts and table must have 256 entries");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data_obj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (end > view.len || start < 0 || start > end) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "start/end outside the data");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t counts[256];
    Py_ssize_t pos = start, op_pos = start, fence = current_fence(metastack);
    unsigned long ticks = 0;
    memset(counts, 0, sizeof counts);
    if (fence == -1 && PyErr_Occurred())
        goto error;

    for (;;) {
        op_pos = pos;
        if (pos >= end)
            RAISE_INDEX();
        unsigned char op = data[pos++];
        counts[op]++;
        if ((++ticks & 0xFFFFF) == 0 && PyErr_CheckSignals() < 0)
            goto error;
        if (record_first[op] && counts[op] == 1) {
            PyObject *key = PyLong_FromLong(op), *value = PyLong_FromSsize_t(op_pos);
            int rc = (key && value) ? PyDict_SetItem(first, key, value) : -1;
            Py_XDECREF(key);
            Py_XDECREF(value);
            if (rc < 0)
                goto error;
        }
        switch (op) {
        case 104: /* BINGET */
            NEED_BYTES(1);
            if (memo_get(memo, stack, PyLong_FromLong(data[pos])) < 0)
                goto error;
            pos += 1;
            break;
        case 114: /* LONG_BINPUT */
            if (DEPTH() <= 0)
                RAISE_INDEX();
            NEED_BYTES(4);
            if (memo_put(memo, PyLong_FromUnsignedLong(u32le(data + pos)),
                         PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1)) < 0)
                goto error;
            pos += 4;
            break;
        case 113: /* BINPUT */
            if (DEPTH() <= 0)
                RAISE_INDEX();
            NEED_BYTES(1);
            if (memo_put(memo, PyLong_FromLong(data[pos]),
                         PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1)) < 0)
                goto error;
            pos += 1;
            break;
        case 71: /* BINFLOAT */
            NEED_BYTES(8);
            PUSH(PyFloat_FromDouble(f64be(data + pos)));
            pos += 8;
            break;
        case 75: /* BININT1 */
            NEED_BYTES(1);
            PUSH(PyLong_FromLong(data[pos]));
            pos += 1;
            break;
        case 40: /* MARK */
            fence = PyList_GET_SIZE(stack);
            {
                PyObject *f = PyLong_FromSsize_t(fence);
                if (f == NULL || PyList_Append(metastack, f) < 0) {
                    Py_XDECREF(f);
                    goto error;
                }
                Py_DECREF(f);
            }
            break;
        case 125: /* EMPTY_DICT */
            PUSH(new_pdict());
            break;
        case 117: /* SETITEMS */
        {
            PyObject *items = pop_mark(stack, metastack, op_pos);
            if (items == NULL)
                goto error;
            fence = current_fence(metastack);
            if (PyList_GET_SIZE(items) % 2) {
                Py_DECREF(items);
                pickle_error("odd number of items for SETITEMS", op_pos);
                goto error;
            }
            if (DEPTH() <= 0) {
                Py_DECREF(items);
                RAISE_INDEX();
            }
            PyObject *target = PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1);
            PyObject *pairs = pair_up(items);
            Py_DECREF(items);
            if (pairs == NULL)
                goto error;
            int rc;
            if (Py_IS_TYPE(target, PDict_T)) {
                PyObject *dst = SLOT(target, pdict_pairs_off);
                rc = dst ? PyList_SetSlice(dst, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, pairs) : -1;
                if (dst == NULL)
                    PyErr_SetString(PyExc_AttributeError, "pairs");
            } else {
                PyObject *r = PyObject_CallFunction(setitems_on, "OOOOn", m, target, pairs,
                                                    s_SETITEMS, pos);
                rc = r ? 0 : -1;
                Py_XDECREF(r);
            }
            Py_DECREF(pairs);
            if (rc < 0)
                goto error;
            break;
        }
        case 74: /* BININT */
            NEED_BYTES(4);
            PUSH(PyLong_FromLong((long)(int32_t)u32le(data + pos)));
            pos += 4;
            break;
        case 77: /* BININT2 */
            NEED_BYTES(2);
            PUSH(PyLong_FromLong((long)data[pos] | ((long)data[pos + 1] << 8)));
            pos += 2;
            break;
        case 137: /* NEWFALSE */
            PUSH(Py_NewRef(Py_False));
            break;
        case 136: /* NEWTRUE */
            PUSH(Py_NewRef(Py_True));
            break;
        case 88: /* BINUNICODE */
        {
            NEED_BYTES(4);
            uint32_t n = u32le(data + pos);
            pos += 4;
            if ((Py_ssize_t)n > end - pos) {
                char msg[96];
                PyOS_snprintf(msg, sizeof msg,
                              "truncated: %lu bytes declared but only %zd remain",
                              (unsigned long)n, end - pos);
                pickle_error(msg, pos - 4);
                goto error;
            }
            PUSH(PyUnicode_DecodeUTF8((const char *)data + pos, n, "surrogatepass"));
            pos += n;
            break;
        }
        case 41: /* EMPTY_TUPLE */
            PUSH(PyTuple_New(0));
            break;
        case 98: /* BUILD */
        {
            if (DEPTH() < 2)
                RAISE_INDEX();
            PyObject *state = pop_top(stack);
            PyObject *target = PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1);
            if (Py_IS_TYPE(target, Call_T)) {
                Py_XSETREF(SLOT(target, call_off[C_STATE]), state);
                PyObject *builds = SLOT(target, call_off[C_BUILDS]);
                PyObject *one = PyLong_FromLong(1);
                PyObject *more = builds ? PyNumber_Add(builds, one) : NULL;
                Py_DECREF(one);
                if (more == NULL)
                    goto error;
                Py_XSETREF(SLOT(target, call_off[C_BUILDS]), more);
                if (SLOT(target, call_off[C_BUILD_OFFSET]) == Py_None) {
                    PyObject *off = PyLong_FromSsize_t(op_pos);
                    if (off == NULL)
                        goto error;
                    Py_XSETREF(SLOT(target, call_off[C_BUILD_OFFSET]), off);
                }
            } else {
                PyObject *ev = PyObject_CallFunction(Event, "OOn", s_BUILD, target, op_pos);
                Py_DECREF(state);
                if (ev == NULL)
                    goto error;
                int rc = PyList_Append(events, ev);
                Py_DECREF(ev);
                if (rc < 0)
                    goto error;
            }
            break;
        }
        case 129: /* NEWOBJ */
        {
            if (DEPTH() < 2)
                RAISE_INDEX();
            PyObject *cargs = pop_top(stack);
            PyObject *cls = pop_top(stack);
            PyObject *node = new_call(cls, cargs, s_NEWOBJ, op_pos);
            if (node == NULL || PyList_Append(calls, node) < 0) {
                Py_XDECREF(node);
                goto error;
            }
            PUSH(node);
            break;
        }
        case 82: /* REDUCE */
        {
            if (DEPTH() < 2)
                RAISE_INDEX();
            PyObject *cargs = pop_top(stack);
            Py_ssize_t top = PyList_GET_SIZE(stack) - 1;
            PyObject *func = Py_NewRef(PyList_GET_ITEM(stack, top));
            PyObject *node = new_call(func, cargs, s_REDUCE, op_pos);
            if (node == NULL || PyList_Append(calls, node) < 0) {
                Py_XDECREF(node);
                goto error;
            }
            PyList_SetItem(stack, top, node); /* steals node, drops func's stack reference */
            break;
        }
        case 116: /* TUPLE */
        {
            PyObject *items = pop_mark(stack, metastack, op_pos);
            if (items == NULL)
                goto error;
            fence = current_fence(metastack);
            PyObject *t = PyList_AsTuple(items);
            Py_DECREF(items);
            PUSH(t);
            break;
        }
        case 133: /* TUPLE1 */
        case 134: /* TUPLE2 */
        case 135: /* TUPLE3 */
        {
            Py_ssize_t k = op - 132;
            if (DEPTH() < k)
                RAISE_INDEX();
            Py_ssize_t n = PyList_GET_SIZE(stack);
            PyObject *t = PyTuple_New(k);
            if (t == NULL)
                goto error;
            for (Py_ssize_t i = 0; i < k; i++)
                PyTuple_SET_ITEM(t, i, PyList_GET_ITEM(stack, n - k + i)); /* moved */
            Py_SET_SIZE(stack, n - k);
            PUSH(t);
            break;
        }
        case 106: /* LONG_BINGET */
            NEED_BYTES(4);
            if (memo_get(memo, stack, PyLong_FromUnsignedLong(u32le(data + pos))) < 0)
                goto error;
            pos += 4;
            break;
        case 78: /* NONE */
            PUSH(Py_NewRef(Py_None));
            break;
        case 93: /* EMPTY_LIST */
            PUSH(PyList_New(0));
            break;
        case 101: /* APPENDS */
        {
            PyObject *items = pop_mark(stack, metastack, op_pos);
            if (items == NULL)
                goto error;
            fence = current_fence(metastack);
            if (DEPTH() <= 0) {
                Py_DECREF(items);
                RAISE_INDEX();
            }
            PyObject *target = PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1);
            int rc;
            if (PyList_CheckExact(target)) {
                rc = PyList_SetSlice(target, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, items);
            } else {
                PyObject *r = PyObject_CallFunction(append_to, "OOOOn", m, target, items,
                                                    s_APPENDS, pos);
                rc = r ? 0 : -1;
                Py_XDECREF(r);
            }
            Py_DECREF(items);
            if (rc < 0)
                goto error;
            break;
        }
        case 140: /* SHORT_BINUNICODE */
        {
            NEED_BYTES(1);
            Py_ssize_t n = data[pos];
            pos += 1;
            if (n > end - pos) {
                pickle_error("truncated string", pos - 1);
                goto error;
            }
            PUSH(PyUnicode_DecodeUTF8((const char *)data + pos, n, "surrogatepass"));
            pos += n;
            break;
        }
        case 148: /* MEMOIZE */
            if (DEPTH() <= 0)
                RAISE_INDEX();
            if (memo_put(memo, PyLong_FromSsize_t(PyDict_GET_SIZE(memo)),
                         PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1)) < 0)
                goto error;
            break;
        case 81: /* BINPERSID */
        {
            if (DEPTH() <= 0)
                RAISE_INDEX();
            PyObject *off = PyLong_FromSsize_t(op_pos);
            PyObject *node = off ? PersId_T->tp_alloc(PersId_T, 0) : NULL;
            if (node == NULL) {
                Py_XDECREF(off);
                goto error;
            }
            SLOT(node, persid_off[P_PID]) = pop_top(stack);
            SLOT(node, persid_off[P_OFFSET]) = off;
            SLOT(node, persid_off[P_OPCODE]) = Py_NewRef(s_BINPERSID);
            if (PyList_Append(persids, node) < 0) {
                Py_DECREF(node);
                goto error;
            }
            PUSH(node);
            break;
        }
        default:
        {
            PyObject *handler = PyList_GET_ITEM(table, op);
            if (handler == Py_None) {
                char msg[40];
                PyOS_snprintf(msg, sizeof msg, "invalid opcode byte 0x%02x", op);
                pickle_error(msg, op_pos);
                goto error;
            }
            PyObject *r = PyObject_CallFunction(handler, "On", m, pos);
            if (r == NULL)
                goto error;
            pos = PyLong_AsSsize_t(r);
            Py_DECREF(r);
            if (pos == -1 && PyErr_Occurred())
                goto error;
            fence = current_fence(metastack);
            if (fence == -1 && PyErr_Occurred())
                goto error;
            break;
        }
        }
    }

error:
    PyBuffer_Release(&view);
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL && value != NULL)
            PyException_SetTraceback(value, tb);
        for (int i = 0; i < 256; i++) {
            if (counts[i] == 0)
                continue;
            PyObject *old = PyList_GET_ITEM(counts_list, i);
            Py_ssize_t before = PyLong_AsSsize_t(old);
            PyObject *now = PyLong_FromSsize_t(before + counts[i]);
            if (now == NULL) {
                Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
                return NULL;
            }
            PyList_SetItem(counts_list, i, now);
        }
        if (value == NULL || !PyErr_GivenExceptionMatches(value, PyExc_Exception)) {
            /* KeyboardInterrupt and friends end the audit, as in the Python loop. */
            PyErr_Restore(type, value, tb);
            return NULL;
        }
        Py_XDECREF(type);
        Py_XDECREF(tb);
        PyObject *out = Py_BuildValue("nnN", pos, op_pos, value);
        return out;
    }
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Call, PDict, PersId, PickleError, struct_error, Event, append_to, "
     "setitems_on, record_first_mask): register the node classes and helpers."},
    {"run", run, METH_VARARGS,
     "run(machine, data, start, end, stack, metastack, memo, calls, events, persids, first, "
     "counts, table) -> (pos, op_pos, exception): the compiled dispatch loop."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vmloop",
    "The pickle emulator's dispatch loop, compiled (see vm.py for the reference).", -1,
    methods};

PyMODINIT_FUNC
PyInit__vmloop(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(s_NEWOBJ, "NEWOBJ");
    INTERN(s_REDUCE, "REDUCE");
    INTERN(s_BINPERSID, "BINPERSID");
    INTERN(s_SETITEMS, "SETITEMS");
    INTERN(s_APPENDS, "APPENDS");
    INTERN(s_BUILD, "BUILD");
#undef INTERN
    return PyModule_Create(&module);
}
