"""Parsing: a normalized answer (LaTeX or SymPy syntax) into a small tree of tuples.
Our own tokenizer and recursive-descent parser, never `eval`; length and depth are capped."""

from __future__ import annotations

import re
from functools import lru_cache

from .extract import MAX_ANSWER_CHARS, _match_brace
from .names import _CONST_WORDS, _FUNC_WORDS, _GREEK, _split_word

MAX_DEPTH = 60  # bracket nesting the parser accepts
MAX_TREE_DEPTH = 120  # nesting of a parsed answer (chains like 1/2/3/..., - - 1, 2^2^2 count)


class _ParseError(Exception):
    pass


# ---------------------------------------------------------------------------- tokenizer

_FUNC_ALIASES = {
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsec": "asec", "arccsc": "acsc",
    "arccot": "acot", "arsinh": "asinh", "arcsinh": "asinh", "arcosh": "acosh",
    "arccosh": "acosh", "artanh": "atanh", "arctanh": "atanh", "ln": "log", "Abs": "abs",
    "ceil": "ceiling", "sgn": "sign", "max": "Max", "min": "Min",
}
_INVERTIBLE = {"sin", "cos", "tan", "sec", "csc", "cot", "sinh", "cosh", "tanh"}
_CMD_OPS = {
    "cdot": "*", "times": "*", "ast": "*", "div": "/", "le": "<=", "leq": "<=",
    "leqslant": "<=", "ge": ">=", "geq": ">=", "geqslant": ">=", "lt": "<", "gt": ">",
    "ne": "!=", "neq": "!=", "approx": "=", "cup": "cup", "in": "in", "pm": "pm", "mp": "pm",
    "vert": "|", "lvert": "|", "rvert": "|", "mid": "|", "Vert": "|",
}
_CMD_SKIP = {"left", "right", "quad", "qquad", "displaystyle", "textstyle", "limits", "nolimits"}
_CMD_CONSTS = {"pi": "pi", "infty": "oo", "infinity": "oo", "imath": "I"}
_ATOM_CMDS = ({"frac", "sqrt", "binom", "lfloor", "lceil", "emptyset", "varnothing"}
              | _FUNC_WORDS | set(_CMD_CONSTS) | _GREEK)
_MATRIX_ENVS = {"pmatrix", "bmatrix", "Bmatrix", "matrix", "array", "smallmatrix"}
_NUM_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_DIGITS = frozenset("0123456789")  # str.isdigit() is also true for "\u00b9", "\u0663", ...
_REL_OPS = {"=", "<", ">", "<=", ">=", "!=", "in"}


def _braced(s: str, i: int) -> tuple[str, int]:
    """Content of the brace group starting at s[i] == "{" and the index after it."""
    end = _match_brace(s, i)
    if end < 0:
        raise _ParseError("unbalanced braces")
    return s[i + 1 : end], end + 1


def _tokenize(s: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c.isspace():
            i += 1
        elif c in _DIGITS or (c == "." and i + 1 < n and s[i + 1] in _DIGITS):
            m = _NUM_RE.match(s, i)
            toks.append(("num", m.group()))
            i = m.end()
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and s[j].isascii() and s[j].isalpha():
                j += 1
            toks.extend(("name", w) for w in _split_word(s[i:j]))
            i = j
        elif c == "\\":
            m = re.compile(r"\\([A-Za-z]+)").match(s, i)
            if m:
                name, i = m.group(1), m.end()
                if name in ("begin", "end"):
                    while i < n and s[i] == " ":
                        i += 1
                    if i >= n or s[i] != "{":
                        raise _ParseError(f"\\{name} without environment")
                    env, i = _braced(s, i)
                    toks.append((name, env.strip()))
                    if name == "begin" and env.strip() == "array":
                        while i < n and s[i] == " ":
                            i += 1
                        if i < n and s[i] == "{":
                            _, i = _braced(s, i)
                elif name == "mathbb":
                    while i < n and s[i] == " ":
                        i += 1
                    arg, i = _braced(s, i) if i < n and s[i] == "{" else (s[i : i + 1], i + 1)
                    if arg.strip() != "R":
                        raise _ParseError(f"unsupported \\mathbb{{{arg}}}")
                    toks.append(("const", "reals"))
                elif name in _CMD_SKIP:
                    pass
                elif name in _CMD_OPS:
                    toks.append(("op", _CMD_OPS[name]))
                else:
                    toks.append(("cmd", name))
                continue
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt == "{":
                toks.append(("lset", "\\{"))
            elif nxt == "}":
                toks.append(("rset", "\\}"))
            elif nxt == "\\":
                toks.append(("rowsep", "\\\\"))
            elif nxt == "|":
                toks.append(("op", "|"))
            elif nxt == "%":
                toks.append(("op", "%"))
            elif nxt not in ",;:! ":
                raise _ParseError(f"unexpected \\{nxt}")
            i += 2
        elif c == "_":
            i += 1
            while i < n and s[i] == " ":
                i += 1
            if i < n and s[i] == "{":
                raw, i = _braced(s, i)
            elif i < n and s[i] == "\\":
                m = re.compile(r"\\[A-Za-z]+").match(s, i)
                raw = m.group() if m else s[i : i + 2]
                i += len(raw)
            elif i < n:
                raw, i = s[i], i + 1
            else:
                raise _ParseError("dangling _")
            toks.append(("sub", raw))
        elif s.startswith("**", i):
            toks.append(("op", "^"))
            i += 2
        elif s[i : i + 2] in ("<=", ">=", "=="):
            toks.append(("op", "=" if s[i : i + 2] == "==" else s[i : i + 2]))
            i += 2
        elif c in "+-*/^()[],;=<>!|%":
            toks.append(("op", c))
            i += 1
        elif c == "{":
            toks.append(("lb", "{"))
            i += 1
        elif c == "}":
            toks.append(("rb", "}"))
            i += 1
        elif c == "&":
            toks.append(("colsep", "&"))
            i += 1
        else:
            raise _ParseError(f"unexpected character {c!r}")
    return toks


# ------------------------------------------------------------------------------- parser
# Nodes are hashable tuples: ("num", "2.5"), ("sym", "x_1"), ("const", "pi"|"E"|"I"|"oo"|
# "reals"), ("add", terms), ("mul", factors), ("neg", x), ("div", a, b), ("pow", a, b),
# ("fact", x), ("pct", x), ("func", name, args), ("pm", a|None, b), ("rel", op, a, b),
# ("chain", items, ops), ("tuple"|"bracket"|"set"|"list", items),
# ("interval", lo, hi, lopen, ropen), ("union", parts), ("matrix", rows).


def _mul(a: tuple, b: tuple) -> tuple:
    return ("mul", a[1] + (b,)) if a[0] == "mul" else ("mul", (a, b))


def _is_int_num(node: tuple) -> bool:
    return node[0] == "num" and node[1].isdigit()


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]):
        self.toks, self.i, self.depth, self.bars = toks, 0, 0, 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eof", "")

    def take(self) -> tuple[str, str]:
        t = self.peek()
        self.i += 1
        return t

    def at(self, kind: str, val: str | None = None) -> bool:
        t = self.peek()
        return t[0] == kind and (val is None or t[1] == val)

    def eat(self, kind: str, val: str | None = None) -> bool:
        if self.at(kind, val):
            self.i += 1
            return True
        return False

    def need(self, kind: str, val: str | None = None) -> None:
        if not self.eat(kind, val):
            raise _ParseError(f"expected {val or kind}, got {self.peek()[1] or 'end'}")

    def starts_atom(self, t: tuple[str, str]) -> bool:
        kind, val = t
        if kind in ("num", "name", "lb", "lset", "begin", "const"):
            return True
        if kind == "cmd":
            return val in _ATOM_CMDS
        return t == ("op", "(") or (t == ("op", "|") and self.bars == 0)

    def is_func(self, t: tuple[str, str]) -> bool:
        return t[0] in ("name", "cmd") and t[1] in _FUNC_WORDS

    # grammar, loosest first
    def top(self) -> tuple:
        if not self.toks:
            raise _ParseError("empty")
        items = self.seq()
        if not self.at("eof"):
            raise _ParseError(f"unexpected {self.peek()[1]!r}")
        return items[0] if len(items) == 1 else ("list", tuple(items))

    def seq(self) -> list[tuple]:
        items = [self.rel()]
        while self.eat("op", ",") or self.eat("op", ";"):
            items.append(self.rel())
        return items

    def rel(self) -> tuple:
        items, ops = [self.union()], []
        while self.peek()[0] == "op" and self.peek()[1] in _REL_OPS:
            ops.append(self.take()[1])
            items.append(self.union())
        if not ops:
            return items[0]
        if len(ops) == 1:
            return ("rel", ops[0], items[0], items[1])
        return ("chain", tuple(items), tuple(ops))

    def union(self) -> tuple:
        parts = [self.additive()]
        while self.eat("op", "cup"):
            parts.append(self.additive())
        return parts[0] if len(parts) == 1 else ("union", tuple(parts))

    def additive(self) -> tuple:
        terms = [self.signed()]
        while True:
            if self.eat("op", "+"):
                terms.append(self.signed())
            elif self.eat("op", "-"):
                terms.append(("neg", self.signed()))
            elif self.eat("op", "pm"):
                left = terms[0] if len(terms) == 1 else ("add", tuple(terms))
                terms = [("pm", left, self.signed())]
            else:
                break
        if len(terms) == 1:
            return terms[0]
        flat: list[tuple] = []
        for t in terms:
            flat.extend(t[1] if t[0] == "add" else (t,))
        return ("add", tuple(flat))

    def signed(self) -> tuple:
        if self.eat("op", "-"):
            return ("neg", self.signed())
        if self.eat("op", "+"):
            return self.signed()
        if self.eat("op", "pm"):
            return ("pm", None, self.signed())
        return self.term()

    def term(self) -> tuple:
        first = cur = self.power()
        while True:
            t = self.peek()
            if t == ("op", "*"):
                self.i += 1
                cur = _mul(cur, self.signed_power())
            elif t == ("op", "/"):
                self.i += 1
                cur = ("div", cur, self.signed_power())
            elif self.starts_atom(t):
                if t[0] == "num" and self.toks[self.i - 1][0] == "num":
                    raise _ParseError("two numbers in a row")
                nxt = self.power()
                if (cur is first and _is_int_num(cur) and t == ("cmd", "frac") and nxt[0] == "div"
                        and _is_int_num(nxt[1]) and _is_int_num(nxt[2])):
                    cur = ("add", (cur, nxt))  # mixed number 3\frac{1}{2}
                else:
                    cur = _mul(cur, nxt)
            else:
                return cur

    def signed_power(self) -> tuple:
        if self.eat("op", "-"):
            return ("neg", self.signed_power())
        if self.eat("op", "+"):
            return self.signed_power()
        return self.power()

    def power(self) -> tuple:
        node = self.postfix()
        if self.eat("op", "^"):
            node = ("pow", node, self.exponent())
            node = self.postfix_ops(node)
        return node

    def exponent(self) -> tuple:
        if self.eat("op", "-"):
            return ("neg", self.exponent())
        if self.eat("op", "+"):
            return self.exponent()
        node = self.postfix()
        if self.eat("op", "^"):
            return ("pow", node, self.exponent())
        return node

    def postfix(self) -> tuple:
        return self.postfix_ops(self.atom())

    def postfix_ops(self, node: tuple) -> tuple:
        while True:
            if self.eat("op", "!"):
                node = ("fact", node)
            elif self.eat("op", "%"):
                node = ("pct", node)
            else:
                return node

    def atom(self) -> tuple:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _ParseError("nested too deeply")
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self) -> tuple:
        kind, val = self.take()
        if kind == "num":
            return ("num", val)
        if kind == "name":
            return self.name(val)
        if kind == "const":
            return ("const", val)
        if kind == "cmd":
            return self.command(val)
        if kind == "lb":
            return self.brace_body()
        if kind == "lset":
            if self.eat("rset") or self.eat("rb"):
                return ("set", ())
            items = self.seq()
            if not (self.eat("rset") or self.eat("rb")):
                raise _ParseError("unclosed \\{")
            return ("set", tuple(items))
        if kind == "begin":
            return self.matrix(val)
        if kind == "op" and val in "([":
            return self.bracketed(val)
        if kind == "op" and val == "|":
            self.bars += 1
            x = self.additive()
            self.need("op", "|")
            self.bars -= 1
            return ("func", "abs", (x,))
        raise _ParseError(f"unexpected {val or kind!r}")

    def bracketed(self, open_: str) -> tuple:
        if self.eat("op", ")" if open_ == "(" else "]"):
            return ("tuple" if open_ == "(" else "bracket", ())
        items = self.seq()
        close = self.take()
        if close not in (("op", ")"), ("op", "]")):
            raise _ParseError(f"unclosed {open_}")
        same = (open_ == "(") == (close[1] == ")")
        if len(items) == 1 and same:
            return items[0]
        if same:
            return ("tuple" if open_ == "(" else "bracket", tuple(items))
        if len(items) != 2:
            raise _ParseError("half-open interval needs two endpoints")
        return ("interval", items[0], items[1], open_ == "(", close[1] == ")")

    def brace_body(self) -> tuple:
        if self.eat("rb"):
            return ("set", ())
        items = [self.rel()]
        if self.eat("cmd", "choose"):
            k = self.rel()
            self.need("rb")
            return ("func", "binomial", (items[0], k))
        while self.eat("op", ",") or self.eat("op", ";"):
            items.append(self.rel())
        self.need("rb")
        return items[0] if len(items) == 1 else ("set", tuple(items))

    def arg(self) -> tuple:
        """One macro argument: {group}, one digit of a number, or one atom."""
        if self.eat("lb"):
            return self.brace_body()
        t = self.peek()
        if t[0] == "num" and len(t[1]) > 1 and t[1][0] in _DIGITS:  # \frac12: the first
            # digit; the rest is tokenized again, as it need not be a number ("1e5" leaves "e5")
            self.toks[self.i : self.i + 1] = _tokenize(t[1][1:])
            return ("num", t[1][0])
        return self.atom()

    def name(self, val: str) -> tuple:
        if val in _FUNC_WORDS:
            return self.func_app(val)
        if self.at("sub"):
            sub = re.sub(r"[\s{}\\]", "", self.take()[1])
            return ("sym", f"{val}_{sub}")
        if val in _CONST_WORDS:
            return ("const", _CONST_WORDS[val])
        return ("sym", val)

    def command(self, val: str) -> tuple:
        if val == "frac":
            return ("div", self.arg(), self.arg())
        if val == "sqrt":
            if self.eat("op", "["):
                n = self.additive()
                self.need("op", "]")
                return ("func", "root", (self.arg(), n))
            return ("func", "sqrt", (self.arg(),))
        if val == "binom":
            return ("func", "binomial", (self.arg(), self.arg()))
        if val in _FUNC_WORDS:
            return self.func_app(val)
        if val in _CMD_CONSTS:
            return ("const", _CMD_CONSTS[val])
        if val in _GREEK:
            return self.name(val)
        if val in ("lfloor", "lceil"):
            x = self.additive()
            self.need("cmd", "rfloor" if val == "lfloor" else "rceil")
            return ("func", "floor" if val == "lfloor" else "ceiling", (x,))
        if val in ("emptyset", "varnothing"):
            return ("set", ())
        raise _ParseError(f"unsupported \\{val}")

    def func_app(self, name: str) -> tuple:
        base = power = None
        for _ in range(2):
            if name in ("log", "lg") and self.at("sub"):
                base = _parse_text(self.take()[1])
            elif self.eat("op", "^"):
                power = self.exponent()
        if self.eat("op", "("):
            args = tuple(self.seq())
            self.need("op", ")")
        elif self.eat("lb"):
            args = (self.brace_body(),)
        else:
            factors = [self.signed_power()]
            while self.starts_atom(self.peek()) and not self.is_func(self.peek()):
                factors.append(self.power())
            args = (factors[0] if len(factors) == 1 else ("mul", tuple(factors)),)
        name = _FUNC_ALIASES.get(name, name)
        if name == "lg":
            name, base = "log", base or ("num", "10")
        if name == "cbrt":
            name, args = "root", args + (("num", "3"),)
        if power == ("neg", ("num", "1")) and name in _INVERTIBLE:
            name, power = "a" + name, None
        node = ("func", name, args + ((base,) if base is not None else ()))
        return ("pow", node, power) if power is not None else node

    def matrix(self, env: str) -> tuple:
        if env.rstrip("*") not in _MATRIX_ENVS:
            raise _ParseError(f"unsupported environment {env}")
        rows, row = [], [self.rel()]
        while True:
            if self.eat("colsep"):
                row.append(self.rel())
            elif self.eat("rowsep"):
                rows.append(tuple(row))
                if self.at("end"):
                    row = []
                    continue
                row = [self.rel()]
            elif self.eat("end"):
                if row:
                    rows.append(tuple(row))
                break
            else:
                raise _ParseError("unclosed matrix")
        if len({len(r) for r in rows}) != 1:
            raise _ParseError("ragged matrix")
        return ("matrix", tuple(rows))


def _parse_text(s: str) -> tuple:
    return _Parser(_tokenize(s)).top()


@lru_cache(maxsize=8192)
def _parse_cached(s: str) -> tuple[bool, object]:
    """(True, tree) or (False, reason). Parsing is bounded: length and depth are capped."""
    if len(s) > MAX_ANSWER_CHARS:
        return False, "answer too long"
    try:
        tree = _parse_text(s)
    except _ParseError as e:
        return False, str(e)
    except RecursionError:
        return False, "nested too deeply"
    if _tree_depth(tree) > MAX_TREE_DEPTH:
        return False, "nested too deeply"
    return True, tree


def _tree_depth(tree: tuple) -> int:
    """Nesting depth of a parse tree (iterative: the tree may be deeper than the stack)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((c, d + 1) for c in node if isinstance(c, tuple))
    return deepest
