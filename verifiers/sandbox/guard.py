"""The comparison guard: in the tests, no method of the program's own classes decides a check.

Tests and program share one interpreter, so a program can return an object whose `__eq__`
always says True (or whose `__bool__`, `__contains__`, `__sub__` ... lies) and pass every
assertion that lets that object decide. `rewrite_tests` rewrites the whole test module (the
bodies of the functions and classes it defines too) so that every operation Python would hand
to a method of one of its operands goes through a helper here instead:

- comparisons `==` `!=` `<` `<=` `>` `>=`, `in`, `not in`; chained ones keep Python's order of
  evaluation and short-circuit (`is` cannot be overridden and stays as it is);
- truth tests: `assert`, `if`, `while`, `x if c else y`, comprehension filters, `and`, `or`,
  `not`, and calls to `bool`, `all` and `any`;
- binary arithmetic and augmented assignment (in `abs(f(x) - c) < eps`, `f(x) - c` would hand
  `c` to the program's `__sub__`);
- the same operations reached through functions: `operator.eq` and the rest of `operator`'s
  comparisons, truth tests and arithmetic, `math.isclose`, `cmath.isclose`, and the `assert*`
  methods of `unittest.TestCase`.

A helper decides by the operands' types, never by asking their methods:

- values built from builtin and standard-library types and classes the tests define (walked
  through containers and library wrappers such as `UserList`, `SimpleNamespace`,
  `mappingproxy`, `ChainMap`, `slice`, weak references) go through exactly what Python does;
- a program-defined subclass of a builtin type (named tuples, `IntEnum`, subclasses of `str`,
  `int`, `list`, `dict`, `OrderedDict`, `Counter` ...) takes part as a plain copy of its builtin
  value, made with the builtin type's own methods (`int.__int__`, `tuple.__getitem__`,
  `dict.items`), so none of its overrides runs; `str(x)`, `x.field` and `isinstance` in the
  tests still see the original object;
- an instance of any other program-defined class (dataclasses included) is only ever compared
  with itself or with an instance of the same class, at the top or inside lists, tuples and dict
  values: then that class decides, as it must for `Point(1, 2) == Point(1, 2)`. `x == None` is
  identity, and so is `==` with a plain value when the class defines no `__eq__` (a truth test
  is true when it defines no `__bool__` or `__len__`), as for `object`. Anything else that
  would call one of its methods (`== 3` with its own `__eq__`, `in`, `assert obj` with a
  `__len__`, arithmetic with another type) is refused: the test statement fails with
  "... of program-defined type 'X' refused".

"Program-defined" is any class created after the fork server loaded this module (see
`_PRELOAD`), unless a class statement of the tests made it or it comes from a module the tests
import (imported early, before the program runs: `pytest.approx` works), and any class whose
methods or bases were changed since it was created or loaded. Static (C) types cannot be
changed from Python.

Explicit calls are the program's API and are left alone: `len(obj)`, `abs(obj)`, `str(obj)`,
`iter(obj)`, `obj.method()` run the program's code, and what they return is then checked like
any value. Such a method is not handed the value it will be compared with, so it can only give a
fixed answer, which a plain return value could give as well. Not guarded either: comparisons
and hashing inside builtins and library code (`min`, `max`, `sorted`, `list.index`,
`dict[obj]`, set displays), `match` statements, and containers of third-party libraries whose
contents the garbage collector cannot see (numpy object arrays).

The tests' references to builtin names they do not bind themselves are the real builtins, even
when the program defines a global of the same name (`abs = lambda x: 0` does not reach the
tests), and the helpers are baked into the compiled tests as constants, so the program cannot
swap them through the namespace the tests run in. The tests are rewritten and compiled before
the program runs (it could patch `ast`); after it ran, `prepare` puts back what it may have
replaced that the tests reach: the builtins Python looks up by itself (`__import__`,
`__build_class__`), the modules the tests import, in `sys.modules` and their attributes
(`math.isclose = ...`), and `unittest.TestCase`.

Cost: a comparison of scalars costs about 0.2 us, of small containers 2 to 10 us, of large
ones about 0.1 us per object held (walked a level at a time at C speed). Instances of the tests'
own classes are not looked into: their methods are rewritten too, so what they compare is
guarded in turn. Each guarded comparison on a recursion path adds a frame, so a recursive
`__eq__` of the tests reaches the recursion limit at about two thirds of its plain depth.
"""

from __future__ import annotations

import ast
import builtins
import collections
import gc
import math
import operator
import os
import sys
import types
import weakref

# Standard-library modules whose classes are trusted: imported here, before the snapshot, in
# the fork server before any program runs (a superset of the server's own preload list).
_PRELOAD = ("collections", "itertools", "functools", "math", "cmath", "re", "heapq", "bisect",
            "string", "typing", "random", "dataclasses", "operator", "copy", "fractions",
            "decimal", "numbers", "enum", "datetime", "array", "statistics", "json", "textwrap",
            "threading", "atexit", "unittest", "pathlib", "ipaddress", "uuid")
for _name in _PRELOAD:
    try:
        __import__(_name)
    except ImportError:
        pass
import cmath  # noqa: E402
import functools  # noqa: E402
import unittest  # noqa: E402

# Functions defined below look builtins up in this private copy (a function takes its builtins
# from its module's globals when it is created): a program rebinding `builtins.len` or
# `builtins.set` does not change what the guard does.
__builtins__ = dict(builtins.__dict__)
_BUILTINS_DICT = builtins.__dict__
_sys_modules = sys.modules
_type, _id, _issubclass = type, id, issubclass
_get_referents = gc.get_referents
_tp_flags = type.__dict__["__flags__"].__get__
_tp_mro = type.__dict__["__mro__"].__get__
_tp_dict = type.__dict__["__dict__"].__get__
_tp_qualname = type.__dict__["__qualname__"].__get__
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: every class made by a `class` statement
_IMMUTABLE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: attributes cannot be set
_BUDGET = 2_000_000  # containers visited per check before refusing a value as too large
_MISSING = object()


class _Refused(Exception):
    def __init__(self, culprit):
        super().__init__(culprit)
        self.culprit = culprit


def _refuse(what: str, culprit) -> AssertionError:
    if culprit is None:
        return AssertionError(f"{what} refused: the value is too large to check")
    return AssertionError(f"{what} with a value of program-defined type "
                          f"{_tp_qualname(culprit)!r} refused (the program's own methods would "
                          f"decide it)")


# --------------------------------------------------------------------------- which types


def _ids(*ts) -> frozenset:
    return frozenset(_id(t) for t in ts)


# Type dispatch is by id: hashing a type would run its metaclass's __hash__.
_OD, _Counter, _deque, _defaultdict = (collections.OrderedDict, collections.Counter,
                                       collections.deque, collections.defaultdict)
_MappingProxy, _WeakRef = types.MappingProxyType, weakref.ReferenceType
_SCALARS = _ids(int, float, complex, bool, str, bytes, bytearray, type(None), type(...),
                type(NotImplemented), range)
_KEYS_VIEWS = (type({}.keys()), type(_OD().keys()))
_VALUES_VIEWS = (type({}.values()), type(_OD().values()))
_ITEMS_VIEWS = (type({}.items()), type(_OD().items()))
_VIEWS = _KEYS_VIEWS + _VALUES_VIEWS + _ITEMS_VIEWS
_MEMBERS = _ids(list, tuple, set, frozenset, _deque, *_VIEWS)  # walked member by member
_PLAIN_EQ = _SCALARS | _ids(list, tuple, dict, set, frozenset)
_FLAT = _ids(list, tuple, set, frozenset)
_SCALARS_OR_FLAT = _SCALARS | _FLAT
_LEVELS, _LEVEL_SIZE = 8, 1_000_000
_chain = __import__("itertools").chain.from_iterable
_PROXIES = _ids(weakref.ProxyType, weakref.CallableProxyType)
_LEAVES = _ids(  # compared by identity; what they hold does not matter
    types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
    types.CodeType, types.FrameType, types.TracebackType, types.GeneratorType,
    types.CoroutineType, types.AsyncGeneratorType, types.MethodWrapperType,
    types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType,
    types.GetSetDescriptorType, types.MemberDescriptorType, property, staticmethod, classmethod,
    memoryview, object, super, functools.partial, operator.attrgetter, operator.itemgetter,
    operator.methodcaller,
)
_iterator_cache: dict = {}


def _is_iterator(t) -> bool:
    """A static type with `__next__` (generators, map, zip, list iterators ...)."""
    if _tp_flags(t) & _HEAPTYPE:
        return False
    r = _iterator_cache.get(_id(t))
    if r is None:
        r = (t, any("__next__" in _tp_dict(c) for c in _tp_mro(t)))
        _iterator_cache[_id(t)] = r  # holds t, so its id stays its own
    return r[1]


_SNAP: dict = {}  # id(type) -> (type, its class dict then or None if immutable, its MRO then)


def _record(t) -> None:
    d = None if _tp_flags(t) & _IMMUTABLE else dict(_tp_dict(t))
    _SNAP[_id(t)] = (t, d, _tp_mro(t))


def _foreign(t) -> bool:
    """True if type `t` may have been made or changed by the program."""
    if not _tp_flags(t) & _HEAPTYPE:
        return False
    s = _SNAP.get(_id(t))
    if s is None or s[0] is not t or _tp_mro(t) is not s[2]:
        return True
    if s[1] is not None:
        now, then = _tp_dict(t), s[1]
        if len(now) != len(then):
            return True
        for k, v in then.items():
            if now.get(k, _MISSING) is not v:
                return True
    for base in s[2][1:]:
        if _tp_flags(base) & _HEAPTYPE and _foreign(base):
            return True
    return False


def trust_class(cls):
    """Decorator the rewriter puts on every class statement of the tests."""
    if _issubclass(_type(cls), type) and _tp_flags(cls) & _HEAPTYPE:
        _record(cls)
        _TEST_CLASSES[_id(cls)] = cls
    return cls


_TEST_CLASSES: dict = {}  # id -> class statement of the tests
# What ==, in, truth tests, hashing and arithmetic may call on an instance.
_BEHAVIOUR = frozenset(f"__{n}__" for n in (
    "eq ne lt le gt ge hash bool len contains iter next getitem missing reversed length_hint "
    "neg pos abs invert complex int float index round trunc floor ceil divmod rdivmod").split()
    + [f"__{p}{n}__" for n in "add sub mul matmul truediv floordiv mod pow lshift rshift and xor "
       "or".split() for p in ("", "r", "i")])
_leaf_cache: dict = {}


def _leaf_class(t) -> bool:
    """For a trusted class statement's type: its instances need no look inside, because what
    decides how they compare is the tests' own (guarded) code, or nothing at all (no method of
    `_BEHAVIOUR` in any class of the MRO but `object`)."""
    r = _leaf_cache.get(_id(t))
    if r is None:
        mro = [c for c in _tp_mro(t) if c is not object]
        tests_only = all(_id(c) in _TEST_CLASSES for c in mro)
        inert = all(_tp_flags(c) & _HEAPTYPE and not (_BEHAVIOUR & _tp_dict(c).keys())
                    for c in mro)
        r = (t, tests_only or inert)
        _leaf_cache[_id(t)] = r  # t is not changed since (the caller checked `_foreign`)
    return r[1]


# --------------------------------------------------------------------------- reducing values

# The builtin (or library container) types a program subclass is reduced to, and how: each
# maker reads the value through the base type's own C methods, never through the subclass.


def _mk_list(v, memo):
    out = []
    memo[_id(v)] = (v, out)
    out.extend([_canon(x, memo) for x in list.__iter__(v)])
    return out


def _mk_mapping(items, make):
    def mk(v, memo):
        out = make()
        memo[_id(v)] = (v, out)
        for k, x in items(v):
            dict.__setitem__(out, _canon(k, memo), _canon(x, memo))
        return out
    return mk


def _mk_members(base, make):
    return lambda v, memo: make([_canon(x, memo) for x in base.__iter__(v)])


_MAKERS = {
    _id(int): lambda v, memo: int.__int__(v),
    _id(float): lambda v, memo: float.__float__(v),
    _id(complex): lambda v, memo: complex.__complex__(v),
    _id(str): lambda v, memo: str.__str__(v),
    _id(bytes): lambda v, memo: bytes.__bytes__(v),
    _id(bytearray): lambda v, memo: bytearray.copy(v),
    _id(tuple): _mk_members(tuple, tuple),
    _id(list): _mk_list,
    _id(set): _mk_members(set, set),
    _id(frozenset): _mk_members(frozenset, frozenset),
    _id(_deque): _mk_members(_deque, _deque),
    _id(dict): _mk_mapping(dict.items, dict),
    _id(_defaultdict): _mk_mapping(dict.items, dict),
    _id(_Counter): _mk_mapping(dict.items, _Counter),
    _id(_OD): _mk_mapping(_OD.items, _OD),
}
_BASES = {_id(t): t for t in (int, float, complex, str, bytes, bytearray, tuple, list, set,
                              frozenset, _deque, dict, _defaultdict, _OD, _Counter)}


def _builtin_base(t):
    """The first trusted builtin (or library container) class in `t`'s MRO, or None."""
    for c in _tp_mro(t):
        if _id(c) in _BASES and not _foreign(c):
            return c
    return None


def _program_class(t) -> bool:
    """A program-defined class that is not a builtin subclass: its instances cannot be reduced."""
    return _foreign(t) and _builtin_base(t) is None


def _defines(t, names: tuple, heap_only: bool = False) -> bool:
    """Whether a class in `t`'s MRO other than `object` (a class statement's, if `heap_only`)
    defines one of `names`."""
    for c in _tp_mro(t):
        if c is not object and (not heap_only or _tp_flags(c) & _HEAPTYPE):
            d = _tp_dict(c)
            for name in names:
                if name in d:
                    return True
    return False


_CLEAN, _REDUCE, _PROGRAM = 0, 1, 2


def _scan(root, keys_only: bool = False, identity_ok: bool = False):
    """Walk what `root` holds. (_CLEAN, None): nothing program-defined is reachable through
    containers and library wrappers; (_REDUCE, None): only program subclasses of builtins,
    which `_canon` reduces; (_PROGRAM, type) otherwise (type None: too large to check).
    `keys_only`: a mapping's keys only (what `in` looks at). `identity_ok`: instances of program
    classes that define no `__eq__`, `__ne__` or `__hash__` count as clean (hashed and compared
    by identity, they hand nothing to the program)."""
    t = _type(root)
    if (t is list or t is tuple) and set(map(_id, map(_type, root))) <= _SCALARS:
        return _CLEAN, None  # the common case, without the walk's set-up
    if keys_only and _issubclass(t, dict):
        stack = list(dict.keys(root))
        status = _REDUCE if _foreign(_type(root)) else _CLEAN
    else:
        stack, status = [root], _CLEAN
    seen, budget = {}, _BUDGET  # id -> object: holds what it saw, so no id is reused meanwhile
    while stack:
        v = stack.pop()
        t = _type(v)
        tid = _id(t)
        if tid in _SCALARS:
            continue
        if _id(v) in seen:
            continue
        seen[_id(v)] = v
        budget -= 1
        if budget < 0:
            return _PROGRAM, None
        if tid in _MEMBERS:
            _push_members(v, stack)
            continue
        if t is dict:
            _push_members(dict.keys(v), stack)
            _push_members(dict.values(v), stack)
            continue
        if _foreign(t):
            base = _builtin_base(t)
            if base is None:
                if identity_ok and not _defines(t, ("__eq__", "__ne__", "__hash__")):
                    continue
                return _PROGRAM, t
            status = _REDUCE
            if _issubclass(base, dict):
                stack.extend(dict.keys(v))
                stack.extend(dict.values(v))
            elif _id(base) not in _SCALARS:
                stack.extend(base.__iter__(v))
            continue
        if tid in _PROXIES:  # it forwards everything to a referent the walk cannot reach
            return _PROGRAM, t
        if tid in _LEAVES or _issubclass(t, type) or _is_iterator(t):
            continue
        if t is _WeakRef:
            stack.append(v())
            continue
        if _issubclass(t, BaseException) or (_tp_flags(t) & _HEAPTYPE and _leaf_class(t)):
            continue
        stack.extend(x for x in _get_referents(v) if not _issubclass(_type(x), type))
    return status, None


def _push_members(members, stack) -> None:
    """Push the members of a builtin container that need a look. Nested plain lists, tuples and
    sets are checked a whole level at a time at C speed (a list of pairs, a grid), down to
    `_LEVELS` levels or `_LEVEL_SIZE` members a level; what is left goes to the general walk."""
    level = members
    for _ in range(_LEVELS):
        tids = set(map(_id, map(_type, level)))
        if tids <= _SCALARS:
            return
        if tids <= _FLAT:  # only containers: no need to sort them from the scalars
            kids = level
        else:
            kids = [x for x in level if _id(_type(x)) not in _SCALARS]
            if not tids <= _SCALARS_OR_FLAT:
                break
        if sum(map(len, kids)) > _LEVEL_SIZE:
            break
        level = list(_chain(kids))
    else:
        kids = [x for x in level if _id(_type(x)) not in _SCALARS]
    stack.extend(kids)


def _canon(v, memo):
    """`v` with every program subclass of a builtin replaced by a plain copy of its value.
    Raises _Refused on anything else program-defined. `memo` keeps shared objects shared."""
    t = _type(v)
    tid = _id(t)
    if tid in _SCALARS:
        return v
    got = memo.get(_id(v))
    if got is not None:
        return got[1]
    if _foreign(t):
        base = _builtin_base(t)
        if base is None:
            raise _Refused(t)
        out = _MAKERS[_id(base)](v, memo)
    elif tid in _MAKERS:  # exact builtin containers: rebuilt from their members
        out = _MAKERS[tid](v, memo)
    elif _issubclass(t, _VIEWS):  # a view of the reduced mapping
        mapping = _get_referents(v)[0]
        reduced = _canon(mapping, memo)
        kind = ("keys" if _issubclass(t, _KEYS_VIEWS) else
                "values" if _issubclass(t, _VALUES_VIEWS) else "items")
        out = getattr(reduced, kind)()
    else:
        status, culprit = _scan(v)
        if status == _CLEAN:
            out = v
        elif status == _REDUCE and _builtin_base(t) is not None:
            out = _MAKERS[_id(_builtin_base(t))](v, memo)  # a library subclass (structseq...)
        else:  # a library wrapper around a program value: not rebuilt
            raise _Refused(culprit if culprit is not None or status == _PROGRAM else t)
    memo[_id(v)] = (v, out)
    return out


def _plain(v):
    """The result of a program class's comparison must itself be a plain value."""
    if _id(_type(v)) not in _SCALARS:
        status, culprit = _scan(v)
        if status != _CLEAN:
            raise _Refused(culprit if culprit is not None else _type(v))
    return v


# --------------------------------------------------------------------------- comparisons


def _seq_kind(t):
    """list / tuple / deque / dict for types compared member by member, else None."""
    if t is list or t is tuple or t is _deque:
        return t
    if t is dict or t is _defaultdict:
        return dict
    if _foreign(t):
        base = _builtin_base(t)
        if base is list or base is tuple or base is _deque:
            return base
        if base is dict or base is _defaultdict:
            return dict
    return None


def _struct_eq(a, b, memo, top: bool) -> bool:
    """`a == b` as Python computes it for builtins, where an instance of a program class is
    only compared with itself or with an instance of its own class (its `__eq__` decides)."""
    if not top and a is b:
        return True
    ta, tb = _type(a), _type(b)
    if _id(ta) in _SCALARS and _id(tb) in _SCALARS:
        return a == b
    pa, pb = _program_class(ta), _program_class(tb)
    if pa or pb:
        if ta is tb:
            return bool(_plain(a == b))
        if a is None or b is None:  # `x == None` means identity for any class
            return False
        # A class that defines no equality of its own is compared by identity, as `object`
        # does, when the other side is a plain builtin value (whose own `__eq__` declines).
        if all(_id(t) in _PLAIN_EQ or (p and not _defines(t, ("__eq__", "__ne__")))
               for t, p in ((ta, pa), (tb, pb))):
            return False
        raise _Refused(ta if pa else tb)
    ka, kb = _seq_kind(ta), _seq_kind(tb)
    if ka is not None and kb is not None:
        if ka is not kb:  # a list, a tuple, a deque and a dict are never equal
            return False
        if ka is dict:
            da = {_canon(k, memo): x for k, x in dict.items(a)}
            db = {_canon(k, memo): x for k, x in dict.items(b)}
            if len(da) != len(db):
                return False
            for k, x in da.items():
                y = db.get(k, _MISSING)
                if y is _MISSING or not _struct_eq(x, y, memo, False):
                    return False
            return True
        la, lb = list(ka.__iter__(a)), list(kb.__iter__(b))
        if len(la) != len(lb):
            return False
        for x, y in zip(la, lb):
            if not _struct_eq(x, y, memo, False):
                return False
        return True
    return _canon(a, memo) == _canon(b, memo)


def _compare(a, b, op: str, fn, sa, ca, sb, cb):
    """The rare case: something program-defined on one side at least."""
    ta, tb = _type(a), _type(b)
    try:
        memo: dict = {}
        if sa != _PROGRAM and sb != _PROGRAM:
            return fn(_canon(a, memo), _canon(b, memo))
        if (sa == _PROGRAM and ca is None) or (sb == _PROGRAM and cb is None):
            raise _Refused(None)
        if op == "==":
            return _struct_eq(a, b, memo, True)
        if ta is tb and _program_class(ta):
            return _plain(fn(a, b))
        if op == "!=":
            return not _struct_eq(a, b, memo, True)
        raise _Refused(ca or cb)
    except _Refused as e:
        raise _refuse(f"comparison {op!r}", e.culprit) from None


def _make_compare(op: str, fn):
    # One frame for the common cases, calling `fn` itself: a recursive `__eq__` the tests define
    # reaches the recursion limit not much sooner than without the guard.
    def compare(a, b):
        ta, tb = _type(a), _type(b)
        if _id(ta) in _SCALARS and _id(tb) in _SCALARS:
            return fn(a, b)
        if (ta is not tb and _id(ta) in _PLAIN_EQ and _id(tb) in _PLAIN_EQ
                and not (_issubclass(ta, (set, frozenset)) and _issubclass(tb, (set, frozenset)))):
            return fn(a, b)  # a list and None, a tuple and a list: Python compares no members
        sa, ca = _scan(a)
        sb, cb = _scan(b)
        if sa == _CLEAN and sb == _CLEAN:
            return fn(a, b)
        return _compare(a, b, op, fn, sa, ca, sb, cb)
    compare.__name__ = compare.__qualname__ = f"guarded_{fn.__name__}"
    return compare


eq = _make_compare("==", operator.eq)
ne = _make_compare("!=", operator.ne)
lt = _make_compare("<", operator.lt)
le = _make_compare("<=", operator.le)
gt = _make_compare(">", operator.gt)
ge = _make_compare(">=", operator.ge)


# --------------------------------------------------------------------------- membership


def contains(needle, box) -> bool:
    """`needle in box`."""
    if _id(_type(box)) in _SCALARS and _id(_type(needle)) in _SCALARS:
        return needle in box
    try:
        return _contains(needle, box)
    except _Refused as e:
        raise _refuse("membership test 'in'", e.culprit) from None


def not_contains(needle, box) -> bool:
    return not contains(needle, box)


def _contains(needle, box) -> bool:
    tb = _type(box)
    if _program_class(tb) or _id(tb) in _PROXIES:  # its __contains__ would get the needle
        raise _Refused(tb)
    kind = _seq_kind(tb)
    by_member = kind in (list, tuple, _deque) or _issubclass(tb, _VALUES_VIEWS)
    if by_member or _is_iterator(tb):  # compared member by member, in order, as Python does
        if (by_member and not _foreign(tb) and _scan(needle)[0] == _CLEAN
                and _scan(box)[0] == _CLEAN):
            return needle in box
        memo: dict = {}
        for x in (kind.__iter__(box) if kind is not None else box):
            if x is needle or _struct_eq(x, needle, memo, False):
                return True
        return False
    # hashed containers (sets, mappings, key views), strings, ranges, library types
    sn, cn = _scan(needle, identity_ok=True)
    sb, cb = _scan(box, keys_only=True, identity_ok=True)
    if sn == _PROGRAM or sb == _PROGRAM:
        raise _Refused(cn if sn == _PROGRAM else cb)
    if sn == _CLEAN and sb == _CLEAN:
        return needle in box
    memo = {}
    if _issubclass(tb, dict):
        return _canon(needle, memo) in {_canon(k, memo) for k in dict.keys(box)}
    return _canon(needle, memo) in _canon(box, memo)


# --------------------------------------------------------------------------- truth

_PLAIN_TRUTH = _SCALARS | _MEMBERS | _LEAVES | _ids(dict)


def truth(v):
    """`v` itself if Python may test its truth (the caller then does), a bool computed from a
    builtin subclass's own base type if the subclass overrides `__bool__` or `__len__`."""
    t = _type(v)
    if _id(t) in _PLAIN_TRUTH:
        return v
    if _foreign(t):
        base = _builtin_base(t)
        if base is None:
            if _defines(t, ("__bool__", "__len__")):
                raise _refuse("truth test", t)
            return v  # always true, as `object` is: no method of the program is called
        for c in _tp_mro(t):
            if c is base:
                return v  # bool(v) uses the base type's own slot
            d = _tp_dict(c)
            if "__bool__" in d or "__len__" in d:
                if base is int or base is float or base is complex:
                    return base.__bool__(v)
                return (dict if _issubclass(base, dict) else base).__len__(v) != 0
        return v
    if (_id(t) in _PROXIES or t is _MappingProxy
            or (_tp_flags(t) & _HEAPTYPE and _defines(t, ("__bool__", "__len__"), heap_only=True))):
        status, culprit = _scan(v)  # a wrapper whose truth is that of what it holds (UserList)
        if status == _PROGRAM:
            raise _refuse("truth test", culprit)
    return v


def truth_of(v) -> bool:
    """`bool(v)`, guarded."""
    return bool(truth(v))


def not_(v) -> bool:
    return not truth(v)


def all_(iterable) -> bool:
    for x in iterable:
        if not truth(x):
            return False
    return True


def any_(iterable) -> bool:
    for x in iterable:
        if truth(x):
            return True
    return False


def chain(first, *rest):
    """A chained comparison in a place where the rewriter cannot use `:=`: `rest` is op,
    operand, op, thunk, op, thunk ...; a thunk is called only if the chain gets that far."""
    left, r = first, True
    for i in range(0, len(rest), 2):
        op, right = rest[i], rest[i + 1]
        if i:
            right = right()
        r = op(left, right)
        if not truth(r):
            return r
        left = right
    return r


# --------------------------------------------------------------------------- arithmetic


def _arith(op: str, fn, a, b):
    ta, tb = _type(a), _type(b)
    if (ta is str or ta is bytes) and op == "%" and not _issubclass(tb, ta):
        return fn(a, b)  # formatting: str(x) and repr(x) of the arguments, like an f-string
    try:
        fa, fb = _foreign(ta), _foreign(tb)
        if fa or fb:
            if ta is tb and _program_class(ta):
                return fn(a, b)  # two instances of one program class: that class decides
            if fa and _builtin_base(ta) is None:
                raise _Refused(ta)
            if fb and _builtin_base(tb) is None:
                raise _Refused(tb)
            memo: dict = {}
            return fn(_canon(a, memo), _canon(b, memo))
        # Both operands' classes are trusted; look inside those that hash or compare their
        # members (sets, mappings) or are library code that may hand `b` on to what they hold.
        if any(_issubclass(t, (set, frozenset, dict) + _VIEWS) or _tp_flags(t) & _HEAPTYPE
               for t in (ta, tb)):
            sa, ca = _scan(a)
            sb, cb = _scan(b)
            if sa == _PROGRAM or sb == _PROGRAM:
                raise _Refused(ca if sa == _PROGRAM else cb)
            if sa or sb:
                memo = {}
                return fn(_canon(a, memo), _canon(b, memo))
        return fn(a, b)
    except _Refused as e:
        raise _refuse(f"arithmetic {op!r}", e.culprit) from None


def _make_arith(op: str, fn):
    def arith(a, b):
        if _id(_type(a)) in _SCALARS and _id(_type(b)) in _SCALARS:
            return fn(a, b)
        return _arith(op, fn, a, b)
    arith.__name__ = arith.__qualname__ = f"guarded_{fn.__name__}"
    return arith


_BINOPS = {  # AST operator class name: (symbol, function, in-place function)
    "Add": ("+", operator.add, operator.iadd), "Sub": ("-", operator.sub, operator.isub),
    "Mult": ("*", operator.mul, operator.imul), "MatMult": ("@", operator.matmul, operator.imatmul),
    "Div": ("/", operator.truediv, operator.itruediv),
    "FloorDiv": ("//", operator.floordiv, operator.ifloordiv),
    "Mod": ("%", operator.mod, operator.imod), "Pow": ("**", operator.pow, operator.ipow),
    "LShift": ("<<", operator.lshift, operator.ilshift),
    "RShift": (">>", operator.rshift, operator.irshift),
    "BitOr": ("|", operator.or_, operator.ior), "BitXor": ("^", operator.xor, operator.ixor),
    "BitAnd": ("&", operator.and_, operator.iand),
}
_ARITH = {name: _make_arith(sym, fn) for name, (sym, fn, _) in _BINOPS.items()}
_INPLACE = {name: _make_arith(sym + "=", ifn) for name, (sym, _, ifn) in _BINOPS.items()}


# --------------------------------------------------------------------------- library functions


def _plain_args(what: str, args) -> list:
    """The arguments with program subclasses of builtins reduced; other program values refused."""
    memo: dict = {}
    try:
        return [a if _id(_type(a)) in _SCALARS else _canon(a, memo) for a in args]
    except _Refused as e:
        raise _refuse(what, e.culprit) from None


def _make_isclose(real):
    def isclose(a, b, **kwargs):
        a, b = _plain_args("tolerance check 'isclose'", (a, b))
        return real(a, b, **kwargs)
    isclose.__name__ = isclose.__qualname__ = f"guarded_{real.__name__}"
    return isclose


def _count_of(box, value) -> int:
    memo: dict = {}
    try:
        return sum(1 for x in box if x is value or _struct_eq(x, value, memo, False))
    except _Refused as e:
        raise _refuse("operator.countOf", e.culprit) from None


def _index_of(box, value) -> int:
    memo: dict = {}
    try:
        for i, x in enumerate(box):
            if x is value or _struct_eq(x, value, memo, False):
                return i
    except _Refused as e:
        raise _refuse("operator.indexOf", e.culprit) from None
    raise ValueError("sequence.index(x): x not in sequence")


# Library functions that compare, test truth or do arithmetic on their arguments: wherever the
# tests load one (call it, pass it to `map`, alias it), they get the guarded one.
_SUBSTITUTES = [
    (operator.eq, eq), (operator.ne, ne), (operator.lt, lt), (operator.le, le),
    (operator.gt, gt), (operator.ge, ge), (operator.contains, lambda box, x: contains(x, box)),
    (operator.countOf, _count_of), (operator.indexOf, _index_of), (operator.truth, truth_of),
    (operator.not_, not_), (builtins.all, all_), (builtins.any, any_),
    (math.isclose, _make_isclose(math.isclose)), (cmath.isclose, _make_isclose(cmath.isclose)),
    *[(fn, _ARITH[name]) for name, (_, fn, _) in _BINOPS.items()],
    *[(ifn, _INPLACE[name]) for name, (_, _, ifn) in _BINOPS.items()],
]
_SUBST_BY_ID = {_id(real): (real, guarded) for real, guarded in _SUBSTITUTES}
_SUBST_NAMES = frozenset(
    name for mod in (operator, math, cmath, builtins) for name, obj in vars(mod).items()
    if _id(obj) in _SUBST_BY_ID and not name.startswith("__"))


def substitute(obj):
    """The guarded stand-in for a library function the tests loaded, else `obj` itself."""
    s = _SUBST_BY_ID.get(_id(obj))
    return s[1] if s is not None and s[0] is obj else obj


# --------------------------------------------------------------------------- unittest


def _assert_wrapper(name: str, original, kind: str):
    """A `TestCase.assert*` method whose value arguments are checked as the test syntax is:
    plain values go to unittest as they are (its messages intact), builtin subclasses reduced;
    program objects only through the guarded comparison."""
    n = 1 if kind == "truth" else 2
    params = original.__code__.co_varnames[1:1 + n]  # (first, second), (member, container) ...

    def method(self, *args, **kwargs):
        args = list(args)
        while len(args) < n and params[len(args)] in kwargs:  # values passed by keyword
            args.append(kwargs.pop(params[len(args)]))
        if len(args) < n:  # missing: unittest's own signature complains
            return original(self, *args, **kwargs)
        vals, rest = args[:n], args[n:]
        if kind == "truth":
            return original(self, truth(vals[0]), *rest, **kwargs)
        status = [_CLEAN if _id(_type(v)) in _SCALARS else _scan(v)[0] for v in vals]
        if _PROGRAM not in status:
            if any(status):
                vals = _plain_args(name, vals)
            return original(self, *vals, *rest, **kwargs)
        if kind == "eq":
            ok = eq(vals[0], vals[1])
        elif kind == "ne":
            ok = ne(vals[0], vals[1])
        elif kind == "in":
            ok = contains(vals[0], vals[1])
        elif kind == "not_in":
            ok = not contains(vals[0], vals[1])
        else:
            return original(self, *_plain_args(name, vals), *rest, **kwargs)  # refuses
        if not ok:
            msg = kwargs.get("msg") or (rest[0] if rest else None)
            raise self.failureException(msg or f"{name} failed")

    method.__name__ = method.__qualname__ = name
    return method


_ASSERT_KINDS = {
    "assertEqual": "eq", "assertListEqual": "eq", "assertTupleEqual": "eq",
    "assertSequenceEqual": "eq", "assertDictEqual": "eq", "assertSetEqual": "eq",
    "assertMultiLineEqual": "eq", "assertNotEqual": "ne", "assertIn": "in",
    "assertNotIn": "not_in", "assertTrue": "truth", "assertFalse": "truth",
    "assertCountEqual": "plain", "assertAlmostEqual": "plain", "assertNotAlmostEqual": "plain",
    "assertGreater": "plain", "assertGreaterEqual": "plain", "assertLess": "plain",
    "assertLessEqual": "plain", "assertRegex": "plain", "assertNotRegex": "plain",
    "assertDictContainsSubset": "plain",
}
_ASSERT_ALIASES = {  # deprecated names, which call the original functions directly
    "assertEquals": "assertEqual", "failUnlessEqual": "assertEqual",
    "assertNotEquals": "assertNotEqual", "failIfEqual": "assertNotEqual",
    "assertAlmostEquals": "assertAlmostEqual", "failUnlessAlmostEqual": "assertAlmostEqual",
    "assertNotAlmostEquals": "assertNotAlmostEqual", "failIfAlmostEqual": "assertNotAlmostEqual",
    "assert_": "assertTrue", "failUnless": "assertTrue", "failIf": "assertFalse",
    "assertRegexpMatches": "assertRegex", "assertNotRegexpMatches": "assertNotRegex",
}
_TESTCASE = unittest.TestCase
_TESTCASE_DICT = dict(_tp_dict(_TESTCASE))
_GUARDED_ASSERTS = {name: _assert_wrapper(name, _TESTCASE_DICT[name], kind)
                    for name, kind in _ASSERT_KINDS.items() if name in _TESTCASE_DICT}
_GUARDED_ASSERTS.update({alias: _GUARDED_ASSERTS[name] for alias, name in _ASSERT_ALIASES.items()
                         if alias in _TESTCASE_DICT and name in _GUARDED_ASSERTS})


def _guard_testcase() -> None:
    """`unittest.TestCase` put back as the library made it, with the guarded asserts."""
    now = _tp_dict(_TESTCASE)
    for k in [k for k in now if k not in _TESTCASE_DICT]:
        delattr(_TESTCASE, k)
    for k, v in _TESTCASE_DICT.items():
        v = _GUARDED_ASSERTS.get(k, v)
        if now.get(k, _MISSING) is not v:
            setattr(_TESTCASE, k, v)


# --------------------------------------------------------------------------- restoring

_IMPLICIT_BUILTINS = ("__import__", "__build_class__")  # what `import` and `class` look up


def prepare(ns: dict, plan: tuple) -> None:
    """After the program ran, before the tests: put back what the program may have replaced and
    the tests can reach (`restore_plan`): the builtins Python looks up by itself (the tests'
    builtin names are baked in), the modules the tests import, and `unittest.TestCase`."""
    modules, all_builtins, testcase = plan
    saved = _MODULES["builtins"][1]
    for k in (saved if all_builtins else _IMPLICIT_BUILTINS):
        if _BUILTINS_DICT.get(k, _MISSING) is not saved[k]:
            _BUILTINS_DICT[k] = saved[k]
    for name in modules:
        if name in _MODULES:
            mod, attrs = _MODULES[name]
            _sys_modules[name] = mod
            d = mod.__dict__
            for k, v in attrs.items():
                if d.get(k, _MISSING) is not v:
                    d[k] = v
    if testcase:
        _guard_testcase()
    before_statement(ns)


def before_statement(ns: dict) -> None:
    """Before each test statement: the real builtins (the program may have swapped them)."""
    ns["__builtins__"] = _BUILTINS_DICT


# --------------------------------------------------------------------------- rewriting

_TOKEN = "\0synth-guard-" + os.urandom(8).hex()
_BUILTIN_NAMES = frozenset(k for k in vars(builtins) if not k.startswith("__"))
_NOT_BAKED = {"super"}  # zero-argument super() needs the compiler to see the name
_G_COMPARE = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt",
              ast.GtE: "ge", ast.In: "contains", ast.NotIn: "not_contains", ast.Is: "is_",
              ast.IsNot: "is_not"}
_TRUSTED_RESULT = "_synth_trusted"  # marks rewritten nodes whose value needs no truth guard

# What the rewritten tests call: one object, baked into their code objects as a constant.
G = types.SimpleNamespace(
    eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge, contains=contains, not_contains=not_contains,
    is_=operator.is_, is_not=operator.is_not, truth=truth, truth_of=truth_of, chain=chain,
    substitute=substitute, trust_class=trust_class,
    **{f"op_{k}": v for k, v in _ARITH.items()}, **{f"iop_{k}": v for k, v in _INPLACE.items()},
    **{f"b_{k}": substitute(getattr(builtins, k)) for k in _BUILTIN_NAMES},
)


def _g(attr: str, node: ast.AST) -> ast.Attribute:
    token = ast.copy_location(ast.Constant(_TOKEN), node)
    return ast.copy_location(ast.Attribute(token, attr, ast.Load()), node)


def _call(attr: str, args: list, node: ast.AST, trusted: bool = False) -> ast.Call:
    call = ast.copy_location(ast.Call(_g(attr, node), args, []), node)
    if trusted:
        setattr(call, _TRUSTED_RESULT, True)
    return call


def _facts(tree: ast.Module) -> tuple:
    """One walk over the parsed tests: (names they bind anywhere, in any scope, which are
    never taken as builtins; names they import from `operator` or `math` that get guarded
    stand-ins; whether they star-import; the modules they import, with parent packages;
    whether they use unittest). Kept on the tree, since the harness asks before rewriting."""
    facts = getattr(tree, "_synth_facts", None)
    if facts is not None:
        return facts
    bound, substituted, modules = set(), set(), set()
    star = testcase = False
    for node in ast.walk(tree):
        kind = type(node)
        if kind is ast.Name:
            if type(node.ctx) is not ast.Load:
                bound.add(node.id)
            elif node.id in ("unittest", "TestCase"):
                testcase = True
        elif kind is ast.arg:
            bound.add(node.arg)
        elif kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            bound.add(node.name)
        elif kind is ast.Import or kind is ast.ImportFrom:
            for a in node.names:
                bound.add((a.asname or a.name).split(".")[0])
            if kind is ast.ImportFrom:
                star |= any(a.name == "*" for a in node.names)
                substituted.update(a.asname or a.name for a in node.names
                                   if a.name in _SUBST_NAMES)
                full = [node.module] if node.module and not node.level else []
            else:
                full = [a.name for a in node.names]
            for name in full:
                parts = name.split(".")
                modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        elif kind is ast.Global or kind is ast.Nonlocal:
            bound.update(node.names)
        elif kind is ast.ExceptHandler or kind is ast.MatchAs or kind is ast.MatchStar:
            if node.name:
                bound.add(node.name)
        elif kind is ast.MatchMapping and node.rest:
            bound.add(node.rest)
        elif kind is ast.Attribute and node.attr == "TestCase":
            testcase = True
    testcase |= "unittest" in modules
    facts = (bound, substituted, star, sorted(modules), testcase)
    tree._synth_facts = facts
    return facts


def restore_plan(tree: ast.Module) -> tuple:
    """What `prepare` puts back for these (parsed, not yet rewritten) tests."""
    _, _, star, modules, testcase = _facts(tree)
    return modules, star, testcase


def import_early(plan: tuple) -> None:
    """Before the program runs: import the modules the tests import that are not loaded yet
    (`pytest` for its `approx`, say), and trust their classes as the preloaded ones are. A module
    that cannot be imported yet (one the program will write) is left to the tests."""
    for name in plan[0]:
        if name in _sys_modules:
            continue
        before = set(_sys_modules)
        try:
            __import__(name)
        except BaseException:  # not there (yet), or broken: the tests' own import will tell
            continue
        for new in set(_sys_modules) - before:
            mod = _sys_modules[new]
            if not isinstance(mod, types.ModuleType):
                continue
            _MODULES[new] = (mod, dict(mod.__dict__))
            for value in list(mod.__dict__.values()):
                if isinstance(value, type) and _tp_flags(value) & _HEAPTYPE \
                        and _id(value) not in _SNAP:
                    _record(value)


def _as_expression(key: ast.expr) -> ast.expr:
    """A subscript's key as an ordinary expression (`a[1:2]` is `a[slice(1, 2, None)]`)."""
    if isinstance(key, ast.Slice):
        parts = [p if p is not None else ast.copy_location(ast.Constant(None), key)
                 for p in (key.lower, key.upper, key.step)]
        return ast.copy_location(ast.Call(_g("b_slice", key), parts, []), key)
    if isinstance(key, ast.Tuple):
        return ast.copy_location(ast.Tuple([_as_expression(e) for e in key.elts], ast.Load()),
                                 key)
    return key


_SKIPPED_FIELDS = frozenset(("ctx", "op", "ops"))  # load/store contexts, operators: nothing inside


class _Rewriter(ast.NodeTransformer):
    """Routes comparisons, truth tests, arithmetic and library-function loads through `G`."""

    def __init__(self, bound: set, substituted_names: set, bake_builtins: bool):
        self.bound = bound
        self.substituted_names = substituted_names
        self.bake_builtins = bake_builtins
        self.n = 0
        self.scopes = ["module"]  # "module" | "function" | "class" | "comp"
        self.comp_iter = 0  # inside a comprehension's iterable, where `:=` is not allowed

    def _temp(self) -> str:
        self.n += 1
        return f"_synth_t{self.n}_"

    def visit(self, node):
        method = _DISPATCH.get(type(node))
        return method(self, node) if method is not None else self.generic_visit(node)

    def generic_visit(self, node):
        for field in node._fields:
            if field in _SKIPPED_FIELDS:
                continue
            old = getattr(node, field, None)
            if type(old) is list:
                old[:] = self._visit_list(old)
            elif isinstance(old, ast.AST):
                setattr(node, field, self.visit(old))
        return node

    def _walrus_ok(self) -> bool:
        if self.comp_iter:
            return False
        if "comp" in self.scopes:
            outer = next(s for s in reversed(self.scopes) if s != "comp")
            return outer != "class"  # := in a comprehension of a class body is not allowed
        return True

    # scopes -----------------------------------------------------------------------------

    def _in_scope(self, kind: str, node, field: str):
        self.scopes.append(kind)
        try:
            value = getattr(node, field)
            setattr(node, field, self._visit_list(value) if isinstance(value, list)
                    else self.visit(value))
        finally:
            self.scopes.pop()
        return node

    def _visit_list(self, items: list) -> list:
        out = []
        for item in items:
            if not isinstance(item, ast.AST):  # None in Dict.keys, names in Global
                out.append(item)
                continue
            new = self.visit(item)
            if new is not None:
                out.extend(new if isinstance(new, list) else [new])
        return out

    def _visit_arguments(self, args: ast.arguments) -> ast.arguments:
        args.defaults = self._visit_list(args.defaults)
        args.kw_defaults = [d if d is None else self.visit(d) for d in args.kw_defaults]
        return args  # annotations are left as written

    def _visit_function(self, node):
        node.decorator_list = self._visit_list(node.decorator_list)
        node.args = self._visit_arguments(node.args)
        return self._in_scope("function", node, "body")

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def visit_Lambda(self, node):
        node.args = self._visit_arguments(node.args)
        return self._in_scope("function", node, "body")

    def visit_ClassDef(self, node):
        node.decorator_list = [_g("trust_class", node)] + self._visit_list(node.decorator_list)
        node.bases = self._visit_list(node.bases)
        node.keywords = self._visit_list(node.keywords)
        return self._in_scope("class", node, "body")

    def _visit_comprehension(self, node):
        self.comp_iter += 1  # the first iterable is evaluated outside the comprehension
        node.generators[0].iter = self.visit(node.generators[0].iter)
        self.comp_iter -= 1
        self.scopes.append("comp")
        try:
            for i, gen in enumerate(node.generators):
                if i:
                    self.comp_iter += 1
                    gen.iter = self.visit(gen.iter)
                    self.comp_iter -= 1
                gen.ifs = [self._truth(self.visit(t)) for t in gen.ifs]
            for field in ("elt", "key", "value"):
                if hasattr(node, field):
                    setattr(node, field, self.visit(getattr(node, field)))
        finally:
            self.scopes.pop()
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def visit_AnnAssign(self, node):
        if node.value is not None:
            node.value = self.visit(node.value)
        node.target = self.visit(node.target)
        return node

    def visit_arg(self, node):
        return node

    def visit_match_case(self, node):
        if node.guard is not None:
            node.guard = self._truth(self.visit(node.guard))
        node.body = self._visit_list(node.body)
        return node  # patterns are left as written (see the module docstring)

    # truth tests ------------------------------------------------------------------------

    def _truth(self, node):
        if isinstance(node, ast.Constant) or getattr(node, _TRUSTED_RESULT, False):
            return node
        return _call("truth", [node], node)

    def _test_field(self, node):
        self.generic_visit(node)
        node.test = self._truth(node.test)
        return node

    visit_Assert = visit_If = visit_While = visit_IfExp = _test_field

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        # the last operand's truth is not tested by the operator (only by an enclosing test)
        node.values = [self._truth(v) for v in node.values[:-1]] + node.values[-1:]
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            node.operand = self._truth(node.operand)
            setattr(node, _TRUSTED_RESULT, True)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "b_bool"
                and isinstance(func.value, ast.Constant) and func.value.value == _TOKEN
                and len(node.args) == 1 and not node.keywords
                and not isinstance(node.args[0], ast.Starred)):
            return _call("truth_of", node.args, node, trusted=True)
        return node

    # comparisons and arithmetic -------------------------------------------------------------

    def visit_Compare(self, node):
        self.generic_visit(node)
        ops = [_G_COMPARE[type(op)] for op in node.ops]
        operands = [node.left, *node.comparators]
        if len(ops) == 1:
            if ops[0] in ("is_", "is_not"):
                setattr(node, _TRUSTED_RESULT, True)
                return node
            return _call(ops[0], operands, node, trusted=True)
        if self._walrus_ok():
            # a < b < c  ->  lt(a, (t := b)) and lt(t, c): b once, c only if a < b holds
            parts, left = [], operands[0]
            for i, op in enumerate(ops):
                right = operands[i + 1]
                if i < len(ops) - 1:
                    name = self._temp()
                    target = ast.copy_location(ast.Name(name, ast.Store()), right)
                    right = ast.copy_location(ast.NamedExpr(target, right), right)
                    parts.append(_call(op, [left, right], node, trusted=True))
                    left = ast.copy_location(ast.Name(name, ast.Load()), right)
                else:
                    parts.append(_call(op, [left, right], node, trusted=True))
            out = ast.copy_location(ast.BoolOp(ast.And(), parts), node)
            setattr(out, _TRUSTED_RESULT, True)
            return out
        args = [operands[0], _g(ops[0], node), operands[1]]
        for op, operand in zip(ops[1:], operands[2:]):
            thunk = ast.Lambda(ast.arguments([], [], None, [], [], None, []), operand)
            args += [_g(op, node), ast.copy_location(thunk, operand)]
        return _call("chain", args, node, trusted=True)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return _call(f"op_{type(node.op).__name__}", [node.left, node.right], node)

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        op = f"iop_{type(node.op).__name__}"
        target = node.target
        if isinstance(target, ast.Name):
            load = ast.copy_location(ast.Name(target.id, ast.Load()), target)
            return ast.copy_location(ast.Assign([target], _call(op, [load, node.value], node)),
                                     node)
        # obj.attr OP= v  ->  t = obj; t.attr = iop(t.attr, v)   (subscripts alike), wrapped
        # in `if True:` so that it stays one statement for the harness's reports
        t_obj = self._temp()
        body = [ast.Assign([ast.Name(t_obj, ast.Store())], target.value)]
        if isinstance(target, ast.Attribute):
            def place(ctx):
                return ast.Attribute(ast.Name(t_obj, ast.Load()), target.attr, ctx)
        else:
            t_key = self._temp()
            body.append(ast.Assign([ast.Name(t_key, ast.Store())], _as_expression(target.slice)))

            def place(ctx):
                return ast.Subscript(ast.Name(t_obj, ast.Load()), ast.Name(t_key, ast.Load()),
                                     ctx)
        body.append(ast.Assign([place(ast.Store())], _call(op, [place(ast.Load()), node.value],
                                                            node)))
        return ast.fix_missing_locations(ast.copy_location(ast.If(ast.Constant(True), body, []),
                                                           node))

    # names ------------------------------------------------------------------------------

    def visit_Name(self, node):
        if not isinstance(node.ctx, ast.Load):
            return node
        if (self.bake_builtins and node.id in _BUILTIN_NAMES and node.id not in self.bound
                and node.id not in _NOT_BAKED):
            return _g(f"b_{node.id}", node)
        if node.id in self.substituted_names:
            return _call("substitute", [node], node)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and node.attr in _SUBST_NAMES:
            return _call("substitute", [node], node)
        return node


_DISPATCH = {  # node class -> method, looked up once rather than per node
    getattr(ast, name[len("visit_"):]): getattr(_Rewriter, name) for name in dir(_Rewriter)
    if name.startswith("visit_") and name != "visit_Constant" and hasattr(ast, name[6:])}


def rewrite_tests(tree: ast.Module) -> ast.Module:
    """The parsed test module, rewritten in place (see the module docstring)."""
    bound, substituted, star, _, _ = _facts(tree)
    # `from m import *` may bind builtin names (math's pow): then names resolve as Python does
    return _Rewriter(bound, substituted, bake_builtins=not star).visit(tree)


def _bake(code: types.CodeType) -> types.CodeType:
    consts = tuple(G if _type(c) is str and c == _TOKEN else
                   _bake(c) if _type(c) is types.CodeType else c for c in code.co_consts)
    return code.replace(co_consts=consts)


def compile_statement(stmt: ast.stmt, filename: str) -> types.CodeType:
    """One rewritten top-level statement, compiled, with the helpers baked in."""
    code = compile(ast.Module(body=[stmt], type_ignores=[]), filename, "exec", dont_inherit=True)
    return _bake(code)


# --------------------------------------------------------------------------- the snapshot

# Last, so that the classes above are in it too. In the fork server this runs before any program.
_MODULES = {name: (mod, dict(mod.__dict__)) for name, mod in list(sys.modules.items())
            if isinstance(mod, types.ModuleType) and name != "__main__"}
for _obj in gc.get_objects():
    if isinstance(_obj, type) and _tp_flags(_obj) & _HEAPTYPE:
        _record(_obj)
del _obj
