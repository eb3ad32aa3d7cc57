"""The bounded Jinja sandbox templates are rendered in (issue 8.4).

Jinja's sandbox stops templates from reaching Python's internals, but not from asking for
gigabytes (`{{ 'a' * 10**9 }}`, `'%999999999s'|format('x')`) or hours (nested `range(100000)`
loops). This environment adds budgets, checked in process (a child process per render would
cost more than the thousands of renders of a run can afford):

- arithmetic: `*`, `**`, `+` and `%` are intercepted and refused when the result would be a
  text or list longer than MAX_VALUE, or an integer wider than MAX_INT_BITS;
- widths: a format width or precision (`%…s`, `{:…}`, `|format`) above MAX_WIDTH, and an
  integer above MAX_VALUE given as a size (`'x'.ljust(n)`, `|center(n)`, `|slice(n)`), are
  refused;
- sizes: a text or list built by a call, a filter or `~` longer than MAX_VALUE; everything
  produced while rendering (printed values and the literal text of loop bodies, also inside
  macros and `{% set %}` blocks) beyond MAX_PRODUCED; the rendered text beyond MAX_OUTPUT;
- time: at most MAX_ITERATIONS loop iterations in all, and MAX_SECONDS of wall time, checked
  at every loop iteration, call, attribute access, operator and printed value.

A template over a budget raises RenderLimit naming the limit; `recoup.messages.render` turns
it into TemplateLimitExceeded (a TemplateError: a permanent action failure, never retried).
"""

from __future__ import annotations

import contextvars
import re
import string
import time
import types
from collections.abc import Callable, Iterator
from functools import update_wrapper, wraps
from typing import Any

from jinja2 import nodes
from jinja2.filters import FILTERS
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, generate_lorem_ipsum, pass_context
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

MAX_OUTPUT = 500_000  # characters of one rendered text (an email body, a letter's body)
MAX_VALUE = MAX_OUTPUT  # length of any text or list computed while rendering
MAX_PRODUCED = 10 * MAX_OUTPUT  # everything produced, nested buffers counted again
MAX_WIDTH = 1_000  # a format width or precision
MAX_INT_BITS = 4_096  # about 1,200 decimal digits
MAX_ITERATIONS = 1_000_000  # loop iterations of one render, all loops together
MAX_SECONDS = 2.0

LOOP_FILTER = "_recoup_loop"
CONCAT_FILTER = "_recoup_concat"
_DIGITS = re.compile(r"\d+")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?([^a-zA-Z%]*)[a-zA-Z%]")


class RenderLimit(Exception):
    """A template went over one of the rendering budgets."""


class _Budget:
    __slots__ = ("deadline", "iterations", "produced")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_SECONDS
        self.iterations = 0
        self.produced = 0


_current: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "recoup_render_budget", default=None
)


def _tick() -> _Budget | None:
    budget = _current.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise RenderLimit(f"took longer than {MAX_SECONDS:g} s (time limit)")
    return budget


def _produce(size: int) -> None:
    budget = _tick()
    if budget is not None:
        budget.produced += size
        if budget.produced > MAX_PRODUCED:
            raise RenderLimit(f"produces more than {MAX_PRODUCED:,} characters (size limit)")


def _size(value: Any) -> int | None:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    return None


def _weight(value: Any, limit: int = MAX_PRODUCED) -> int:
    """About how many characters printing `value` gives (nested containers counted in full),
    stopping once over `limit`."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple | set | frozenset):
        total = len(value)
        for item in value:
            total += _weight(item, limit - total)
            if total > limit:
                break
        return total
    return 1


def _check_size(value: Any, what: str = "a value") -> Any:
    size = _size(value)
    if size is not None and size > MAX_VALUE:
        raise RenderLimit(f"{what} of {size:,} items is over the limit of {MAX_VALUE:,}")
    return value


def _refuse_big(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
        raise RenderLimit(f"{what} {value:,} is over the limit of {MAX_VALUE:,}")


def _check_width(spec: str, what: str) -> None:
    if "*" in spec:
        raise RenderLimit(f"{what}: a width taken from the arguments ('*') is not allowed")
    for digits in _DIGITS.findall(spec):
        if len(digits) > 6 or int(digits) > MAX_WIDTH:
            raise RenderLimit(f"{what}: width or precision {digits} is over {MAX_WIDTH:,}")


def check_percent_format(text: str) -> None:
    """`'%10s' % x` and `|format`: every conversion's width and precision are capped."""
    for match in _PERCENT_SPEC.finditer(text):
        _check_width(match.group(1), "format")


def _predicted_join(separator: str, items: Any) -> None:
    if isinstance(items, list | tuple):
        total = len(separator) * max(len(items) - 1, 0) + _weight(items, MAX_PRODUCED)
        if total > MAX_VALUE:
            raise RenderLimit(f"joining gives {total:,} characters, over {MAX_VALUE:,}")


def _predicted_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        if len(new) <= len(old):
            return
        times = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        total = len(text) + times * (len(new) - len(old))
        if total > MAX_VALUE:
            raise RenderLimit(f"replace gives {total:,} characters, over {MAX_VALUE:,}")


def _predicted_lines(text: Any, addition: Any, per_line: int = 1) -> None:
    """indent / wordwrap / expandtabs: what each line (or tab) adds, times their number."""
    if isinstance(text, str):
        extra = len(addition) if isinstance(addition, str) else int(addition or 0)
        total = len(text) + (text.count("\n") + per_line) * extra
        if total > MAX_VALUE:
            raise RenderLimit(f"gives {total:,} characters, over {MAX_VALUE:,}")


# --- method calls (`'x'.center(10)`, `', '.join(...)`) ------------------------------------------


# Methods and filters whose integer arguments are sizes of what they build.
SIZE_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
SIZE_FILTERS = frozenset({"center", "indent", "slice", "wordwrap"})


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str | bytes):
        return
    if name in SIZE_METHODS:
        for arg in (*args, *kwargs.values()):
            _refuse_big(arg, f"{name}: an argument")
    if name == "join" and args:
        _predicted_join(str(owner), args[0])
    elif name == "replace" and len(args) >= 2:
        _predicted_replace(owner, *args[:3])
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(owner, str) and isinstance(size, int):
            total = len(owner) + owner.count("\t") * size
            if total > MAX_VALUE:
                raise RenderLimit(f"expandtabs gives {total:,} characters, over {MAX_VALUE:,}")


# --- operators --------------------------------------------------------------------------------


def _check_binop(operator: str, left: Any, right: Any) -> None:
    ints = (
        isinstance(left, int)
        and isinstance(right, int)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    )
    if operator == "*":
        if ints:
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimit(f"a product over {MAX_INT_BITS} bits (arithmetic limit)")
            return
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
                total = _weight(seq) * times
                if total > MAX_VALUE:
                    raise RenderLimit(
                        f"repeating gives {total:,} items, over {MAX_VALUE:,} (size limit)"
                    )
    elif operator == "**":
        if (
            ints
            and right > 0
            and abs(left) > 1
            and (right > MAX_INT_BITS or (abs(left).bit_length() - 1) * right > MAX_INT_BITS)
        ):
            raise RenderLimit(f"{left} ** {right} is over {MAX_INT_BITS} bits (arithmetic limit)")
    elif operator == "+":
        if isinstance(left, str | list | tuple | bytes) and isinstance(
            right, str | list | tuple | bytes
        ):
            total = len(left) + len(right)
            if total > MAX_VALUE:
                raise RenderLimit(f"adding gives {total:,} items, over {MAX_VALUE:,}")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left)


# --- str.format ---------------------------------------------------------------------------------


class _WidthFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_width(format_spec, "format")
        return super().format_field(value, format_spec)


class _WidthEscapeFormatter(_WidthFormatter, EscapeFormatter):
    pass


# --- filters and globals ------------------------------------------------------------------------


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter with its integer arguments capped, its input and output sizes checked and
    the time budget ticked; the few that grow with their input are predicted first."""
    passes = getattr(func, "jinja_pass_arg", None)
    skip = 1 if passes is not None else 0  # the context/environment argument

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _tick()
        values = args[skip:]
        if name in SIZE_FILTERS:
            for arg in (*values[1:], *kwargs.values()):
                _refuse_big(arg, f"{name}: an argument")
        if values:
            subject = values[0]
            if name in ("string", "pprint", "tojson", "join", "urlencode", "xmlattr"):
                weight = _weight(subject)
                if weight > MAX_VALUE:
                    raise RenderLimit(f"{name}: a value of {weight:,} characters is too large")
            if name == "format" and isinstance(subject, str):
                check_percent_format(subject)
            elif name == "replace" and len(values) >= 3:
                _predicted_replace(*values[:4])
            elif name == "indent":
                width = values[1] if len(values) > 1 else kwargs.get("width", 4)
                _predicted_lines(str(subject), width)
            elif name == "wordwrap":
                width = values[1] if len(values) > 1 else kwargs.get("width", 79)
                wrap = values[4] if len(values) > 4 else kwargs.get("wrapstring") or "\n"
                if isinstance(subject, str) and isinstance(width, int):
                    lines = len(subject) // max(width, 1) + subject.count("\n") + 1
                    if len(subject) + lines * len(str(wrap)) > MAX_VALUE:
                        raise RenderLimit(f"wordwrap gives more than {MAX_VALUE:,} characters")
            elif name == "join" and isinstance(subject, list | tuple):
                separator = values[1] if len(values) > 1 else kwargs.get("d", "")
                _predicted_join(str(separator), subject)
        return _check_size(func(*args, **kwargs), f"the result of {name}")

    return wrapper


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    if n > 100 or max > 1_000 or min > max:
        raise RenderLimit("lipsum: at most 100 paragraphs of 1,000 words")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


class _Namespace(Namespace):
    """`namespace()` whose attributes cannot grow past the size limit across loop turns."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_size(value, f"namespace attribute {name}")
        if _weight(value, MAX_VALUE + 1) > MAX_VALUE:
            raise RenderLimit(f"namespace attribute {name} is over {MAX_VALUE:,} characters")
        super().__setitem__(name, value)


@pass_context
def _loop(context: Context, iterable: Any, literal_cost: int = 0) -> Iterator[Any]:
    """Every `{% for %}` iterates through this: one iteration (and the literal text of the
    loop body) charged to the render's budget per turn."""
    budget = _current.get()
    for item in iterable:
        if budget is not None:
            budget.iterations += 1
            if budget.iterations > MAX_ITERATIONS:
                raise RenderLimit(f"more than {MAX_ITERATIONS:,} loop iterations (loop limit)")
            if literal_cost:
                _produce(literal_cost)
            else:
                _tick()
        yield item


@pass_context
def _concat(context: Context, parts: list[Any]) -> Any:
    """`a ~ b`: the sizes are added up before the text is built."""
    total = 0
    for part in parts:
        total += _weight(part, MAX_PRODUCED) if not isinstance(part, int | float) else 1
        if total > MAX_VALUE:
            raise RenderLimit(f"joining with ~ gives more than {MAX_VALUE:,} characters")
    join = markup_join if context.eval_ctx.autoescape else str_join
    return join(parts)  # Markup when autoescaping, so it is not escaped a second time


def _literal_length(node: nodes.Node) -> int:
    return sum(len(data.data) for data in node.find_all(nodes.TemplateData))


class _Bounded(NodeTransformer):
    """Route every loop's iterable and every `~` through the budget filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (NodeVisitor's names)
        self.generic_visit(node)
        cost = sum(_literal_length(child) for child in node.body)
        node.iter = nodes.Filter(
            node.iter, LOOP_FILTER, [nodes.Const(cost)], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return nodes.Filter(
            nodes.List(node.nodes, lineno=node.lineno),
            CONCAT_FILTER,
            [],
            [],
            None,
            None,
            lineno=node.lineno,
        )


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the budgets above."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(finalize=self._finalize, **kwargs)
        for name, func in FILTERS.items():
            self.filters[name] = _bounded_filter(name, func)
        self.filters[LOOP_FILTER] = _loop
        self.filters[CONCAT_FILTER] = _concat
        self.globals["lipsum"] = _lipsum
        self.globals["namespace"] = _Namespace

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        self.filters[name] = _bounded_filter(name, func)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        bounded = _Bounded().visit(tree)
        assert isinstance(bounded, nodes.Template)
        return bounded

    @staticmethod
    def _finalize(value: Any) -> Any:
        if isinstance(value, str):
            _produce(len(value))
        elif isinstance(value, list | tuple | dict | set | frozenset):
            weight = _weight(value, MAX_VALUE + 1)
            if weight > MAX_VALUE:
                raise RenderLimit(f"printing a value of over {MAX_VALUE:,} characters")
            _produce(weight)
        else:
            _tick()
        return value

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_binop(operator, left, right)
        return _check_size(self.binop_table[operator](left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        _check_call(__obj, args, kwargs)
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed `str.format`, with widths and precisions capped."""
        if not isinstance(
            value, types.MethodType | types.BuiltinMethodType
        ) or value.__name__ not in ("format", "format_map"):
            return None
        owner: Any = value.__self__
        if not isinstance(owner, str):
            return None
        str_type: type[str] = type(owner)
        is_format_map = value.__name__ == "format_map"
        formatter: string.Formatter = (
            _WidthEscapeFormatter(self, escape=owner.escape)
            if isinstance(owner, Markup)
            else _WidthFormatter(self)
        )

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs = args[0]
                args = ()
            return str(_check_size(str_type(formatter.vformat(owner, args, kwargs))))

        return update_wrapper(wrapper, value)


def render_bounded(template: Any, variables: dict[str, Any]) -> str:
    """Render a template of a BoundedSandbox within the budgets (output size included)."""
    token = _current.set(_Budget())
    try:
        parts: list[str] = []
        total = 0
        for chunk in template.generate(variables):
            total += len(chunk)
            if total > MAX_OUTPUT:
                raise RenderLimit(f"output is over {MAX_OUTPUT:,} characters (size limit)")
            _tick()
            parts.append(chunk)
        return "".join(parts)
    finally:
        _current.reset(token)


__all__ = [
    "MAX_ITERATIONS",
    "MAX_OUTPUT",
    "MAX_SECONDS",
    "MAX_VALUE",
    "MAX_WIDTH",
    "BoundedSandbox",
    "RenderLimit",
    "check_percent_format",
    "render_bounded",
]
