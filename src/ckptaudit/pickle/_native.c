/* The compiled core: the pickle emulator's dispatch loop and the path walker.
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
static Py_ssize_t pdict_flat_off;  /* PDict.flat: key0, value0, key1, value1, ... */
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
    if (slot_offset(PDict_T, "flat", &pdict_flat_off) < 0)
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
    PyObject *flat = PyList_New(0);
    PyObject *node = flat ? PDict_T->tp_alloc(PDict_T, 0) : NULL;
    if (node == NULL) {
        Py_XDECREF(flat);
        return NULL;
    }
    SLOT(node, pdict_flat_off) = flat;
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

/* Append a new reference to a list and drop ours; a NULL item (a failed call) is an error. */
static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* Raise what an out-of-range read raises in the Python loop. */
#define RAISE_INDEX() do { PyErr_SetNone(PyExc_IndexError); goto error; } while (0)
#define NEED_BYTES(k) do { if (pos + (k) > end) { \
        if ((k) == 1) RAISE_INDEX(); \
        PyErr_SetString(StructError, "unpack_from requires a buffer"); goto error; } } while (0)
#define PUSH(v) do { if (append_new(stack, (v)) < 0) goto error; } while (0)
#define DEPTH() (PyList_GET_SIZE(stack) - fence)

/* The memo. Real pickles number their memo entries 0, 1, 2, ... so small keys live in an
 * array (8 bytes each, where a dict entry with its int key costs about 70). A key far beyond
 * the entries stored so far goes to a dict instead, so a hostile key like 2**32 - 1 cannot
 * make the array huge: its size stays below twice the number of PUTs plus a constant, and
 * every PUT costs at least two input bytes. The dict only ever holds keys >= the array's
 * capacity, so each key lives in exactly one place and `count` is the number of distinct
 * keys, which MEMOIZE uses as the next key (len(memo) in the Python loop). */
typedef struct {
    PyObject **arr;
    Py_ssize_t cap;
    PyObject *big;      /* dict of PyLong -> value, or NULL */
    Py_ssize_t count;   /* distinct keys */
    Py_ssize_t puts;
} Memo;

static void
memo_free(Memo *memo)
{
    for (Py_ssize_t i = 0; i < memo->cap; i++)
        Py_XDECREF(memo->arr[i]);
    PyMem_Free(memo->arr);
    Py_XDECREF(memo->big);
    memo->arr = NULL;
    memo->big = NULL;
    memo->cap = 0;
}

/* Grow the array to cover `key`, moving dict entries it now covers. */
static int
memo_grow(Memo *memo, size_t key)
{
    Py_ssize_t limit = 2 * memo->puts + 1024;
    Py_ssize_t want = memo->cap * 2 > (Py_ssize_t)key + 1 ? memo->cap * 2 : (Py_ssize_t)key + 1;
    if (want < 64)
        want = 64;
    if (want > limit)
        want = limit;
    PyObject **grown = PyMem_Realloc(memo->arr, want * sizeof(PyObject *));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(grown + memo->cap, 0, (want - memo->cap) * sizeof(PyObject *));
    memo->arr = grown;
    memo->cap = want;
    if (memo->big != NULL && PyDict_GET_SIZE(memo->big) > 0) {
        PyObject *keys = PyDict_Keys(memo->big);
        if (keys == NULL)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            PyObject *k = PyList_GET_ITEM(keys, i);
            size_t at = PyLong_AsSize_t(k);
            if (at == (size_t)-1 && PyErr_Occurred()) {
                PyErr_Clear(); /* negative or too big for the array: stays in the dict */
                continue;
            }
            if (at >= (size_t)want)
                continue;
            PyObject *v = PyDict_GetItemWithError(memo->big, k);
            if (v == NULL) {
                Py_DECREF(keys);
                return -1;
            }
            memo->arr[at] = Py_NewRef(v);
            if (PyDict_DelItem(memo->big, k) < 0) {
                Py_DECREF(keys);
                return -1;
            }
        }
        Py_DECREF(keys);
    }
    return 0;
}

/* Store under a key given as a PyLong (text PUT) or a size_t (binary PUTs); key_obj may be
 * NULL when the key is a size_t. */
static int
memo_store(Memo *memo, size_t key, PyObject *key_obj, PyObject *value)
{
    memo->puts++;
    int small = key_obj == NULL || !(key == (size_t)-1);
    if (small && key >= (size_t)memo->cap && key < (size_t)(2 * memo->puts + 1024) &&
        memo_grow(memo, key) < 0)
        return -1;
    if (small && key < (size_t)memo->cap) {
        PyObject *old = memo->arr[key];
        memo->arr[key] = Py_NewRef(value);
        if (old == NULL)
            memo->count++;
        Py_XDECREF(old);
        return 0;
    }
    if (memo->big == NULL && (memo->big = PyDict_New()) == NULL)
        return -1;
    PyObject *k = key_obj ? Py_NewRef(key_obj) : PyLong_FromSize_t(key);
    if (k == NULL)
        return -1;
    Py_ssize_t before = PyDict_GET_SIZE(memo->big);
    int rc = PyDict_SetItem(memo->big, k, value);
    Py_DECREF(k);
    if (rc == 0 && PyDict_GET_SIZE(memo->big) > before)
        memo->count++;
    return rc;
}

/* Push the value stored under key (or raise KeyError(key), as the Python loop's memo[key]). */
static int
memo_push(Memo *memo, PyObject *stack, size_t key, PyObject *key_obj)
{
    int small = key_obj == NULL || !(key == (size_t)-1);
    if (small && key < (size_t)memo->cap && memo->arr[key] != NULL)
        return PyList_Append(stack, memo->arr[key]);
    PyObject *k = key_obj ? Py_NewRef(key_obj) : PyLong_FromSize_t(key);
    if (k == NULL)
        return -1;
    PyObject *value = memo->big ? PyDict_GetItemWithError(memo->big, k) : NULL;
    if (value == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, k);
        Py_DECREF(k);
        return -1;
    }
    Py_DECREF(k);
    return PyList_Append(stack, value);
}

/* A text opcode's decimal argument, parsed as int(raw) parses it; *next is after the line. */
static PyObject *
line_int(const unsigned char *data, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *next)
{
    const unsigned char *nl = memchr(data + pos, '\n', end - pos);
    if (nl == NULL)
        return pickle_error("truncated: line argument without newline", pos);
    /* The C unpickler reads the line as a C string: it ends at a NUL byte. */
    const unsigned char *nul = memchr(data + pos, '\0', nl - (data + pos));
    const unsigned char *stop = nul != NULL ? nul : nl;
    PyObject *raw = PyBytes_FromStringAndSize((const char *)data + pos, stop - (data + pos));
    if (raw == NULL)
        return NULL;
    PyObject *value = PyNumber_Long(raw);
    Py_DECREF(raw);
    *next = (nl - data) + 1;
    return value;
}

/* A key as a size_t, or (size_t)-1 when it has none (negative or huge). */
static size_t
key_of(PyObject *key)
{
    size_t k = PyLong_AsSize_t(key);
    if (k == (size_t)-1 && PyErr_Occurred())
        PyErr_Clear();
    return k;
}

/* Extend `dst` (a plain dict's flat keys and values, or a plain list) with `seq`; for any other target
 * (dst NULL) hand the operation to the Python helper, which records it as an event. */
static int
extend_or_delegate(PyObject *dst, PyObject *helper, PyObject *m, PyObject *target,
                   PyObject *seq, PyObject *opname, Py_ssize_t pos)
{
    if (dst != NULL)
        return PyList_SetSlice(dst, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, seq);
    PyObject *r = PyObject_CallFunction(helper, "OOOOn", m, target, seq, opname, pos);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* run(machine, data, start, end, stack, metastack, calls, events, persids, first,
 *     counts, table) -> (pos, op_pos, exception)
 *
 * Runs until an exception ends the loop (STOP's handler raises one too) and returns it with
 * the positions, for _Machine.run to classify exactly as it does the Python loop's. */
static PyObject *
run(PyObject *self, PyObject *args)
{
    PyObject *m, *data_obj, *stack, *metastack, *calls, *events, *persids, *first;
    PyObject *counts_list, *table;
    Py_ssize_t start, end;
    if (Call_T == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOnnO!O!O!O!O!O!O!O!", &m, &data_obj, &start, &end,
                          &PyList_Type, &stack, &PyList_Type, &metastack,
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
    Memo memo = {NULL, 0, NULL, 0, 0};
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
            if (memo_push(&memo, stack, data[pos], NULL) < 0)
                goto error;
            pos += 1;
            break;
        case 114: /* LONG_BINPUT */
            if (DEPTH() <= 0)
                RAISE_INDEX();
            NEED_BYTES(4);
            if (memo_store(&memo, u32le(data + pos), NULL,
                           PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1)) < 0)
                goto error;
            pos += 4;
            break;
        case 113: /* BINPUT */
            if (DEPTH() <= 0)
                RAISE_INDEX();
            NEED_BYTES(1);
            if (memo_store(&memo, data[pos], NULL,
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
            if (append_new(metastack, PyLong_FromSsize_t(fence)) < 0)
                goto error;
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
            PyObject *dst = Py_IS_TYPE(target, PDict_T) ? SLOT(target, pdict_flat_off) : NULL;
            int rc = extend_or_delegate(dst, setitems_on, m, target, items, s_SETITEMS, pos);
            Py_DECREF(items);
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
                if (append_new(events, ev) < 0)
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
            if (memo_push(&memo, stack, u32le(data + pos), NULL) < 0)
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
            PyObject *dst = PyList_CheckExact(target) ? target : NULL;
            int rc = extend_or_delegate(dst, append_to, m, target, items, s_APPENDS, pos);
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
            if (memo_store(&memo, (size_t)memo.count, NULL,
                           PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1)) < 0)
                goto error;
            break;
        case 81: /* BINPERSID (a handler in the Python loop: its error, its message) */
        {
            if (DEPTH() <= 0) {
                pickle_error("stack underflow", op_pos);
                goto error;
            }
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
        case 103: /* GET (text): the memo lives here, so its text opcodes do too */
        {
            Py_ssize_t next;
            PyObject *key = line_int(data, pos, end, &next);
            if (key == NULL)
                goto error;
            int rc = memo_push(&memo, stack, key_of(key), key);
            if (rc < 0 && PyErr_ExceptionMatches(PyExc_KeyError)) {
                /* The handler's message: "memo key N not found" at the opcode. */
                PyErr_Clear();
                PyObject *text = PyUnicode_FromFormat("memo key %S not found", key);
                if (text != NULL) {
                    pickle_error(PyUnicode_AsUTF8(text), op_pos);
                    Py_DECREF(text);
                }
            }
            Py_DECREF(key);
            if (rc < 0)
                goto error;
            pos = next;
            break;
        }
        case 112: /* PUT (text) */
        {
            Py_ssize_t next;
            PyObject *key = line_int(data, pos, end, &next);
            if (key == NULL)
                goto error;
            PyObject *zero = PyLong_FromLong(0);
            int negative = zero ? PyObject_RichCompareBool(key, zero, Py_LT) : -1;
            Py_XDECREF(zero);
            if (negative != 0) {
                Py_DECREF(key);
                if (negative > 0)
                    pickle_error("negative PUT argument", op_pos);
                goto error;
            }
            if (DEPTH() <= 0) {
                Py_DECREF(key);
                pickle_error("stack underflow", op_pos);
                goto error;
            }
            int rc = memo_store(&memo, key_of(key), key,
                                PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1));
            Py_DECREF(key);
            if (rc < 0)
                goto error;
            pos = next;
            break;
        }
        case 115: /* SETITEM on a plain dict; anything else goes to the handler */
        case 97:  /* APPEND on a plain list; likewise */
        {
            Py_ssize_t need = op == 115 ? 3 : 2;
            if (DEPTH() < need) {
                /* The handler's own check, with its message. */
                pickle_error("stack underflow", op_pos);
                goto error;
            }
            Py_ssize_t n = PyList_GET_SIZE(stack);
            PyObject *target = PyList_GET_ITEM(stack, n - need);
            if (op == 115 && Py_IS_TYPE(target, PDict_T) && SLOT(target, pdict_flat_off)) {
                PyObject *flat = SLOT(target, pdict_flat_off);
                PyObject *value = pop_top(stack), *key = pop_top(stack);
                int rc = PyList_Append(flat, key);
                if (rc == 0)
                    rc = PyList_Append(flat, value);
                Py_DECREF(key);
                Py_DECREF(value);
                if (rc < 0)
                    goto error;
                break;
            }
            if (op == 97 && PyList_CheckExact(target)) {
                PyObject *item = pop_top(stack);
                int rc = PyList_Append(target, item);
                Py_DECREF(item);
                if (rc < 0)
                    goto error;
                break;
            }
        }
            /* fall through */
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
        memo_free(&memo);
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


/* ---------------------------------------------------------------------------------------
 * The path walker: a transcription of locate() in paths.py (the reference).
 *
 * Paths are not built while walking: each pushed child records (parent step, kind, where),
 * and only the paths a finding lists are rendered, by paths.render_steps in Python, so the
 * text of every segment comes from the same code as in the Python walker.
 */

static PyTypeObject *Global_T = NULL, *PSet_T = NULL;
static Py_ssize_t global_module_off, global_name_off, pset_items_off;
static PyObject *render_steps = NULL, *leaf_calls = NULL;

/* In the order of paths.py's step kinds. */
enum { K_ITEM, K_DICT_KEY, K_DICT_VALUE, K_FIELD, K_ARG, K_ARGS, K_KWARG, K_CALL, K_SETSTATE,
       K_SETITEM_VALUE };

typedef struct { Py_ssize_t parent; int kind; PyObject *where; Py_ssize_t index; } Step;
typedef struct { PyObject *node; Py_ssize_t step; } Todo;

typedef struct { void **slots; size_t mask, used; } PtrSet;

static int
ptrset_init(PtrSet *set, size_t hint)
{
    size_t cap = 1024;
    while (cap < hint * 2)
        cap <<= 1;
    set->slots = PyMem_Calloc(cap, sizeof(void *));
    set->mask = cap - 1;
    set->used = 0;
    return set->slots ? 0 : -1;
}

static inline size_t
ptr_hash(void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static inline int
ptrset_has(const PtrSet *set, void *p)
{
    for (size_t i = ptr_hash(p) & set->mask;; i = (i + 1) & set->mask) {
        if (set->slots[i] == p)
            return 1;
        if (set->slots[i] == NULL)
            return 0;
    }
}

/* Add p; 1 if added, 0 if present, -1 on memory error. */
static int
ptrset_add(PtrSet *set, void *p)
{
    if ((set->used + 1) * 2 > set->mask + 1) {
        size_t cap = (set->mask + 1) * 2;
        void **old = set->slots;
        size_t old_cap = set->mask + 1;
        set->slots = PyMem_Calloc(cap, sizeof(void *));
        if (set->slots == NULL) {
            set->slots = old;
            return -1;
        }
        set->mask = cap - 1;
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i] == NULL)
                continue;
            size_t j = ptr_hash(old[i]) & set->mask;
            while (set->slots[j] != NULL)
                j = (j + 1) & set->mask;
            set->slots[j] = old[i];
        }
        PyMem_Free(old);
    }
    for (size_t i = ptr_hash(p) & set->mask;; i = (i + 1) & set->mask) {
        if (set->slots[i] == p)
            return 0;
        if (set->slots[i] == NULL) {
            set->slots[i] = p;
            set->used++;
            return 1;
        }
    }
}

typedef struct {
    Step *steps; Py_ssize_t nsteps, capsteps;
    Todo *todo; Py_ssize_t ntodo, captodo;
    PtrSet seen, wanted;
} Walk;

static inline int
is_primitive(PyObject *v)
{
    PyTypeObject *t = Py_TYPE(v);
    return v == Py_None || t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type ||
           t == &PyBool_Type || t == &PyBytes_Type || t == &PyByteArray_Type ||
           t == &PyComplex_Type;
}

/* An empty list, tuple or dict: nothing below it. A file of a million `}` must not cost a
 * walker step each (the results are the same: paths.py skips them when popped). */
static int
is_empty_container(PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyList_Type)
        return PyList_GET_SIZE(o) == 0;
    if (t == &PyTuple_Type)
        return PyTuple_GET_SIZE(o) == 0;
    if (t == PDict_T) {
        PyObject *flat = SLOT(o, pdict_flat_off);
        return flat != NULL && PyList_CheckExact(flat) && PyList_GET_SIZE(flat) == 0;
    }
    return 0;
}

/* Push a child unless the walk can learn nothing from it (the same filter as paths.py). */
static int
push(Walk *w, PyObject *child, Py_ssize_t parent, int kind, PyObject *where, Py_ssize_t index)
{
    if (is_primitive(child))
        return 0;
    if ((ptrset_has(&w->seen, child) || is_empty_container(child)) &&
        !ptrset_has(&w->wanted, child))
        return 0;
    if (w->nsteps == w->capsteps) {
        Py_ssize_t cap = w->capsteps * 2;
        Step *grown = PyMem_Realloc(w->steps, cap * sizeof(Step));
        if (grown == NULL)
            return -1;
        w->steps = grown;
        w->capsteps = cap;
    }
    if (w->ntodo == w->captodo) {
        Py_ssize_t cap = w->captodo * 2;
        Todo *grown = PyMem_Realloc(w->todo, cap * sizeof(Todo));
        if (grown == NULL)
            return -1;
        w->todo = grown;
        w->captodo = cap;
    }
    Step *s = &w->steps[w->nsteps];
    s->parent = parent;
    s->kind = kind;
    s->where = where;
    s->index = index;
    w->todo[w->ntodo].node = child;
    w->todo[w->ntodo].step = w->nsteps;
    w->nsteps++;
    w->ntodo++;
    return 0;
}

/* Children of a sequence in reverse (so that they pop in document order). */
static int
push_items(Walk *w, PyObject *seq, Py_ssize_t parent, int kind)
{
    if (!PyList_Check(seq) && !PyTuple_Check(seq))
        return 0;
    for (Py_ssize_t i = PySequence_Fast_GET_SIZE(seq) - 1; i >= 0; i--)
        if (push(w, PySequence_Fast_GET_ITEM(seq, i), parent, kind, seq, i) < 0)
            return -1;
    return 0;
}

/* Children of a dict's flat keys and values (PDict.flat): each key (when not a primitive),
 * then its value. */
static int
push_flat(Walk *w, PyObject *flat, Py_ssize_t parent, int value_kind, int with_keys)
{
    if (flat == NULL || !PyList_Check(flat))
        return 0;
    for (Py_ssize_t i = PyList_GET_SIZE(flat) / 2 - 1; i >= 0; i--) {
        PyObject *k = PyList_GET_ITEM(flat, 2 * i), *v = PyList_GET_ITEM(flat, 2 * i + 1);
        if (push(w, v, parent, value_kind, flat, i) < 0)
            return -1;
        if (with_keys && !is_primitive(k) && push(w, k, parent, K_DICT_KEY, flat, i) < 0)
            return -1;
    }
    return 0;
}

/* Children of a list of (key, value) pairs (a Call's setitems), in the same order. */
static int
push_pairs(Walk *w, PyObject *pairs, Py_ssize_t parent, int value_kind, int with_keys)
{
    if (pairs == NULL || !PyList_Check(pairs))
        return 0;
    for (Py_ssize_t i = PyList_GET_SIZE(pairs) - 1; i >= 0; i--) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2)
            continue;
        PyObject *k = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
        if (push(w, v, parent, value_kind, pairs, i) < 0)
            return -1;
        if (with_keys && !is_primitive(k) && push(w, k, parent, K_DICT_KEY, pairs, i) < 0)
            return -1;
    }
    return 0;
}

static inline PyObject *
flat_of(PyObject *pdict)
{
    return Py_IS_TYPE(pdict, PDict_T) ? SLOT(pdict, pdict_flat_off) : NULL;
}

/* BUILD state: fields of a dict state, both dicts of a (dict, slots) state, else the whole
 * state as one child. Pushed in reverse: this runs after the later children were pushed. */
static int
push_state(Walk *w, PyObject *state, Py_ssize_t parent)
{
    if (Py_IS_TYPE(state, PDict_T))
        return push_flat(w, flat_of(state), parent, K_FIELD, 0);
    if (PyTuple_CheckExact(state) && PyTuple_GET_SIZE(state) == 2) {
        PyObject *a = PyTuple_GET_ITEM(state, 0), *b = PyTuple_GET_ITEM(state, 1);
        if ((a == Py_None || Py_IS_TYPE(a, PDict_T)) && Py_IS_TYPE(b, PDict_T)) {
            if (push_flat(w, flat_of(b), parent, K_FIELD, 0) < 0)
                return -1;
            return a == Py_None ? 0 : push_flat(w, flat_of(a), parent, K_FIELD, 0);
        }
    }
    return push(w, state, parent, K_SETSTATE, NULL, 0);
}

static int
is_leaf_call(PyObject *func)
{
    PyObject *module = SLOT(func, global_module_off), *name = SLOT(func, global_name_off);
    if (module == NULL || name == NULL)
        return 0;
    PyObject *qualified = PyUnicode_FromFormat("%S.%S", module, name);
    if (qualified == NULL)
        return -1;
    int found = PySequence_Contains(leaf_calls, qualified);
    Py_DECREF(qualified);
    return found;
}

static int
truthy(PyObject *v)
{
    return v != NULL && PyObject_IsTrue(v) == 1;
}

static int
push_call(Walk *w, PyObject *node, Py_ssize_t parent)
{
    PyObject *func = SLOT(node, call_off[C_FUNC]), *args = SLOT(node, call_off[C_ARGS]);
    PyObject *kwargs = SLOT(node, call_off[C_KWARGS]), *state = SLOT(node, call_off[C_STATE]);
    PyObject *items = SLOT(node, call_off[C_ITEMS]);
    PyObject *setitems = SLOT(node, call_off[C_SETITEMS]);
    int is_global = func != NULL && Py_IS_TYPE(func, Global_T);
    /* The Python walker's fast path (a class, arguments, a dict of fields) skips the leaf
     * check; everything else follows _children(). */
    int fast = is_global && state != NULL && Py_IS_TYPE(state, PDict_T) && args != NULL &&
               PyTuple_CheckExact(args) && kwargs == Py_None && !truthy(items) &&
               !truthy(setitems);
    if (!fast && is_global) {
        int leaf = is_leaf_call(func);
        if (leaf != 0)
            return leaf < 0 ? -1 : 0;
    }
    /* Pushed last-first: setitems, items, state, kwargs, args, func. */
    if (truthy(setitems) && push_pairs(w, setitems, parent, K_SETITEM_VALUE, 1) < 0)
        return -1;
    if (truthy(items) && push_items(w, items, parent, K_ITEM) < 0)
        return -1;
    if (truthy(SLOT(node, call_off[C_BUILDS])) && state != NULL && push_state(w, state, parent) < 0)
        return -1;
    if (kwargs != NULL && Py_IS_TYPE(kwargs, PDict_T) &&
        push_flat(w, flat_of(kwargs), parent, K_KWARG, 0) < 0)
        return -1;
    if (args != NULL && PyTuple_CheckExact(args)) {
        if (push_items(w, args, parent, K_ARG) < 0)
            return -1;
    } else if (args != NULL && args != Py_None && push(w, args, parent, K_ARGS, NULL, 0) < 0) {
        return -1;
    }
    if (func != NULL && !is_global && push(w, func, parent, K_CALL, NULL, 0) < 0)
        return -1;
    return 0;
}

/* The rendered path of a step: render_steps([(kind, where, index), ...] from the root). */
static PyObject *
render(Walk *w, Py_ssize_t step)
{
    Py_ssize_t depth = 0;
    for (Py_ssize_t s = step; s >= 0; s = w->steps[s].parent)
        depth++;
    PyObject *list = PyList_New(depth);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t s = step, i = depth - 1; s >= 0; s = w->steps[s].parent, i--) {
        Step *st = &w->steps[s];
        PyObject *t = Py_BuildValue("iOn", st->kind, st->where ? st->where : Py_None,
                                    st->index);
        if (t == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, t);
    }
    PyObject *text = PyObject_CallOneArg(render_steps, list);
    Py_DECREF(list);
    return text;
}

/* Count one occurrence of a wanted node, and list its path while the group has room. */
static int
record(Walk *w, PyObject *node, Py_ssize_t step, PyObject *wanted, Py_ssize_t max_paths,
       PyObject *paths, PyObject *counts, PyObject *reached)
{
    PyObject *key = PyLong_FromVoidPtr(node);
    if (key == NULL)
        return -1;
    PyObject *groups = PyDict_GetItemWithError(wanted, key);
    int rc = groups ? PySet_Add(reached, key) : -1;
    if (groups == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_KeyError, "wanted node vanished");
    Py_DECREF(key);
    if (rc < 0)
        return -1;
    PyObject *seq = PySequence_Fast(groups, "groups must be a sequence");
    if (seq == NULL)
        return -1;
    PyObject *rendered = NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq) && rc == 0; i++) {
        PyObject *group = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *count = PyDict_GetItemWithError(counts, group);
        if (count == NULL && PyErr_Occurred()) {
            rc = -1;
            break;
        }
        Py_ssize_t n = count ? PyLong_AsSsize_t(count) : 0;
        PyObject *more = PyLong_FromSsize_t(n + 1);
        rc = more ? PyDict_SetItem(counts, group, more) : -1;
        Py_XDECREF(more);
        if (rc < 0)
            break;
        PyObject *bucket = PyDict_GetItemWithError(paths, group);
        if (bucket == NULL) {
            if (PyErr_Occurred() || (bucket = PyList_New(0)) == NULL) {
                rc = -1;
                break;
            }
            rc = PyDict_SetItem(paths, group, bucket);
            Py_DECREF(bucket);
            if (rc < 0)
                break;
        }
        if (PyList_GET_SIZE(bucket) < max_paths) {
            if (rendered == NULL && (rendered = render(w, step)) == NULL) {
                rc = -1;
                break;
            }
            rc = PyList_Append(bucket, rendered);
        }
    }
    Py_XDECREF(rendered);
    Py_DECREF(seq);
    return rc;
}

/* locate(root, wanted, max_paths) -> (paths, counts, reached), as paths.locate. */
static PyObject *
locate(PyObject *self, PyObject *args)
{
    PyObject *root, *wanted;
    Py_ssize_t max_paths;
    if (Global_T == NULL || render_steps == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_walker() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!n", &root, &PyDict_Type, &wanted, &max_paths))
        return NULL;
    PyObject *paths = PyDict_New(), *counts = PyDict_New(), *reached = PySet_New(NULL);
    Walk w = {0};
    int rc = -1;
    if (paths == NULL || counts == NULL || reached == NULL)
        goto done;
    if (is_primitive(root)) {
        rc = 0;
        goto done;
    }
    w.capsteps = w.captodo = 1024;
    w.steps = PyMem_Malloc(w.capsteps * sizeof(Step));
    w.todo = PyMem_Malloc(w.captodo * sizeof(Todo));
    if (w.steps == NULL || w.todo == NULL || ptrset_init(&w.seen, 0) < 0 ||
        ptrset_init(&w.wanted, (size_t)PyDict_GET_SIZE(wanted)) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    {
        Py_ssize_t it = 0;
        PyObject *key, *value;
        while (PyDict_Next(wanted, &it, &key, &value)) {
            void *p = PyLong_AsVoidPtr(key);
            if (p == NULL && PyErr_Occurred())
                goto done;
            if (ptrset_add(&w.wanted, p) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        }
    }
    w.todo[0].node = root;
    w.todo[0].step = -1;
    w.ntodo = 1;
    while (w.ntodo > 0) {
        Todo item = w.todo[--w.ntodo];
        PyObject *node = item.node;
        if (ptrset_has(&w.wanted, node) &&
            record(&w, node, item.step, wanted, max_paths, paths, counts, reached) < 0)
            goto done;
        int added = ptrset_add(&w.seen, node);
        if (added < 0) {
            PyErr_NoMemory();
            goto done;
        }
        if (added == 0)
            continue;
        PyTypeObject *t = Py_TYPE(node);
        int r = 0;
        if (t == &PyList_Type || t == &PyTuple_Type)
            r = push_items(&w, node, item.step, K_ITEM);
        else if (t == PDict_T)
            r = push_flat(&w, flat_of(node), item.step, K_DICT_VALUE, 1);
        else if (t == Call_T)
            r = push_call(&w, node, item.step);
        else if (t == PSet_T)
            r = push_items(&w, SLOT(node, pset_items_off), item.step, K_ITEM);
        if (r < 0)
            goto done;
        if ((w.nsteps & 0xFFFFF) == 0 && PyErr_CheckSignals() < 0)
            goto done;
    }
    rc = 0;
done:
    PyMem_Free(w.steps);
    PyMem_Free(w.todo);
    PyMem_Free(w.seen.slots);
    PyMem_Free(w.wanted.slots);
    if (rc < 0) {
        Py_XDECREF(paths);
        Py_XDECREF(counts);
        Py_XDECREF(reached);
        return NULL;
    }
    return Py_BuildValue("NNN", paths, counts, reached);
}

static PyObject *
configure_walker(PyObject *self, PyObject *args)
{
    PyObject *call, *pdict, *global, *pset, *renderer, *leaves;
    if (!PyArg_ParseTuple(args, "OOOOOO", &call, &pdict, &global, &pset, &renderer, &leaves))
        return NULL;
    if (take_type(call, &Call_T) < 0 || take_type(pdict, &PDict_T) < 0 ||
        take_type(global, &Global_T) < 0 || take_type(pset, &PSet_T) < 0)
        return NULL;
    for (int i = 0; i < C_NSLOTS; i++)
        if (slot_offset(Call_T, call_slot_names[i], &call_off[i]) < 0)
            return NULL;
    if (slot_offset(PDict_T, "flat", &pdict_flat_off) < 0)
        return NULL;
    if (slot_offset(Global_T, "module", &global_module_off) < 0 ||
        slot_offset(Global_T, "name", &global_name_off) < 0 ||
        slot_offset(PSet_T, "items", &pset_items_off) < 0)
        return NULL;
    Py_INCREF(renderer); Py_XSETREF(render_steps, renderer);
    Py_INCREF(leaves); Py_XSETREF(leaf_calls, leaves);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Call, PDict, PersId, PickleError, struct_error, Event, append_to, "
     "setitems_on, record_first_mask): register the node classes and helpers."},
    {"run", run, METH_VARARGS,
     "run(machine, data, start, end, stack, metastack, calls, events, persids, first, "
     "counts, table) -> (pos, op_pos, exception): the compiled dispatch loop."},
    {"configure_walker", configure_walker, METH_VARARGS,
     "configure_walker(Call, PDict, Global, PSet, render_steps, leaf_calls): register the walker's helpers."},
    {"locate", locate, METH_VARARGS,
     "locate(root, wanted, max_paths) -> (paths, counts, reached): the compiled path walker."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "The pickle emulator's dispatch loop and the path walker, compiled (vm.py and paths.py "
    "are the reference).",
    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__native(void)
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
