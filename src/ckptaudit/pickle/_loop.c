/* The emulator's dispatch loop, compiled.
 *
 * This is a transcription of _python_loop in loop.py, which stays the reference: the same
 * opcodes are handled inline, in the same way, raising the same exception types, and every
 * other opcode goes to the same registered Python handler (handlers.py). A few opcodes the
 * Python loop sends to handlers are inline here too (loop.COMPILED_INLINE), with the
 * handlers' errors and messages. tests/pickle/test_inline_opcodes.py reads this file's case
 * labels and checks them against loop.py's sets and inline chain.
 *
 * Nothing here imports, resolves or calls anything named by the pickle; it builds the same
 * inert nodes (Call, PDict, PersId) by filling their __slots__ directly, as the pure-Python
 * constructors would.
 */
#include "_native.h"

#include <string.h>

/* Registered once by configure_loop(). */
static PyTypeObject *PersId_T = NULL;
static PyObject *PickleError = NULL, *StructError = NULL, *Event = NULL;
static PyObject *append_to = NULL, *setitems_on = NULL;
static PyObject *nest_tuple = NULL, *passed_buffer = NULL;
static PyObject *handlers = NULL; /* a tuple of 256: opcode byte -> handler or None */
static unsigned char record_first[256];

enum { P_PID, P_OFFSET, P_OPCODE, P_NSLOTS };
static const char *persid_slot_names[P_NSLOTS] = {"pid", "offset", "opcode"};
static Py_ssize_t persid_off[P_NSLOTS];

static PyObject *s_NEWOBJ, *s_REDUCE, *s_BINPERSID, *s_SETITEMS, *s_APPENDS, *s_BUILD;
/* Attribute names of what run() reads from the machine and its result. */
static PyObject *a_data, *a_start, *a_end, *a_stack, *a_metastack, *a_counts, *a_result,
    *a_calls, *a_events, *a_persids, *a_opcode_first, *a_buf_end;

static PyObject *
new_call(PyObject *func, PyObject *cargs, PyObject *opcode, Py_ssize_t offset)
{
    PyObject *off = PyLong_FromSsize_t(offset);
    PyObject *node = off ? cka_Call_T->tp_alloc(cka_Call_T, 0) : NULL;
    if (node == NULL) {
        Py_XDECREF(off);
        Py_DECREF(func);
        Py_DECREF(cargs);
        return NULL;
    }
    SLOT(node, cka_call_off[C_FUNC]) = func;
    SLOT(node, cka_call_off[C_ARGS]) = cargs;
    SLOT(node, cka_call_off[C_KWARGS]) = Py_NewRef(Py_None);
    SLOT(node, cka_call_off[C_OPCODE]) = Py_NewRef(opcode);
    SLOT(node, cka_call_off[C_OFFSET]) = off;
    SLOT(node, cka_call_off[C_STATE]) = Py_NewRef(Py_None);
    SLOT(node, cka_call_off[C_BUILDS]) = PyLong_FromLong(0);
    SLOT(node, cka_call_off[C_BUILD_OFFSET]) = Py_NewRef(Py_None);
    SLOT(node, cka_call_off[C_ITEMS]) = Py_NewRef(Py_None);
    SLOT(node, cka_call_off[C_SETITEMS]) = Py_NewRef(Py_None);
    return node;
}

static PyObject *
new_pdict(void)
{
    PyObject *flat = PyList_New(0);
    PyObject *node = flat ? cka_PDict_T->tp_alloc(cka_PDict_T, 0) : NULL;
    if (node == NULL) {
        Py_XDECREF(flat);
        return NULL;
    }
    SLOT(node, cka_pdict_flat_off) = flat;
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

/* Whether a tuple holds a tuple. */
static int
holds_tuple(PyObject *t)
{
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyTuple_CheckExact(PyTuple_GET_ITEM(t, i)))
            return 1;
    return 0;
}

/* Note a new tuple's depth as handlers.nest_tuple does: a tuple whose tuples hold no tuples
 * is 2 deep and needs no note (the commonest case: a tensor's rebuild arguments); any
 * deeper one goes to the Python helper, which notes it and raises LimitExceeded past the
 * limit (Limits keeps max_tuple_depth >= 2, so 2 is always allowed). */
static int
note_nesting(PyObject *m, PyObject *t, Py_ssize_t op_pos)
{
    Py_ssize_t n = PyTuple_GET_SIZE(t);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(t, i);
        if (PyTuple_CheckExact(item) && holds_tuple(item)) {
            PyObject *r = PyObject_CallFunction(nest_tuple, "OOn", m, t, op_pos);
            Py_XDECREF(r);
            return r ? 0 : -1;
        }
    }
    return 0;
}

/* Where the frame buffer a file reader would hold ends (m.buf_end), or never. */
static Py_ssize_t
frame_mark(PyObject *m)
{
    PyObject *v = PyObject_GetAttr(m, a_buf_end);
    if (v == NULL)
        return -1;
    Py_ssize_t at = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    if (at == -1 && PyErr_Occurred())
        return -1;
    return at >= 0 ? at : PY_SSIZE_T_MAX;
}

/* The loop proper. `m` is the machine (handed to Python handlers); the other arguments are
 * its fields, read by cka_run. Runs until an exception ends the loop (STOP's handler raises
 * one too) and returns it with the positions, for loop.py to classify exactly as it does the
 * Python loop's. */
static PyObject *
dispatch(PyObject *m, PyObject *data_obj, Py_ssize_t start, Py_ssize_t end, PyObject *stack,
         PyObject *metastack, PyObject *calls, PyObject *events, PyObject *persids,
         PyObject *first, PyObject *counts_list)
{
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
    /* The end of the frame buffer a file reader would hold (frames.py): rarely reached. */
    Py_ssize_t fmark = PY_SSIZE_T_MAX;
    unsigned long ticks = 0;
    memset(counts, 0, sizeof counts);
    if (fence == -1 && PyErr_Occurred())
        goto error;

    for (;;) {
        if (pos >= fmark) {
            PyObject *r = PyObject_CallFunction(passed_buffer, "Onn", m, op_pos, pos);
            if (r == NULL)
                goto error;
            Py_DECREF(r);
            fmark = PY_SSIZE_T_MAX;
        }
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
            PyObject *dst = Py_IS_TYPE(target, cka_PDict_T) ? SLOT(target, cka_pdict_flat_off) : NULL;
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
            if (Py_IS_TYPE(target, cka_Call_T)) {
                Py_XSETREF(SLOT(target, cka_call_off[C_STATE]), state);
                PyObject *builds = SLOT(target, cka_call_off[C_BUILDS]);
                PyObject *one = PyLong_FromLong(1);
                PyObject *more = builds ? PyNumber_Add(builds, one) : NULL;
                Py_DECREF(one);
                if (more == NULL)
                    goto error;
                Py_XSETREF(SLOT(target, cka_call_off[C_BUILDS]), more);
                if (SLOT(target, cka_call_off[C_BUILD_OFFSET]) == Py_None) {
                    PyObject *off = PyLong_FromSsize_t(op_pos);
                    if (off == NULL)
                        goto error;
                    Py_XSETREF(SLOT(target, cka_call_off[C_BUILD_OFFSET]), off);
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
            if (t != NULL && note_nesting(m, t, op_pos) < 0) {
                Py_DECREF(t);
                goto error;
            }
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
                PyTuple_SET_ITEM(t, i, Py_NewRef(PyList_GET_ITEM(stack, n - k + i)));
            /* Checked before the stack changes, as the Python loop does. */
            if (note_nesting(m, t, op_pos) < 0) {
                Py_DECREF(t);
                goto error;
            }
            for (Py_ssize_t i = 0; i < k; i++)
                Py_DECREF(PyList_GET_ITEM(stack, n - k + i));
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
            if (op == 115 && Py_IS_TYPE(target, cka_PDict_T) && SLOT(target, cka_pdict_flat_off)) {
                PyObject *flat = SLOT(target, cka_pdict_flat_off);
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
            PyObject *handler = PyTuple_GET_ITEM(handlers, op);
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
            if (op == 149 && (fmark = frame_mark(m)) == -1)  /* FRAME: a new frame buffer */
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


/* A new reference to obj.<name>, checked to be an instance of `type` (any type if NULL). */
static PyObject *
field(PyObject *obj, PyObject *name, PyTypeObject *type)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value != NULL && type != NULL && !PyObject_TypeCheck(value, type)) {
        PyErr_Format(PyExc_TypeError, "run(): %U must be a %s, not %.200s", name,
                     type->tp_name, Py_TYPE(value)->tp_name);
        Py_CLEAR(value);
    }
    return value;
}

static Py_ssize_t
ssize_field(PyObject *obj, PyObject *name)
{
    PyObject *value = field(obj, name, &PyLong_Type);
    if (value == NULL)
        return -1;
    Py_ssize_t n = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    return n;
}

/* run(machine) -> (pos, op_pos, exception): the fields the loop works on are read from the
 * machine (a loop.Machine; _native.pyi's LoopState lists them) once per run. */
PyObject *
cka_run(PyObject *self, PyObject *m)
{
    if (cka_Call_T == NULL || handlers == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_loop() was not called");
        return NULL;
    }
    PyObject *out = NULL, *data = NULL, *stack = NULL, *metastack = NULL, *counts = NULL;
    PyObject *result = NULL, *calls = NULL, *events = NULL, *persids = NULL, *first = NULL;
    Py_ssize_t start = ssize_field(m, a_start), end = -1;
    if (start == -1 && PyErr_Occurred())
        goto done;
    end = ssize_field(m, a_end);
    if (end == -1 && PyErr_Occurred())
        goto done;
    if ((data = field(m, a_data, NULL)) == NULL ||
        (stack = field(m, a_stack, &PyList_Type)) == NULL ||
        (metastack = field(m, a_metastack, &PyList_Type)) == NULL ||
        (counts = field(m, a_counts, &PyList_Type)) == NULL ||
        (result = field(m, a_result, NULL)) == NULL ||
        (calls = field(result, a_calls, &PyList_Type)) == NULL ||
        (events = field(result, a_events, &PyList_Type)) == NULL ||
        (persids = field(result, a_persids, &PyList_Type)) == NULL ||
        (first = field(result, a_opcode_first, &PyDict_Type)) == NULL)
        goto done;
    if (PyList_GET_SIZE(counts) != 256) {
        PyErr_SetString(PyExc_ValueError, "run(): counts must have 256 entries");
        goto done;
    }
    out = dispatch(m, data, start, end, stack, metastack, calls, events, persids, first, counts);
done:
    Py_XDECREF(data);
    Py_XDECREF(stack);
    Py_XDECREF(metastack);
    Py_XDECREF(counts);
    Py_XDECREF(result);
    Py_XDECREF(calls);
    Py_XDECREF(events);
    Py_XDECREF(persids);
    Py_XDECREF(first);
    return out;
}

static int
check_class(const char *name, PyObject *value)
{
    if (PyType_Check(value))
        return 0;
    PyErr_Format(PyExc_TypeError, "configure_loop(): %s must be a class", name);
    return -1;
}

static int
check_callable(const char *name, PyObject *value)
{
    if (PyCallable_Check(value))
        return 0;
    PyErr_Format(PyExc_TypeError, "configure_loop(): %s must be callable", name);
    return -1;
}

/* configure_loop(*, call_type, pdict_type, persid_type, event_type, pickle_error,
 *                struct_error, append_to, setitems_on, handlers, noted, nest_tuple,
 *                passed_buffer)
 *
 * Everything is checked before anything is kept, so a refused call (a build that does not
 * match this version's Python side) leaves the loop unconfigured. */
PyObject *
cka_configure_loop(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"call_type", "pdict_type", "persid_type", "event_type",
                            "pickle_error", "struct_error", "append_to", "setitems_on",
                            "handlers", "noted", "nest_tuple", "passed_buffer", NULL};
    PyObject *v[12] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOOOOOOOOO:configure_loop", names,
                                     &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
                                     &v[8], &v[9], &v[10], &v[11]) ||
        cka_require("configure_loop", (const char *const *)names, v, 12) < 0)
        return NULL;
    PyObject *call = v[0], *pdict = v[1], *persid = v[2], *event = v[3], *pickle_error_ = v[4];
    PyObject *struct_error = v[5], *app = v[6], *seti = v[7], *table = v[8], *noted = v[9];
    PyObject *nest = v[10], *passed = v[11];
    if (check_class("event_type", event) < 0 || check_class("pickle_error", pickle_error_) < 0 ||
        check_class("struct_error", struct_error) < 0 || check_callable("append_to", app) < 0 ||
        check_callable("setitems_on", seti) < 0 || check_callable("nest_tuple", nest) < 0 ||
        check_callable("passed_buffer", passed) < 0)
        return NULL;
    if (!PyTuple_CheckExact(table) || PyTuple_GET_SIZE(table) != 256) {
        PyErr_SetString(PyExc_TypeError, "configure_loop(): handlers must be a tuple of 256");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 256; i++) {
        PyObject *handler = PyTuple_GET_ITEM(table, i);
        if (handler != Py_None && !PyCallable_Check(handler)) {
            PyErr_SetString(PyExc_TypeError,
                            "configure_loop(): each handler must be callable or None");
            return NULL;
        }
    }
    if (!PyBytes_Check(noted) || PyBytes_GET_SIZE(noted) != 256) {
        PyErr_SetString(PyExc_TypeError, "configure_loop(): noted must be 256 bytes");
        return NULL;
    }
    if (cka_register_nodes(call, pdict) < 0 || cka_take_type(persid, &PersId_T) < 0)
        return NULL;
    for (int i = 0; i < P_NSLOTS; i++)
        if (cka_slot_offset(PersId_T, persid_slot_names[i], &persid_off[i]) < 0)
            return NULL;
    memcpy(record_first, PyBytes_AS_STRING(noted), 256);
    Py_INCREF(pickle_error_); Py_XSETREF(PickleError, pickle_error_);
    Py_INCREF(struct_error); Py_XSETREF(StructError, struct_error);
    Py_INCREF(event); Py_XSETREF(Event, event);
    Py_INCREF(app); Py_XSETREF(append_to, app);
    Py_INCREF(seti); Py_XSETREF(setitems_on, seti);
    Py_INCREF(nest); Py_XSETREF(nest_tuple, nest);
    Py_INCREF(passed); Py_XSETREF(passed_buffer, passed);
    Py_INCREF(table); Py_XSETREF(handlers, table);
    Py_RETURN_NONE;
}

/* Intern the strings the loop uses, once, at import. */
int
cka_loop_init(void)
{
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    INTERN(s_NEWOBJ, "NEWOBJ");
    INTERN(s_REDUCE, "REDUCE");
    INTERN(s_BINPERSID, "BINPERSID");
    INTERN(s_SETITEMS, "SETITEMS");
    INTERN(s_APPENDS, "APPENDS");
    INTERN(s_BUILD, "BUILD");
    INTERN(a_data, "data");
    INTERN(a_start, "start");
    INTERN(a_end, "end");
    INTERN(a_stack, "stack");
    INTERN(a_metastack, "metastack");
    INTERN(a_counts, "counts");
    INTERN(a_result, "result");
    INTERN(a_calls, "calls");
    INTERN(a_events, "events");
    INTERN(a_persids, "persids");
    INTERN(a_opcode_first, "opcode_first");
    INTERN(a_buf_end, "buf_end");
#undef INTERN
    return 0;
}
