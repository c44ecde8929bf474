/* The path walker, compiled: a transcription of _locate_python in paths.py (the reference).
 *
 * Paths are not built while walking: each pushed child records (parent step, kind, where),
 * and only the paths a finding lists are rendered, by paths.render_steps in Python, so the
 * text of every segment comes from the same code as in the Python walker.
 */
#include "_native.h"

/* Registered once by configure_walker() (Call and PDict through cka_register_nodes). */
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
    if (t == cka_PDict_T) {
        PyObject *flat = SLOT(o, cka_pdict_flat_off);
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
    return Py_IS_TYPE(pdict, cka_PDict_T) ? SLOT(pdict, cka_pdict_flat_off) : NULL;
}

/* BUILD state: fields of a dict state, both dicts of a (dict, slots) state, else the whole
 * state as one child. Pushed in reverse: this runs after the later children were pushed. */
static int
push_state(Walk *w, PyObject *state, Py_ssize_t parent)
{
    if (Py_IS_TYPE(state, cka_PDict_T))
        return push_flat(w, flat_of(state), parent, K_FIELD, 0);
    if (PyTuple_CheckExact(state) && PyTuple_GET_SIZE(state) == 2) {
        PyObject *a = PyTuple_GET_ITEM(state, 0), *b = PyTuple_GET_ITEM(state, 1);
        if ((a == Py_None || Py_IS_TYPE(a, cka_PDict_T)) && Py_IS_TYPE(b, cka_PDict_T)) {
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
    PyObject *func = SLOT(node, cka_call_off[C_FUNC]), *args = SLOT(node, cka_call_off[C_ARGS]);
    PyObject *kwargs = SLOT(node, cka_call_off[C_KWARGS]), *state = SLOT(node, cka_call_off[C_STATE]);
    PyObject *items = SLOT(node, cka_call_off[C_ITEMS]);
    PyObject *setitems = SLOT(node, cka_call_off[C_SETITEMS]);
    int is_global = func != NULL && Py_IS_TYPE(func, Global_T);
    /* The Python walker's fast path (a class, arguments, a dict of fields) skips the leaf
     * check; everything else follows _children(). */
    int fast = is_global && state != NULL && Py_IS_TYPE(state, cka_PDict_T) && args != NULL &&
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
    if (truthy(SLOT(node, cka_call_off[C_BUILDS])) && state != NULL && push_state(w, state, parent) < 0)
        return -1;
    if (kwargs != NULL && Py_IS_TYPE(kwargs, cka_PDict_T) &&
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
PyObject *
cka_locate(PyObject *self, PyObject *args)
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
        else if (t == cka_PDict_T)
            r = push_flat(&w, flat_of(node), item.step, K_DICT_VALUE, 1);
        else if (t == cka_Call_T)
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

/* configure_walker(*, call_type, pdict_type, global_type, pset_type, render_steps,
 *                  leaf_calls) */
PyObject *
cka_configure_walker(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"call_type", "pdict_type", "global_type", "pset_type",
                            "render_steps", "leaf_calls", NULL};
    PyObject *v[6] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOOOO:configure_walker", names, &v[0],
                                     &v[1], &v[2], &v[3], &v[4], &v[5]) ||
        cka_require("configure_walker", (const char *const *)names, v, 6) < 0)
        return NULL;
    PyObject *renderer = v[4], *leaves = v[5];
    if (!PyCallable_Check(renderer)) {
        PyErr_SetString(PyExc_TypeError, "configure_walker(): render_steps must be callable");
        return NULL;
    }
    if (!PyAnySet_Check(leaves)) {
        PyErr_SetString(PyExc_TypeError, "configure_walker(): leaf_calls must be a set");
        return NULL;
    }
    if (cka_register_nodes(v[0], v[1]) < 0 || cka_take_type(v[2], &Global_T) < 0 ||
        cka_take_type(v[3], &PSet_T) < 0)
        return NULL;
    if (cka_slot_offset(Global_T, "module", &global_module_off) < 0 ||
        cka_slot_offset(Global_T, "name", &global_name_off) < 0 ||
        cka_slot_offset(PSet_T, "items", &pset_items_off) < 0)
        return NULL;
    Py_INCREF(renderer); Py_XSETREF(render_steps, renderer);
    Py_INCREF(leaves); Py_XSETREF(leaf_calls, leaves);
    Py_RETURN_NONE;
}
