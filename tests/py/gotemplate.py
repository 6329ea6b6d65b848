"""A small renderer for the subset of Go text/template + Helm (sprig) functions that
helm/watchtower/templates uses. No helm binary exists on the test machines; this renders the
chart so the tests can parse the manifests and check what they contain.

Supported: text with {{ }} actions and {{- / -}} whitespace trimming; comments {{/* */}};
define / include; if / else if / else / end; with / else / end; range (over lists and maps,
with `$k, $v :=`); pipelines with `|`; parenthesised sub-expressions; field access on `.`, `$`
and variables; string/number/bool literals; functions: include, toYaml, nindent, indent, quote,
default, trunc, trimSuffix, printf (%s %d %v), sha256sum, and, or, not, eq, ne, lt, print,
required, toString, dig, splitList, last, first, list, has, regexMatch, atoi, add, fail, dict,
hasKey, index, merge, fromYaml, lower, trim, contains, hasPrefix. Anything else raises
TemplateError, so an unsupported construct fails the test instead of rendering wrongly.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml


class TemplateError(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _lex(src: str):
    """-> list of ("text", s) / ("action", s) with trim markers applied."""
    out = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        out.append(["text", text])
        out.append(["action", m.group(2).strip(), bool(m.group(3))])
        pos = m.end()
    out.append(["text", src[pos:]])
    # right-trim: strip leading whitespace of the following text
    for i, tok in enumerate(out):
        if tok[0] == "action" and tok[2] and i + 1 < len(out):
            out[i + 1][1] = out[i + 1][1].lstrip()
    return [(t[0], t[1]) for t in out if not (t[0] == "text" and t[1] == "")]


# ---- parser ---------------------------------------------------------------------------------
def _parse(tokens, i=0, stop=("end",)):
    """Returns (nodes, index, terminator)."""
    nodes = []
    while i < len(tokens):
        kind, val = tokens[i]
        if kind == "text":
            nodes.append(("text", val))
            i += 1
            continue
        if val.startswith("/*"):
            i += 1
            continue
        word = val.split(None, 1)[0] if val else ""
        rest = val[len(word):].strip()
        if word in ("end", "else"):
            return nodes, i, val
        if word in ("if", "with", "range"):
            body, i, term = _parse(tokens, i + 1)
            branches = [(rest, body)]
            else_body = []
            while term.startswith("else"):
                cond = term[4:].strip()
                if cond.startswith("if ") and word == "if":
                    body, i, term = _parse(tokens, i + 1)
                    branches.append((cond[3:].strip(), body))
                elif cond == "":
                    else_body, i, term = _parse(tokens, i + 1)
                else:
                    raise TemplateError(f"unsupported else form: {term!r}")
            if term != "end":
                raise TemplateError(f"{word} without end")
            nodes.append((word, branches, else_body))
            i += 1
            continue
        if word == "define":
            name = _literal_string(rest)
            body, i, term = _parse(tokens, i + 1)
            if term != "end":
                raise TemplateError("define without end")
            nodes.append(("define", name, body))
            i += 1
            continue
        nodes.append(("action", val))
        i += 1
    return nodes, i, None


def _literal_string(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        return bytes(s[1:-1], "utf-8").decode("unicode_escape")
    raise TemplateError(f"expected string literal, got {s!r}")


# ---- expressions ----------------------------------------------------------------------------
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\||:=|[^\s()|]+)')


def _tokenize(expr: str):
    toks, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            if expr[pos:].strip() == "":
                break
            raise TemplateError(f"cannot tokenize {expr!r}")
        toks.append(m.group(1))
        pos = m.end()
    return toks


def _truthy(v) -> bool:
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def _to_yaml(v) -> str:
    if v is None:
        return "null"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True, width=10_000).rstrip("\n")


def _fmt(v) -> str:
    if v is None:
        return "<no value>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        raise TemplateError(f"printing a {type(v).__name__} directly; use toYaml")
    return str(v)


def _printf(fmt, *args):
    out, ai, i = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            if verb == "%":
                out.append("%")
            elif verb in "sdv":
                out.append(_fmt(args[ai]))
                ai += 1
            else:
                raise TemplateError(f"printf verb %{verb} unsupported")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class Renderer:
    def __init__(self, files: dict[str, str]):
        self.defines: dict[str, list] = {}
        self.trees: dict[str, list] = {}
        for name, src in files.items():
            nodes, i, term = _parse(_lex(src))
            if term is not None:
                raise TemplateError(f"{name}: unexpected {term!r}")
            self.trees[name] = nodes
            self._collect_defines(nodes)

    def _collect_defines(self, nodes):
        for n in nodes:
            if n[0] == "define":
                self.defines[n[1]] = n[2]

    def render(self, name: str, root: dict) -> str:
        return self._exec(self.trees[name], root, {"$": root})

    # -- execution --
    def _exec(self, nodes, dot, vars_) -> str:
        out = []
        for n in nodes:
            kind = n[0]
            if kind == "text":
                out.append(n[1])
            elif kind == "define":
                continue
            elif kind == "action":
                v = self._pipeline(n[1], dot, vars_)
                if v is not _NOPRINT:
                    out.append(_fmt(v))
            elif kind == "if":
                for cond, body in n[1]:
                    if _truthy(self._pipeline(cond, dot, vars_)):
                        out.append(self._exec(body, dot, dict(vars_)))
                        break
                else:
                    out.append(self._exec(n[2], dot, dict(vars_)))
            elif kind == "with":
                (cond, body), = n[1]
                v = self._pipeline(cond, dot, vars_)
                out.append(self._exec(body, v, dict(vars_)) if _truthy(v) else self._exec(n[2], dot, dict(vars_)))
            elif kind == "range":
                (expr, body), = n[1]
                names = []
                m = re.match(r"^(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*(.*)$", expr, re.S)
                if m:
                    names = [x for x in (m.group(1), m.group(2)) if x]
                    expr = m.group(3)
                coll = self._pipeline(expr, dot, vars_)
                items = sorted(coll.items()) if isinstance(coll, dict) else list(enumerate(coll or []))
                if not items:
                    out.append(self._exec(n[2], dot, dict(vars_)))
                for k, v in items:
                    vs = dict(vars_)
                    if len(names) == 1:
                        vs[names[0]] = v
                    elif len(names) == 2:
                        vs[names[0]], vs[names[1]] = k, v
                    out.append(self._exec(body, v, vs))
            else:
                raise TemplateError(f"unknown node {kind}")
        return "".join(out)

    def _pipeline(self, expr: str, dot, vars_):
        toks = _tokenize(expr)
        if len(toks) >= 2 and toks[1] == ":=":
            # `{{ $x := pipeline }}`: prints nothing; visible to the rest of this block and the
            # blocks inside it (each if/with/range body gets a copy of the variables)
            if not re.fullmatch(r"\$\w+", toks[0]):
                raise TemplateError(f"cannot assign to {toks[0]!r}")
            val, pos = self._pipe(toks, 2, dot, vars_)
            if pos != len(toks):
                raise TemplateError(f"trailing tokens in {expr!r}")
            vars_[toks[0]] = val
            return _NOPRINT
        val, pos = self._pipe(toks, 0, dot, vars_)
        if pos != len(toks):
            raise TemplateError(f"trailing tokens in {expr!r}")
        return val

    def _pipe(self, toks, pos, dot, vars_):
        val = _NOVAL
        while True:
            cmd = []
            depth = 0
            while pos < len(toks) and not (toks[pos] in ("|", ")") and depth == 0):
                if toks[pos] == "(":
                    depth += 1
                elif toks[pos] == ")":
                    depth -= 1
                cmd.append(toks[pos])
                pos += 1
            val = self._command(cmd, dot, vars_, val)
            if pos < len(toks) and toks[pos] == "|":
                pos += 1
                continue
            return val, pos

    def _args(self, toks, dot, vars_):
        args, i = [], 0
        while i < len(toks):
            t = toks[i]
            if t == "(":
                depth, j = 1, i + 1
                while depth:
                    if toks[j] == "(":
                        depth += 1
                    elif toks[j] == ")":
                        depth -= 1
                    j += 1
                v, _ = self._pipe(toks[i + 1:j - 1], 0, dot, vars_)
                args.append(v)
                i = j
            else:
                args.append(self._operand(t, dot, vars_))
                i += 1
        return args

    def _operand(self, t, dot, vars_):
        if t.startswith('"'):
            return _literal_string(t)
        if t in ("true", "false"):
            return t == "true"
        if t == "nil":
            return None
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        if re.fullmatch(r"-?\d+\.\d*", t):
            return float(t)
        if t == ".":
            return dot
        if t.startswith("$"):
            head, _, path = t.partition(".")
            if head not in vars_:
                raise TemplateError(f"undefined variable {head}")
            return self._field(vars_[head], path)
        if t.startswith("."):
            return self._field(dot, t[1:])
        raise TemplateError(f"unknown operand {t!r}")

    @staticmethod
    def _field(obj, path):
        if not path:
            return obj
        for part in path.split("."):
            if obj is None:
                raise TemplateError(f"nil pointer evaluating .{path}")
            if not isinstance(obj, dict):
                raise TemplateError(f"cannot access .{part} on {type(obj).__name__}")
            obj = obj.get(part)
        return obj

    def _command(self, cmd, dot, vars_, piped):
        if not cmd:
            raise TemplateError("empty command")
        head = cmd[0]
        is_fn = re.fullmatch(r"[A-Za-z_]\w*", head) and head not in ("true", "false", "nil")
        if not is_fn:
            if len(cmd) != 1 and not (cmd[0] == "(" and cmd[-1] == ")"):
                raise TemplateError(f"not a function: {head}")
            vals = self._args(cmd, dot, vars_)
            if len(vals) != 1 or piped is not _NOVAL:
                raise TemplateError(f"bad command {' '.join(cmd)}")
            return vals[0]
        args = self._args(cmd[1:], dot, vars_)
        if piped is not _NOVAL:
            args.append(piped)
        return self._call(head, args)

    def _call(self, fn, a):
        if fn == "include":
            name, ctx = a
            if name not in self.defines:
                raise TemplateError(f"no template {name!r}")
            return self._exec(self.defines[name], ctx, {"$": ctx})
        if fn == "toYaml":
            return _to_yaml(a[0])
        if fn in ("nindent", "indent"):
            n, s = a
            pad = " " * n
            body = "\n".join(pad + line for line in str(s).split("\n"))
            return ("\n" + body) if fn == "nindent" else body
        if fn == "quote":
            return '"' + _fmt(a[0]).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if fn == "default":
            d, v = a
            return v if _truthy(v) else d
        if fn == "trunc":
            n, s = a
            return s[:n]
        if fn == "lower":
            return _fmt(a[0]).lower()
        if fn == "trim":
            # sprig: strings.TrimSpace
            return _fmt(a[0]).strip(" \t\n\r\v\f")
        if fn == "contains":
            # sprig: contains substr str
            sub, s_ = a
            return _fmt(sub) in _fmt(s_)
        if fn == "hasPrefix":
            # sprig: hasPrefix prefix str
            pre, s_ = a
            return _fmt(s_).startswith(_fmt(pre))
        if fn == "trimSuffix":
            suf, s = a
            return s[: -len(suf)] if suf and s.endswith(suf) else s
        if fn == "printf":
            return _printf(*a)
        if fn == "print":
            return "".join(_fmt(x) for x in a)
        if fn == "toString":
            return _fmt(a[0])
        if fn == "sha256sum":
            return hashlib.sha256(str(a[0]).encode()).hexdigest()
        if fn == "not":
            return not _truthy(a[0])
        if fn == "and":
            for x in a:
                if not _truthy(x):
                    return x
            return a[-1]
        if fn == "or":
            for x in a:
                if _truthy(x):
                    return x
            return a[-1]
        if fn == "eq":
            return all(a[0] == x for x in a[1:])
        if fn == "ne":
            return a[0] != a[1]
        if fn == "lt":
            return a[0] < a[1]
        if fn == "dig":
            # sprig: dig "k1" "k2" default dict; a missing key gives the default, a step
            # through something that is not a map is an error
            *keys, d, obj = a
            for i, k in enumerate(keys):
                if not isinstance(obj, dict):
                    raise TemplateError(f"dig: {keys[i - 1]!r} is not a map")
                if k not in obj:
                    return d
                obj = obj[k]
            return obj
        if fn == "list":
            return list(a)
        if fn == "dict":
            # sprig: dict "k1" v1 "k2" v2; keys are made strings, a key without a value gets ""
            pairs = list(a) + ([""] if len(a) % 2 else [])
            return {_fmt(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}
        if fn == "hasKey":
            d, k = a
            if not isinstance(d, dict):
                raise TemplateError(f"hasKey: not a map: {type(d).__name__}")
            return k in d
        if fn == "index":
            # Go's index: a map's missing key gives nil, a list's index must be in range
            obj, *keys = a
            for k in keys:
                if isinstance(obj, dict):
                    obj = obj.get(k)
                elif isinstance(obj, list) and isinstance(k, int) and 0 <= k < len(obj):
                    obj = obj[k]
                else:
                    raise TemplateError(f"index: cannot index {type(obj).__name__} with {k!r}")
            return obj
        if fn == "merge":
            # sprig: merge dst src...: deep, dst's values win (a src key only fills what dst
            # lacks or leaves empty); dst is changed and returned
            dst, *srcs = a
            for src in srcs:
                _merge_into(dst, src or {})
            return dst
        if fn == "fromYaml":
            # Helm: a YAML map from text (an empty document gives an empty map)
            v = yaml.safe_load(_fmt(a[0]))
            if v is None:
                return {}
            if not isinstance(v, dict):
                raise TemplateError(f"fromYaml: not a map: {a[0]!r}")
            return v
        if fn == "has":
            needle, coll = a
            return needle in (coll or [])
        if fn == "first":
            return a[0][0] if a[0] else None
        if fn == "splitList":
            sep, s_ = a
            return _fmt(s_).split(sep)
        if fn == "last":
            return a[0][-1] if a[0] else None
        if fn == "regexMatch":
            rx, s_ = a
            return re.search(rx, _fmt(s_)) is not None
        if fn == "atoi":
            # sprig's atoi gives 0 for text that is not an integer
            return int(a[0]) if re.fullmatch(r"-?\d+", _fmt(a[0])) else 0
        if fn == "add":
            return sum(int(x) for x in a)
        if fn == "fail":
            raise TemplateError(a[0])
        if fn == "required":
            msg, v = a
            if v is None or v == "":
                raise TemplateError(msg)
            return v
        raise TemplateError(f"function {fn!r} not supported by this renderer")


class _Sentinel:
    pass


_NOVAL = _Sentinel()
_NOPRINT = _Sentinel()


def _merge_into(dst: dict, src: dict) -> None:
    """mergo.Merge without override, as sprig's merge uses it."""
    for k, v in src.items():
        if isinstance(dst.get(k), dict) and isinstance(v, dict):
            _merge_into(dst[k], v)
        elif k not in dst or not _truthy(dst[k]):
            dst[k] = v


def deep_merge(base: dict, over: dict) -> dict:
    """Helm's values merge: maps merge key by key, everything else (lists too) is replaced,
    and a null deletes the key (Helm's coalesceValues: `--set key=null` removes a default)."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def render_chart(chart_dir, values_overrides=(), release="watchtower", namespace="watchtower"):
    """Render every template of a chart like `helm template`: returns {template name: text}."""
    from pathlib import Path

    chart_dir = Path(chart_dir)
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = yaml.safe_load((chart_dir / "values.yaml").read_text()) or {}
    for ov in values_overrides:
        values = deep_merge(values, ov)
    files = {p.name: p.read_text() for p in sorted((chart_dir / "templates").iterdir()) if p.is_file()}
    r = Renderer(files)
    root = {
        "Values": values,
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart.get("appVersion", "")},
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": True},
        "Template": {"BasePath": f"{chart['name']}/templates"},
    }
    out = {}
    for name in files:
        if name.startswith("_"):
            continue
        out[name] = r.render(name, root)
    return out, values
