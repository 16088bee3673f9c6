"""Offline checks for the TraceQL and LogQL the project ships. Tempo and Loki cannot run here (no Docker), so:

- TraceQL: a parser for the subset we use, written from Tempo's TraceQL reference (spanset filters with
  scoped attributes, intrinsics, && / || / parentheses, comparison operators, string / number / duration /
  status literals, and `| select(...)`, `| by(...)`, `| count() > N` pipelines). It rejects anything else,
  and returns every (attribute, operator, literal) comparison so that callers can check literal types:
  Tempo 2.6 matches a float attribute only against a float literal (`> 0.0` finds spans, `> 0` none).
- LogQL: the stream selector must use Loki index labels only (a selector on anything else selects nothing)
  and at least one matcher that cannot match the empty string (Loki refuses the query otherwise); the line
  pipeline may use label filters, line filters and parsers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<duration>\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)\b)
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<op>&&|\|\||=~|!~|!=|>=|<=|=|>|<)
    | (?P<punct>[{}(),|])
    | (?P<ident>[A-Za-z_.:$][A-Za-z0-9_.:$-]*)
    )""",
    re.VERBOSE,
)
_INTRINSICS = {
    "duration", "name", "status", "kind", "statusMessage", "rootName", "rootServiceName", "traceDuration",
    "span:duration", "span:name", "span:status", "span:kind", "trace:duration", "trace:rootName",
    "trace:rootService",
}  # fmt: skip
_STATUS = {"ok", "error", "unset", "server", "client", "producer", "consumer", "internal"}
_COMPARE = {"=", "!=", ">", ">=", "<", "<=", "=~", "!~"}


@dataclass(frozen=True)
class Comparison:
    field: str  # e.g. span.gen_ai.usage.cost
    op: str
    kind: str  # string, int, float, duration, status, bool, variable
    literal: str

    @property
    def attribute(self) -> str:
        """The attribute name without its scope (span., resource., or a bare leading dot)."""
        for scope in ("span.", "resource.", "."):
            if self.field.startswith(scope):
                return self.field[len(scope) :]
        return self.field


class TraceQLError(ValueError):
    pass


def _tokens(query: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise TraceQLError(f"cannot read {query[pos:]!r} in {query!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = _tokens(query)
        self.i = 0
        self.comparisons: list[Comparison] = []

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind) or k == "end":
            want = value or kind
            raise TraceQLError(f"expected {want!r}, found {v or 'the end'!r} in {self.query!r}")
        self.i += 1
        return v

    def parse(self) -> list[Comparison]:
        self.spansets()
        while self.peek()[1] == "|":
            self.take("|")
            self.stage()
        if self.peek()[0] != "end":
            raise TraceQLError(f"unexpected {self.peek()[1]!r} in {self.query!r}")
        return self.comparisons

    def spansets(self) -> None:
        self.spanset()
        while self.peek()[1] in ("&&", "||"):
            self.take()
            self.spanset()

    def spanset(self) -> None:
        self.take("{")
        if self.peek()[1] != "}":
            self.expr()
        self.take("}")

    def expr(self) -> None:
        self.term()
        while self.peek()[1] in ("&&", "||"):
            self.take()
            self.term()

    def term(self) -> None:
        if self.peek()[1] == "(":
            self.take("(")
            self.expr()
            self.take(")")
            return
        field = self.field()
        op = self.take(kind="op")
        if op not in _COMPARE:
            raise TraceQLError(f"{op!r} is not a comparison in {self.query!r}")
        self.comparisons.append(Comparison(field, op, *self.literal(op)))

    def field(self) -> str:
        name = self.take(kind="ident")
        scoped = name.startswith(("span.", "resource.", ".")) and len(name.split(".", 1)[1]) > 0
        if not scoped and name not in _INTRINSICS:
            raise TraceQLError(f"{name!r} is neither a scoped attribute nor an intrinsic in {self.query!r}")
        return name

    def literal(self, op: str) -> tuple[str, str]:
        kind, value = self.peek()
        self.i += 1
        if kind == "string":
            return "string", value
        if kind == "duration":
            return "duration", value
        if kind == "number":
            is_float = any(c in value for c in ".eE")
            return ("float" if is_float else "int"), value
        if kind == "ident" and value in _STATUS:
            return "status", value
        if kind == "ident" and value in ("true", "false"):
            return "bool", value
        if kind == "ident" and value.startswith("$"):
            return "variable", value
        raise TraceQLError(f"{value!r} is not a literal (after {op!r}) in {self.query!r}")

    def stage(self) -> None:
        name = self.take(kind="ident")
        self.take("(")
        if name in ("select", "by"):
            self.field()
            while self.peek()[1] == ",":
                self.take(",")
                self.field()
        elif name in ("avg", "min", "max", "sum"):
            self.field()
        elif name != "count":
            raise TraceQLError(f"unsupported pipeline stage {name!r} in {self.query!r}")
        self.take(")")
        if name in ("count", "avg", "min", "max", "sum"):
            op = self.take(kind="op")
            if op not in _COMPARE:
                raise TraceQLError(f"{op!r} after {name}() in {self.query!r}")
            self.literal(op)


def parse_traceql(query: str) -> list[Comparison]:
    """Every comparison of a TraceQL query; TraceQLError when the query is outside the supported grammar."""
    return _Parser(query).parse()


def literal_mismatches(query: str, float_attrs: set[str], int_attrs: set[str]) -> list[str]:
    """Numeric comparisons whose literal does not match the attribute's type. A numeric comparison on an
    attribute of unknown type is reported too: its literal cannot be checked."""
    problems = []
    for c in parse_traceql(query):
        if c.kind not in ("int", "float"):
            continue
        if c.attribute in float_attrs and c.kind != "float":
            problems.append(f"{c.field} {c.op} {c.literal}: float attribute needs a float literal")
        elif c.attribute in int_attrs and c.kind != "int":
            problems.append(f"{c.field} {c.op} {c.literal}: integer attribute needs an integer literal")
        elif c.attribute not in float_attrs | int_attrs:
            problems.append(f"{c.field} {c.op} {c.literal}: attribute of unknown type")
    return problems


# --- LogQL ----------------------------------------------------------------------------------------

_SELECTOR = re.compile(r"^\s*\{(?P<body>[^{}]*)\}(?P<rest>.*)$", re.S)
_MATCHER = re.compile(
    r'\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*'
)
_STAGE = re.compile(
    r"""\s*(?:
      \|=\s*"(?:[^"\\]|\\.)*" | !=\s*"(?:[^"\\]|\\.)*" | \|~\s*"(?:[^"\\]|\\.)*" | !~\s*"(?:[^"\\]|\\.)*"
    | \|\s*(?:json|logfmt)\b
    | \|\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|>=|<=|==|=|>|<)\s*(?:"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)
    )""",
    re.VERBOSE,
)


def logql_problems(query: str, index_labels: set[str], grafana_vars: dict[str, str]) -> list[str]:
    """What is wrong with a LogQL log query (variables substituted with grafana_vars first)."""
    for name in sorted(grafana_vars, key=len, reverse=True):
        query = query.replace("$" + name, grafana_vars[name])
    m = _SELECTOR.match(query)
    if not m:
        return [f"no stream selector in {query!r}"]
    problems = []
    body, rest = m.group("body"), m.group("rest")
    matchers = []
    pos = 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if not mm:
            return [f"cannot read matcher at {body[pos:]!r}"]
        matchers.append(mm)
        pos = mm.end()
        if pos < len(body) and body[pos] == ",":
            pos += 1
    for mm in matchers:
        if mm.group("label") not in index_labels:
            problems.append(f"{mm.group('label')} is not a Loki index label (loki.yaml otlp_config)")
    if not any(not re.fullmatch(_regex(mm), "") for mm in matchers if mm.group("op") in ("=", "=~")):
        problems.append("every matcher can match the empty string: Loki refuses such a selector")
    pos = 0
    while pos < len(rest.strip()):
        sm = _STAGE.match(rest.strip(), pos)
        if not sm or sm.end() == pos:
            problems.append(f"unsupported pipeline stage at {rest.strip()[pos:]!r}")
            break
        pos = sm.end()
    return problems


def _regex(mm: re.Match[str]) -> str:
    value = mm.group("value").replace("\\\\", "\\")
    return value if mm.group("op") == "=~" else re.escape(value)
