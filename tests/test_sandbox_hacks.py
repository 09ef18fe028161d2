"""The comparison guard (`verifiers.sandbox.guard`): reward hacks through lying objects.

ATTACKS: programs whose objects lie (`__eq__` always True, `__bool__`, `__contains__`, `__sub__`
and the rest) against every form a test can compare in; each runs in the real sandbox and must
not pass. HONEST: programs returning correct values, including builtin subclasses (named tuples,
IntEnum, str/dict subclasses) and classes of their own, which must pass. EXACT: comparisons
among values the tests computed themselves give what Python gives (in-process, rewritten code
against plain code).
"""

from __future__ import annotations

import ast
import os

import pytest

from verifiers.code import check_code
from verifiers.sandbox import guard

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the code sandbox needs root")
LIMITS = dict(timeout=10, memory_mb=256)

ANYTHING = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    __le__ = __gt__ = __ge__ = __lt__
    def __bool__(self): return True
    def __len__(self): return 1
    def __contains__(self, item): return True
    def __hash__(self): return 0
    def __iter__(self): return iter([1, 2, 3])
    def __getitem__(self, i): return Anything()
    def __sub__(self, other): return 0.0
    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __sub__
    def __abs__(self): return 0.0
    def __float__(self): return 3.0

class Nothing:
    def __bool__(self): return False
    def __len__(self): return 0

def f(*args):
    return Anything()

def empty(*args):
    return Nothing()
"""

LIES = """
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0
    def __contains__(self, item): return True
    def __len__(self): return 3
    def __bool__(self): return True
    def __iter__(self): return iter([1, 2, 3])
    def __getitem__(self, i): return [1, 2, 3][i]
    def keys(self): return [1]
    def items(self): return [(1, 2)]
    def __int__(self): return 5
    def __index__(self): return 5
    def __add__(self, other): return 5
    __radd__ = __add__
    def __sub__(self, other): return 0
    __rsub__ = __sub__
"""


def lying_subclass(base: str, value: str) -> str:
    """A program subclass of a builtin whose every override lies; `f()` returns `value` of it."""
    return f"class Sub({base}):\n{LIES}\ndef f(*args):\n    return Sub({value})\n"


ATTACKS = [
    # (name, program, tests, what the failure reason must mention)
    ("== literal", ANYTHING, "assert f(1) == 2", "refused"),
    ("== variable the tests computed", ANYTHING, "expected = sorted([3, 1])\nassert f(1) == expected",
     "refused"),
    ("== on the left", ANYTHING, "expected = 4\nassert expected == f(1)", "refused"),
    ("!= negated", ANYTHING, "assert not (f(1) != 3)", "refused"),
    ("chained ==", ANYTHING, "assert 1 == f(1) == 1", "refused"),
    ("chained <", ANYTHING, "assert 0 < f(1) < 3", "refused"),
    ("chained in a comprehension filter", ANYTHING, "assert [x for x in [1] if 0 < f(x) < 3]",
     "refused"),
    ("chained in a comprehension of a class body", ANYTHING,
     "class T:\n    ok = all([0 < f(x) < 3 for x in [1]])\nassert T.ok", "refused"),
    ("in, program value as needle", ANYTHING, "assert f(1) in [1, 2]", "refused"),
    ("in, program value as container", ANYTHING, "assert 3 in f(1)", "refused"),
    ("in a set (hash)", ANYTHING, "assert f(1) in {1, 2}", "refused"),
    ("in a set, only __hash__ lies", "class H:\n    def __hash__(self): return hash(1)\n"
     "def f():\n    return H()", "assert f() in {1}", "refused"),
    ("in, liar inside the tests' list", ANYTHING, "assert 7 in [f(1)]", "refused"),
    ("not in", ANYTHING, "assert not (f(1) not in (1, 2))", "refused"),
    ("in a generator the program returns", ANYTHING + "def g():\n    return (f() for _ in range(3))",
     "assert 3 in g()", "refused"),
    ("truth", ANYTHING, "assert f(1)", "refused"),
    ("not truth", ANYTHING, "assert not empty(1)", "refused"),
    ("truth in if", ANYTHING, "if not f(1):\n    raise AssertionError('wrong')", "refused"),
    ("truth in and/or", ANYTHING, "assert f(1) and True", "refused"),
    ("truth in a conditional expression", ANYTHING, "assert True if f(1) else False", "refused"),
    ("truth in while", ANYTHING, "while not f(1):\n    break\nelse:\n    pass", "refused"),
    ("bool()", ANYTHING, "assert bool(f(1))", "refused"),
    ("all()", ANYTHING, "assert all([f(1), f(2)])", "refused"),
    ("any() of a generator", ANYTHING, "assert any(f(x) for x in range(3))", "refused"),
    ("a helper the tests define", ANYTHING,
     "def check(a, b):\n    assert a == b\ncheck(f(1), 5)", "refused"),
    ("a helper that raises itself", ANYTHING,
     "def check(a, b):\n    if a != b:\n        raise AssertionError((a, b))\ncheck(f(1), 5)",
     "refused"),
    ("a HumanEval-style check(candidate)", ANYTHING,
     "def check(candidate):\n    assert candidate(1) == 2\ncheck(f)", "refused"),
    ("a lambda the tests define", ANYTHING, "same = lambda a, b: a == b\nassert same(f(1), 3)",
     "refused"),
    ("unittest assertEqual", ANYTHING,
     "import unittest\nunittest.TestCase().assertEqual(f(1), 5)", "refused"),
    ("unittest TestCase subclass", ANYTHING,
     "import unittest\nclass T(unittest.TestCase):\n    def test(self):\n"
     "        self.assertEqual(f(1), 5)\nT('test').test()", "refused"),
    ("unittest assertTrue", ANYTHING, "import unittest\nunittest.TestCase().assertTrue(f(1))",
     "refused"),
    ("unittest assertIn", ANYTHING, "import unittest\nunittest.TestCase().assertIn(3, f(1))",
     "refused"),
    ("unittest assertAlmostEqual", ANYTHING,
     "import unittest\nunittest.TestCase().assertAlmostEqual(f(1), 3.0)", "refused"),
    ("unittest values passed by keyword", ANYTHING,
     "import unittest\nunittest.TestCase().assertEqual(first=f(1), second=5)", "refused"),
    ("unittest deprecated alias", ANYTHING,
     "import unittest\nunittest.TestCase().assertEquals(f(1), 5)", "refused"),
    ("abs(f(x) - c) < eps", ANYTHING, "assert abs(f(1) - 3.0) < 1e-9", "refused"),
    ("abs(c - f(x)) <= eps", ANYTHING, "assert abs(3.0 - f(1)) <= 1e-9", "refused"),
    ("augmented assignment", ANYTHING, "x = 3.0\nx -= f(1)\nassert abs(x) < 1e-9", "refused"),
    ("augmented assignment to an item", ANYTHING,
     "d = {'k': 3.0}\nd['k'] -= f(1)\nassert d['k'] == 0.0", "refused"),
    ("math.isclose", ANYTHING, "import math\nassert math.isclose(f(1), 3.0)", "refused"),
    ("from math import isclose", ANYTHING, "from math import isclose\nassert isclose(f(1), 3.0)",
     "refused"),
    ("operator.eq", ANYTHING, "import operator\nassert operator.eq(f(1), 3)", "refused"),
    ("operator.eq aliased", ANYTHING, "from operator import eq as same\nassert same(f(1), 3)",
     "refused"),
    ("map(operator.eq, ...)", ANYTHING,
     "import operator\nassert all(map(operator.eq, [f(1)], [3]))", "refused"),
    ("functools.partial(operator.eq, ...)", ANYTHING,
     "import functools, operator\nassert functools.partial(operator.eq, f(1))(3)", "refused"),
    ("operator.contains", ANYTHING, "import operator\nassert operator.contains(f(1), 3)",
     "refused"),
    ("inside a list", ANYTHING, "assert [f(1)] == [3]", "refused"),
    ("inside a tuple", ANYTHING, "assert (1, f(1)) == (1, 3)", "refused"),
    ("inside dict values", ANYTHING, "assert {'k': f(1)} == {'k': 3}", "refused"),
    ("inside a deque", ANYTHING,
     "from collections import deque\nassert deque([f(1)]) == deque([3])", "refused"),
    ("inside a named tuple", ANYTHING + "from collections import namedtuple\nP = namedtuple('P', 'x')",
     "assert P(f(1)) == (3,)", "refused"),
    ("collections.UserList", ANYTHING,
     "from collections import UserList\nassert UserList([f(1)]) == [3]", "refused"),
    ("collections.UserDict", ANYTHING,
     "from collections import UserDict\nassert UserDict(k=f(1)) == {'k': 3}", "refused"),
    ("collections.UserString around a liar",
     ANYTHING + "from collections import UserString\ndef g():\n    u = UserString('')\n"
     "    u.data = f()\n    return u", "assert g() == 'abc'", "refused"),
    ("collections.ChainMap", ANYTHING,
     "from collections import ChainMap\nassert ChainMap({'k': f(1)}) == {'k': 3}", "refused"),
    ("types.SimpleNamespace", ANYTHING,
     "import types\nassert types.SimpleNamespace(a=f(1)) == types.SimpleNamespace(a=3)",
     "refused"),
    ("types.MappingProxyType", ANYTHING,
     "import types\nassert types.MappingProxyType({'k': f(1)}) == {'k': 3}", "refused"),
    ("weakref.proxy", ANYTHING + "import weakref\nkeep = Anything()\ndef g():\n"
     "    return weakref.proxy(keep)", "assert g() == 3", "refused"),
    ("weakref.ref", ANYTHING + "import weakref\nkeep = Anything()\ndef g():\n"
     "    return weakref.ref(keep)",
     "import weakref\nclass B:\n    pass\nb = B()\nassert g() == weakref.ref(b)", "refused"),
    ("slice", ANYTHING, "assert slice(f(1)) == slice(3)", "refused"),
    ("dict values view", ANYTHING + "def g():\n    return {'k': f()}.values()", "assert 3 in g()",
     "refused"),
    ("set arithmetic hashing a liar", ANYTHING, "assert not ({f(1)} - {3})", "refused"),
    ("a cycle through a list", ANYTHING + "def g():\n    l = [f()]\n    l.append(l)\n    return l",
     "x = [3]\nx.append(x)\nassert g() == x", "refused"),
    ("same-class comparison returning a liar",
     "class T:\n    def __bool__(self): return True\nclass A:\n"
     "    def __eq__(self, other): return T()\ndef f():\n    return A()",
     "assert f() == A()", "refused"),
    ("a class of the tests holding the program's value", ANYTHING,
     "class Box:\n    def __init__(self, v):\n        self.v = v\n"
     "    def __eq__(self, o):\n        return self.v == o\nassert Box(f(1)) == 3", "refused"),
    ("a class statement of the tests deriving from a program class", ANYTHING,
     "class B(Anything):\n    pass\nassert B() == 3", "refused"),
    ("a test class the program patches later", ANYTHING +
     "def g():\n    globals()['Approx'].__eq__ = lambda s, o: True\n    return 1",
     "class Approx:\n    def __init__(self, v):\n        self.v = v\n"
     "    def __eq__(self, o):\n        return o == self.v\nr = g()\nassert Approx(3) == r",
     "refused"),
    ("__class__ claiming to be int",
     "class X:\n    __class__ = property(lambda s: int)\n    def __eq__(s, o): return True\n"
     "def f():\n    return X()", "assert f() == 3", "refused"),
    ("a metaclass whose __eq__ lies",
     "class M(type):\n    def __eq__(c, o): return True\n    __hash__ = type.__hash__\n"
     "class P(metaclass=M):\n    pass\ndef f():\n    return P()",
     "assert type(f()) == int", "refused"),
    ("a library class patched by the program",
     "import collections\ncollections.Counter.__eq__ = lambda s, o: True\n"
     "def f():\n    return collections.Counter()", "assert f() == {'a': 1}", "AssertionError"),
    ("a class passed off as a library one",
     "import collections\nclass Anything:\n    def __eq__(s, o): return True\n"
     "Anything.__module__ = 'collections'\ncollections.Anything = Anything\n"
     "def f():\n    return Anything()", "assert f() == 3", "refused"),
    ("lying list subclass", lying_subclass("list", "[9]"), "assert f() == [1, 2, 3]",
     "AssertionError"),
    ("lying list subclass, in", lying_subclass("list", "[9]"), "assert 1 in f()",
     "AssertionError"),
    ("lying list subclass, truth", lying_subclass("list", "[]"), "assert f()", "AssertionError"),
    ("lying tuple subclass", lying_subclass("tuple", "(9,)"), "assert f() == (1, 2, 3)",
     "AssertionError"),
    ("lying dict subclass", lying_subclass("dict", "z=0"), "assert f() == {1: 2}",
     "AssertionError"),
    ("lying dict subclass, in", lying_subclass("dict", "z=0"), "assert 1 in f()",
     "AssertionError"),
    ("lying str subclass", lying_subclass("str", "'zz'"), "assert f() == 'abc'",
     "AssertionError"),
    ("lying str subclass, in a set", lying_subclass("str", "'zz'"), "assert f() in {'abc'}",
     "AssertionError"),
    ("lying int subclass, arithmetic", lying_subclass("int", "2"), "assert f() + 4 == 5",
     "AssertionError"),
    ("lying int subclass, tolerance", lying_subclass("int", "1"), "assert abs(5 - f()) < 1e-9",
     "AssertionError"),
    ("lying set subclass", lying_subclass("set", "{9}"), "assert f() == {1, 2, 3}",
     "AssertionError"),
    ("lying OrderedDict subclass", "from collections import OrderedDict\n" +
     lying_subclass("OrderedDict", "z=1"), "assert f() == {1: 2}", "AssertionError"),
    ("lying Counter subclass", "from collections import Counter\n" +
     lying_subclass("Counter", "'z'"), "assert f() == {'a': 1}", "AssertionError"),
    ("lying IntEnum", "import enum\nclass E(enum.IntEnum):\n    A = 9\n"
     "    def __eq__(self, other): return True\n    __hash__ = int.__hash__\n"
     "def f():\n    return E.A", "assert f() == 5", "AssertionError"),
    ("the program shadows abs", "abs = lambda x: 0\ndef f():\n    return 1.0",
     "assert abs(f() - 3.0) < 1e-9", "AssertionError"),
    ("the program shadows all", "def all(xs): return True\ndef f():\n    return 1",
     "assert all([f() == 3])", "AssertionError"),
    ("the program patches builtins.abs", "import builtins\nbuiltins.abs = lambda x: 0\n"
     "def f():\n    return 1.0", "assert abs(f() - 3.0) < 1e-9", "AssertionError"),
    ("the program swaps its __builtins__",
     "import builtins\nd = dict(builtins.__dict__)\nd['abs'] = lambda x: 0\n"
     "globals()['__builtins__'] = d\ndef f():\n    return 1.0",
     "assert abs(f() - 3.0) < 1e-9", "AssertionError"),
    ("a comparison in a dict display after **", ANYTHING,
     "assert {**{}, 'k': f(1) == 3}['k']", "refused"),
    ("the program patches builtins.__import__",
     "import builtins, types\nreal = builtins.__import__\n"
     "fake = types.SimpleNamespace(isclose=lambda *a, **k: True)\n"
     "builtins.__import__ = lambda name, *a, **k: fake if name == 'math' else real(name, *a, **k)\n"
     "def f():\n    return 1.0", "import math\nassert math.isclose(f(), 3.0)", "AssertionError"),
    ("the program patches builtins.__build_class__", ANYTHING +
     "import builtins\nreal = builtins.__build_class__\n"
     "builtins.__build_class__ = lambda fn, name, *bases, **kw: Anything",
     "class Expected:\n    pass\nassert Expected() == f(1)", "refused"),
    ("the program patches math.isclose", "import math\nmath.isclose = lambda *a, **k: True\n"
     "def f():\n    return 1.0", "import math\nassert math.isclose(f(), 3.0)", "AssertionError"),
    ("the program patches operator.eq", "import operator\noperator.eq = lambda a, b: True\n"
     "def f():\n    return 1", "import operator\nassert operator.eq(f(), 3)", "AssertionError"),
    ("the program patches unittest.TestCase",
     "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
     "unittest.TestCase.fail = lambda *a, **k: None\ndef f():\n    return 1",
     "import unittest\nunittest.TestCase().assertEqual(f(), 2)", "AssertionError"),
    ("the program plants a fake unittest",
     "import sys, types\nfake = types.ModuleType('unittest')\nclass TC:\n"
     "    def assertEqual(self, a, b): pass\nfake.TestCase = TC\nsys.modules['unittest'] = fake\n"
     "def f():\n    return 1", "import unittest\nunittest.TestCase().assertEqual(f(), 2)",
     "AssertionError"),
    ("the program rewrites the reports through os.write",
     "import os\n_w = os.write\ndef write(fd, data):\n"
     "    return _w(fd, data.replace(b'\"passed\": false', b'\"passed\": true'))\n"
     "os.write = write\ndef f():\n    return 1", "assert f() == 2", "AssertionError"),
    ("the program rewrites the reports through json.dumps",
     "import json\n_d = json.dumps\n"
     "json.dumps = lambda o, *a, **k: _d({**o, 'passed': True} if o.get('event') == 'test' else o)\n"
     "def f():\n    return 1", "assert f() == 2", "AssertionError"),
    ("the program keeps a trace function on through the tests",
     "import linecache, sys\ndef jump(frame, event, arg):\n"
     "    if event == 'line' and frame.f_code.co_filename.endswith('tests.py'):\n"
     "        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()\n"
     "        if line.startswith('assert'):\n            try:\n"
     "                frame.f_lineno = frame.f_lineno + 1\n            except ValueError:\n"
     "                pass\n    return jump\nsys.settrace(jump)\nsys.settrace = lambda f: None\n"
     "def f():\n    return 1",
     "def check():\n    x = 0\n    assert f() == 2\n    x = 1\ncheck()", "AssertionError"),
    ("the program patches the rewriter (ast)", "import ast\n"
     "ast.NodeVisitor.visit = lambda s, n: n\nast.NodeTransformer.generic_visit = lambda s, n: n\n"
     + ANYTHING, "assert f() == 3", "refused"),
    ("the program swaps names in the tests' namespace", ANYTHING +
     "def g():\n    for k in list(globals()):\n        if 'synth' in k or 'guard' in k:\n"
     "            globals()[k] = lambda *a: True\n    return Anything()",
     "def t():\n    assert g() == 3\n    assert g() == 4\nt()", "refused"),
]


@pytest.mark.parametrize("name,program,tests,why", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_lying_objects_do_not_pass(name, program, tests, why):
    r = check_code(program, tests, mode="assert", **LIMITS)
    assert r.verdict in ("failed", "error"), r
    assert why in r.reason, r.reason


HONEST = [
    # (name, program, tests)
    ("named tuple vs tuples",
     "from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n"
     "    return P(1, 2)",
     "assert f() == (1, 2)\nassert (1, 2) == f()\nassert f() != (2, 1)\nassert f() in [(1, 2)]\n"
     "assert f() in {(1, 2)}\nassert [f()] == [(1, 2)]\nassert {f(): 'a'} == {(1, 2): 'a'}\n"
     "assert f() == P(1, 2)\nassert f().x == 1 and f()\nassert str(f()) == 'P(x=1, y=2)'\n"
     "assert f() + (3,) == (1, 2, 3)\nassert f() < (1, 3)"),
    ("typing.NamedTuple",
     "from typing import NamedTuple\nclass P(NamedTuple):\n    x: int\n    y: int\n"
     "def f():\n    return [P(0, 5), P(1, 2)]",
     "assert f() == [(0, 5), (1, 2)]\nassert sorted(f(), key=lambda p: p.y) == [(1, 2), (0, 5)]"),
    ("IntEnum vs int",
     "import enum\nclass C(enum.IntEnum):\n    A = 1\n    B = 2\ndef f():\n    return C.B",
     "assert f() == 2\nassert 2 == f()\nassert f() == C.B and f() is C.B\nassert f() in {1, 2}\n"
     "assert f() + 1 == 3\nassert 1 < f() <= 2\nassert abs(f() - 2) < 1e-9\nassert f()\n"
     "x = 0\nx += f()\nassert x == 2\nassert [f()] == [2]"),
    ("StrEnum vs str",
     "import enum\nclass S(enum.StrEnum):\n    A = 'a'\ndef f():\n    return S.A",
     "assert f() == 'a'\nassert f() in 'abc'\nassert f() + 'b' == 'ab'"),
    ("str subclass vs str",
     "class S(str):\n    pass\ndef f():\n    return S('abc')",
     "assert f() == 'abc'\nassert 'b' in f()\nassert f() in ['abc']\nassert f().upper() == 'ABC'\n"
     "assert f() + 'd' == 'abcd'\nassert f()\nassert 'x%sx' % f() == 'xabcx'"),
    ("OrderedDict, defaultdict, Counter vs dict",
     "from collections import OrderedDict, defaultdict, Counter\ndef f():\n"
     "    return OrderedDict(a=1, b=2)\ndef g():\n    d = defaultdict(list)\n"
     "    d['a'].append(1)\n    return d\ndef h():\n    return Counter('aab')",
     "assert f() == {'a': 1, 'b': 2}\nassert g() == {'a': [1]}\nassert h() == {'a': 2, 'b': 1}\n"
     "from collections import Counter\nassert h() == Counter(a=2, b=1)\nassert 'a' in h()\n"
     "assert h()['a'] == 2 and list(f()) == ['a', 'b']"),
    ("subclasses of dict, OrderedDict and Counter",
     "from collections import OrderedDict, Counter\nclass D(dict):\n    pass\n"
     "class O(OrderedDict):\n    pass\nclass K(Counter):\n    pass\n"
     "def f():\n    return D(a=[1, 2]), O(b=1), K('zz')",
     "d, o, k = f()\nassert d == {'a': [1, 2]} and 'a' in d and d\nassert o == {'b': 1}\n"
     "assert k == {'z': 2}\nassert list(o.items()) == [('b', 1)]"),
    ("float tolerance checks",
     "def f(x):\n    return x / 3",
     "import math\nassert abs(f(1) - 0.3333333) < 1e-6\nassert abs(0.3333333 - f(1)) < 1e-6\n"
     "assert math.isclose(f(3), 1.0)\nassert round(f(1), 3) == 0.333\nassert 0.3 < f(1) < 0.4\n"
     "from math import isclose\nassert isclose(f(6), 2.0, rel_tol=1e-9)"),
    ("nested lists and dicts of builtins",
     "def f():\n    return {'a': [1, (2, 3)], 'b': {4, 5}, 'c': None, 'd': [[]]}",
     "expected = dict(a=[1, (2, 3)], b={5, 4}, c=None, d=[[]])\nassert f() == expected\n"
     "assert f()['a'][1] == (2, 3)\nassert 4 in f()['b'] and (2, 3) in f()['a']\n"
     "assert f() != {}\nassert 'a' in f() and 'z' not in f()"),
    ("in checks",
     "def f():\n    return [1, 2, 3]\ndef g():\n    return (i * i for i in range(5))",
     "assert 2 in f()\nassert 5 not in f()\nassert 9 in g()\nassert 7 not in g()\n"
     "assert f()[0] in {1: 'x'}\nassert 'ab' in 'cabd'\nassert 3 in range(5)"),
    ("truthiness of honest values",
     "def f(x):\n    return x > 2\ndef g():\n    return []\ndef h():\n    return 'x'",
     "assert f(3)\nassert not f(1)\nassert not g()\nassert h() and f(3)\nassert g() or h()\n"
     "assert all(f(x) for x in (3, 4))\nassert any([f(1), f(5)])\nassert bool(h())\n"
     "if not f(5):\n    raise AssertionError"),
    ("helpers the tests define",
     "def add(a, b):\n    return a + b",
     "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
     "    for a, b, e in [(1, 1, 2), (2, 3, 5)]:\n        if candidate(a, b) != e:\n"
     "            raise AssertionError((a, b))\ncheck(add)\n"
     "same = lambda x, y: x == y\nassert same(add(1, 1), 2)"),
    ("unittest assertEqual and friends",
     "def add(a, b):\n    return a + b",
     "import unittest\nclass T(unittest.TestCase):\n    def test(self):\n"
     "        self.assertEqual(add(1, 2), 3)\n        self.assertTrue(add(1, 1) == 2)\n"
     "        self.assertIn(add(1, 1), [2, 3])\n        self.assertAlmostEqual(add(0.1, 0.2), 0.3)\n"
     "        self.assertListEqual([add(1, 1)], [2])\n        self.assertNotEqual(add(1, 1), 3)\n"
     "        self.assertCountEqual([add(1, 1), 1], [1, 2])\nT('test').test()\n"
     "unittest.TestCase().assertEqual(add(2, 2), 4)"),
    ("unittest with builtin subclasses",
     "from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n"
     "    return P(1, 2)",
     "import unittest\nt = unittest.TestCase()\nt.assertEqual(f(), (1, 2))\n"
     "t.assertIn(f(), [(1, 2)])\nt.assertTrue(f())"),
    ("dataclasses compared with the same class",
     "from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int\n    y: int\n"
     "def mid(a, b):\n    return Point((a.x + b.x) // 2, (a.y + b.y) // 2)",
     "assert mid(Point(0, 0), Point(2, 4)) == Point(1, 2)\n"
     "assert mid(Point(0, 0), Point(2, 4)) != Point(1, 3)\n"
     "assert [mid(Point(0, 0), Point(2, 2))] == [Point(1, 1)]\n"
     "assert {'p': Point(0, 0)} == {'p': Point(0, 0)}\n"
     "assert Point(1, 1) in [Point(0, 0), Point(1, 1)]\n"
     "assert mid(Point(0, 0), Point(0, 0)) is not None\n"
     "assert mid(Point(0, 0), Point(0, 0)) != None"),
    ("a class of the program's own (operators)",
     "class V:\n    def __init__(s, x, y):\n        s.x, s.y = x, y\n"
     "    def __add__(s, o):\n        return V(s.x + o.x, s.y + o.y)\n"
     "    def __eq__(s, o):\n        return isinstance(o, V) and (s.x, s.y) == (o.x, o.y)\n"
     "    def __abs__(s):\n        return (s.x ** 2 + s.y ** 2) ** 0.5",
     "assert V(1, 2) + V(3, 4) == V(4, 6)\nassert abs(V(3, 4)) == 5.0\nassert V(1, 1) != V(1, 2)"),
    ("linked-list and tree nodes",
     "class Node:\n    def __init__(self, v, nxt=None):\n        self.val, self.next = v, nxt\n"
     "def rev(h):\n    p = None\n    while h:\n        h.next, p, h = p, h, h.next\n    return p",
     "def to_list(n):\n    out = []\n    while n is not None:\n        out.append(n.val)\n"
     "        n = n.next\n    return out\nassert to_list(rev(Node(1, Node(2, Node(3))))) == [3, 2, 1]\n"
     "assert rev(None) is None and rev(None) == None\nhead = Node(1)\nassert rev(head) == head\n"
     "assert head in [Node(0), head] and rev(head)\nassert rev(head) != 1\n"
     "from collections import deque\nq = deque([Node(1), Node(2)])\nwhile q:\n    n = q.popleft()\n"
     "assert n.val == 2"),
    ("chained comparisons and :=",
     "def f(x):\n    return x * 2",
     "assert 0 < f(1) < 3 <= f(2)\nassert [y for y in range(5) if 0 < f(y) < 5] == [1, 2]\n"
     "class K:\n    ok = [y for y in range(3) if 0 <= f(y) < 3]\nassert K.ok == [0, 1]\n"
     "assert (r := f(2)) == 4 and r > 3"),
    ("augmented assignment to names, attributes, items and slices",
     "def f(x):\n    return x",
     "class O:\n    pass\no = O()\no.n = 1\no.n += f(2)\nassert o.n == 3\nd = {'k': 1}\n"
     "d['k'] *= f(5)\nassert d['k'] == 5\nl = [1, 2, 3]\nl[1:2] += [f(9)]\nassert l == [1, 2, 9, 3]\n"
     "s = 'a'\ns += 'b' * f(2)\nassert s == 'abb'"),
    ("a program that defines helpers named like builtins",
     "def max(a, b):\n    return a if a > b else b\nlen = None\ndef f(xs):\n"
     "    return sorted(xs)[-1]",
     "assert f([3, 1, 2]) == max([3, 1, 2])\nassert len([1]) == 1"),
    ("Fraction and Decimal",
     "from fractions import Fraction\nfrom decimal import Decimal\ndef f():\n"
     "    return Fraction(1, 2), Decimal('1.5')",
     "from fractions import Fraction\nfrom decimal import Decimal\nfr, de = f()\n"
     "assert fr == 0.5 and fr + 1 == Fraction(3, 2)\nassert de == Decimal('1.5') and de > 1"),
    ("sets and set arithmetic",
     "def f():\n    return {1, 2, 3}",
     "assert f() - {1} == {2, 3}\nassert f() & {2} == {2}\nassert f() <= {1, 2, 3, 4}"),
    ("from math import *",
     "def f():\n    return 8.0",
     "from math import *\nassert pow(2, 3) == f()\nassert sqrt(f() * 2) == 4"),
    ("program objects without methods of their own, as Python treats them",
     "class Token:\n    pass\ndef f():\n    return Token()",
     "t = f()\nassert t and f()\nassert t != 3 and not (t == [1])\nassert t in {t: 1} and t in {t}\n"
     "assert f() not in {1, 2} and t in [0, t] and 2 in [t, 2]"),
    ("unittest messages kept",
     "def f():\n    return []",
     "import unittest\ntry:\n    unittest.TestCase().assertTrue(f())\nexcept AssertionError as e:\n"
     "    assert str(e) == '[] is not true', str(e)\ntry:\n"
     "    unittest.TestCase().assertEqual(f(), [1])\nexcept AssertionError as e:\n"
     "    assert str(e).startswith('Lists differ'), str(e)"),
    ("a linked list the tests define, with a recursive __eq__",
     "def build(n):\n    head = None\n    for i in range(n):\n        head = ListNode(i, head)\n"
     "    return head",
     "class ListNode:\n    def __init__(self, val, nxt=None):\n        self.val, self.next = val, nxt\n"
     "    def __eq__(self, o):\n        return o is not None and self.val == o.val and self.next == o.next\n"
     "a, b = build(250), build(250)\nassert a == b and a != build(3)\nn, count = a, 0\n"
     "while n != None:\n    count, n = count + 1, n.next\nassert count == 250"),
    ("a large output",
     "def f(n):\n    return [(i, str(i)) for i in range(n)]",
     "assert f(200000) == [(i, str(i)) for i in range(200000)]\nassert f(10)[-1] == (9, '9')"),
]


@pytest.mark.parametrize("name,program,tests", HONEST, ids=[h[0] for h in HONEST])
def test_honest_programs_pass(name, program, tests):
    r = check_code(program, tests, mode="assert", **LIMITS)
    assert r.verdict == "passed", r


def test_libraries_the_tests_import_are_trusted_unless_the_program_changes_them():
    pytest.importorskip("pytest")
    tests = "from pytest import approx\nassert f() == approx(0.3)\nassert f() != approx(0.4)\n"
    honest = check_code("def f():\n    return 0.1 + 0.2\n", tests, mode="assert", **LIMITS)
    assert honest.verdict == "passed", honest
    patched = check_code("import pytest\ntype(pytest.approx(1.0)).__eq__ = lambda s, o: True\n"
                         "type(pytest.approx(1.0)).__ne__ = lambda s, o: False\n"
                         "def f():\n    return 7.0\n", tests, mode="assert", **LIMITS)
    assert patched.verdict == "failed" and "refused" in patched.reason, patched


def test_numpy_results_compare_as_numpy_does():
    np = pytest.importorskip("numpy")
    assert np
    program = "import numpy as np\ndef f():\n    return np.array([1.0, 2.0])"
    tests = ("import numpy as np\nassert (f() == [1, 2]).all()\nassert np.allclose(f(), [1, 2])\n"
             "assert list(f()) == [1.0, 2.0]\nassert f()[0] == 1\nassert abs(f()[1] - 2) < 1e-9")
    r = check_code(program, tests, mode="assert", **LIMITS)
    assert r.verdict == "passed", r


# --------------------------------------------------------------------------- exactly Python


EXACT = [
    "x = float('nan')\nresult = (x == x, [x] == [x], x in [x], float('nan') == float('nan'))",
    "result = 1 < 'a'",
    "result = [1, 2] < [1, 3] <= [1, 3] != [4]",
    "log = []\ndef v(x):\n    log.append(x)\n    return x\nresult = (v(1) < v(0) < v(5), log)",
    "log = []\ndef v(x):\n    log.append(x)\n    return x\nresult = (v(0) < v(1) < v(5) > v(2), log)",
    "a, b = 1, 1.0\nresult = (1 == 1.0 == True, None == 0, 0 == False, a is b, a is not b)",
    "result = ({1: 2} == {1: 2.0}, (1, 2) in {(1, 2)}, 'a' in 'abc', b'a' in b'abc', 3 in range(5))",
    "result = ([] or 0, 0 and 1, 'x' or None, not [], [1] and [2], None or [] or 'z')",
    "a = [1]\nb = a\na += [2]\nresult = (a is b, b)",
    "from fractions import Fraction\nfrom decimal import Decimal\n"
    "result = (Fraction(1, 2) == 0.5, Decimal('0.5') == 0.5, Fraction(1, 3) < 0.5)",
    "result = ({1} <= {1, 2}, {1} == frozenset({1}), {'a': 1}.keys() == {'a'},\n"
    "          {'a': 1}.items() <= {('a', 1), ('b', 2)})",
    "result = ('%s-%d' % ('a', 3), [1] * 2, (1,) + (2,), 7 // 2, -7 % 3, 2 ** -1, 1 << 3,\n"
    "          6 & 3 | 8 ^ 1, 7 / 2, 3 @ 4 if False else 0)",
    "result = [x for x in range(10) if 2 < x < 5 or x == 9]",
    "class C:\n    vals = [y for y in range(5) if 1 < y < 4]\nresult = C.vals",
    "import math\nresult = (math.isclose(0.1 + 0.2, 0.3), abs(0.1 + 0.2 - 0.3) < 1e-9)",
    "import operator\nresult = (operator.eq(1, 1), list(map(operator.add, [1, 2], [3, 4])),\n"
    "          operator.contains([1], 1), operator.countOf([1, 1, 2], 1), operator.not_(0))",
    "result = 1 if 2 > 3 else (4 if 'a' else 5)",
    "def g():\n    yield 1\n    yield 2\nresult = (2 in g(), 3 in g())",
    "result = ([1, 2] == (1, 2), {'a': [1, {2}]} == {'a': [1, {2}]}, [] == {})",
    "x = 5\nx -= 2\nx *= 3\nx //= 2\nx **= 2\nx %= 7\nx <<= 2\nx |= 1\nresult = x",
    "d = {'k': [1]}\nd['k'] += [2]\nx = [1, 2, 3]\nx[0:2] += [9]\nresult = (d, x)",
    "import unittest\nt = unittest.TestCase()\nt.assertEqual([1, 2], [1, 2])\ntry:\n"
    "    t.assertEqual([1, 2], [1, 3])\nexcept AssertionError as e:\n    result = str(e)",
    "import unittest\ntry:\n    unittest.TestCase().assertAlmostEqual(1.0, 1.1)\n"
    "except AssertionError as e:\n    result = str(e)",
    "result = (all([1, 2]), any([]), bool([0]), all(x > 0 for x in [1, -1]))",
    "result = sorted([3, 1, 2]) == [1, 2, 3] != [3]",
    "result = [(y, z) for y in range(3) if 0 <= (z := y * 2) < 4]",
    "class E:\n    def __eq__(self, o):\n        raise KeyError('boom')\nresult = E() == 1",
    "class V:\n    def __init__(self, x):\n        self.x = x\n"
    "    def __eq__(self, o):\n        return isinstance(o, V) and o.x == self.x\n"
    "    def __lt__(self, o):\n        return self.x < o.x\n"
    "result = (V(1) == V(1), V(1) < V(2), sorted([V(2), V(1)])[0].x, V(1) in [V(1)], V(1) != 1)",
    "class B:\n    def __bool__(self):\n        return False\nresult = (not B(), B() or 'x', bool(B()))",
    "import collections\nresult = (collections.Counter('ab') == {'a': 1, 'b': 1},\n"
    "          collections.OrderedDict(a=1) == collections.OrderedDict(a=1),\n"
    "          collections.deque([1]) == collections.deque([1]), collections.deque([1]) == [1])",
    "def f(a, b=1 < 2, *, c=[3 in (3,)]):\n    return a, b, c\nresult = f(0)",
    "result = f'{1 < 2} {[x for x in (1, 2) if x > 1]!r} {3 - 1 == 2 = }'",
    "import re\nresult = bool(re.match(r'a+', 'aa')) and re.match('b', 'a') is None",
    "d = {'z': 0}\nresult = {**d, 1 == 1: 'x', 'k': 2 < 3}",
]


def _outcome(source: str, rewritten: bool):
    tree = ast.parse(source)
    ns: dict = {"__name__": "__main__"}
    try:
        if rewritten:
            for stmt in guard.rewrite_tests(tree).body:
                exec(guard.compile_statement(stmt, "tests.py"), ns)
        else:
            exec(compile(tree, "tests.py", "exec"), ns)
    except Exception as e:
        return ("raised", type(e).__name__, str(e))
    return ("result", repr(ns.get("result")))


@pytest.mark.parametrize("source", EXACT)
def test_comparisons_among_test_values_are_exactly_pythons(source):
    assert _outcome(source, rewritten=True) == _outcome(source, rewritten=False)


def test_the_whole_test_module_is_rewritten():
    source = """
import unittest
def check(a, b=1 < 2):
    assert a == b and not (a != b) or a in [b]
    if a > b:
        x = a - b
        x += 1
    while a < b:
        break
    return [y for y in (a,) if y >= b], (lambda: a <= b)(), a if a < b else b
class T(unittest.TestCase):
    def test(self):
        self.assertEqual(check(1, 1)[0], [1])
        assert 0 < 1 < 2
"""
    tree = guard.rewrite_tests(ast.parse(source))
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.BinOp, ast.AugAssign)), ast.unparse(node)
        if isinstance(node, ast.Compare):
            assert all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops), ast.unparse(node)
        if isinstance(node, (ast.Assert, ast.If, ast.While, ast.IfExp)):
            assert isinstance(node.test, (ast.Call, ast.BoolOp, ast.UnaryOp, ast.Constant)), \
                ast.unparse(node.test)
    ns: dict = {}
    for stmt in tree.body:
        exec(guard.compile_statement(stmt, "tests.py"), ns)
    ns["T"]("test").test()


def test_a_tests_class_statement_is_trusted_until_the_program_changes_it():
    ns: dict = {}
    source = "class Approx:\n    def __eq__(self, o):\n        return abs(o - 1.0) < 0.1\n"
    for stmt in guard.rewrite_tests(ast.parse(source)).body:
        exec(guard.compile_statement(stmt, "tests.py"), ns)
    approx = ns["Approx"]()
    assert guard.eq(approx, 1.05) is True
    ns["Approx"].__eq__ = lambda s, o: True
    with pytest.raises(AssertionError, match="program-defined type 'Approx' refused"):
        guard.eq(approx, 5)


def test_statements_are_named_by_their_source():
    r = check_code("def add(a, b):\n    return a + b\n",
                   "assert add('é', 'ü') == 'éü'\nassert add(\n    1, 2) == 4  # two lines\n",
                   mode="assert", **LIMITS)
    assert [t.name for t in r.tests] == ["line 1: assert add('é', 'ü') == 'éü'",
                                         "line 2: assert add( 1, 2) == 4"]
