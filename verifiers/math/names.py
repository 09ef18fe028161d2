"""The names the answer grammar knows: functions, constants, Greek letters.

They sit at the bottom because three layers read them: extraction (is this prose?),
normalization (is this word a unit?) and the parser (how a run of letters splits).
"""

from __future__ import annotations

_FUNC_WORDS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "asin", "acos", "atan", "asec", "acsc", "acot",
    "arcsin", "arccos", "arctan", "arcsec", "arccsc", "arccot", "sinh", "cosh", "tanh",
    "sech", "csch", "coth", "asinh", "acosh", "atanh", "arsinh", "arcosh", "artanh",
    "arcsinh", "arccosh", "arctanh", "log", "ln", "lg", "exp", "sqrt", "cbrt", "abs", "Abs",
    "floor", "ceiling", "ceil", "factorial", "binomial", "root", "sign", "sgn", "gcd", "lcm",
    "max", "min", "Max", "Min",
}
_CONST_WORDS = {"pi": "pi", "oo": "oo", "inf": "oo", "infty": "oo", "infinity": "oo",
                "e": "E", "E": "E", "i": "I", "I": "I"}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma",
    "Upsilon", "Phi", "Psi", "Omega", "ell",
}
_PLAIN_NAMES = _FUNC_WORDS | set(_CONST_WORDS) | {g for g in _GREEK if len(g) >= 3}
_PLAIN_BY_LEN = sorted((n for n in _PLAIN_NAMES if len(n) > 1), key=len, reverse=True)


def _split_word(w: str) -> list[str]:
    """A run of letters as known names (longest first) and single letters: "xsin" -> x, sin."""
    out, i = [], 0
    while i < len(w):
        for name in _PLAIN_BY_LEN:
            if w.startswith(name, i):
                out.append(name)
                i += len(name)
                break
        else:
            out.append(w[i])
            i += 1
    return out
