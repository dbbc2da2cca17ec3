"""Typed, frozen, slotted record classes for the AST and the IR.

``@node`` turns a class with annotated fields into an immutable record with
``__slots__``, a generated ``__init__``, ``__eq__``/``__hash__`` over its
compared fields, a readable ``__repr__`` and ``evolve()``; ``field()`` sets a
default and whether the field takes part in equality (spans do not, so two
parses of the same text compare equal wherever they came from).

Why not attrs, which does all of this: importing attrs costs ~20 ms and each
attrs class ~0.3 ms more to build.  A one-task ``--validate-only`` must start
within 3x of ``python -c pass`` (~8 ms here), so the nodes are built by this
module, whose generated code is the same shape as attrs' (one ``exec`` per class).
"""

from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~7 ms to import

if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

_MISSING = object()


class _FieldSpec:
    __slots__ = ("default", "eq")

    def __init__(self, default: Any, eq: bool) -> None:
        self.default = default
        self.eq = eq


def field(*, default: Any = _MISSING, eq: bool = True) -> Any:
    """Declare a field's default and whether it counts for equality and hashing."""
    return _FieldSpec(default, eq)


class FrozenError(AttributeError):
    """Raised on an attempt to change a node."""


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenError(f"{type(self).__name__} is immutable (tried to set {name!r})")


def node(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen, slotted record class (see module docstring)."""
    names: list[str] = []
    defaults: dict[str, Any] = {}
    compared: list[str] = []
    for base in reversed(cls.__mro__[1:]):
        for name in getattr(base, "__node_fields__", ()):
            if name not in names:
                names.append(name)
        defaults.update(getattr(base, "__node_defaults__", {}))
        compared = [n for n in getattr(base, "__node_compared__", compared)]
    for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063 - inspect is slow to import
        if name.startswith("__"):
            continue
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, _FieldSpec) else _FieldSpec(value, True)
        if name not in names:
            names.append(name)
        if spec.default is not _MISSING:
            defaults[name] = spec.default
        if spec.eq and name not in compared:
            compared.append(name)
        if not spec.eq and name in compared:
            compared.remove(name)
    namespace = {k: v for k, v in cls.__dict__.items()
                 if k not in names and k not in ("__dict__", "__weakref__")}
    own = [n for n in names if not any(n in getattr(b, "__slots__", ()) for b in cls.__mro__[1:])]
    namespace["__slots__"] = tuple(own)
    namespace["__node_fields__"] = tuple(names)
    namespace["__node_defaults__"] = defaults
    namespace["__node_compared__"] = tuple(compared)
    new = type(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = cls.__qualname__
    new.__module__ = cls.__module__
    _install_methods(new, names, defaults, compared)
    return new


def _install_methods(cls: type, names: list[str], defaults: dict[str, Any], compared: list[str]) -> None:
    required = [n for n in names if n not in defaults]
    optional = [n for n in names if n in defaults]
    params = ", ".join(["self", *required, *(f"{n}=_d_{n}" for n in optional)])
    body = "".join(f"    _set(self, {n!r}, {n})\n" for n in names) or "    pass\n"
    env: dict[str, Any] = {"_set": object.__setattr__}
    env.update({f"_d_{n}": defaults[n] for n in optional})
    key = "(" + "".join(f"self.{n}, " for n in compared) + ")"
    source = (
        f"def __init__({params}):\n{body}"
        f"def _key(self):\n    return {key}\n"
    )
    exec(source, env)  # same technique as attrs/dataclasses: one generated function per class
    cls.__init__ = env["__init__"]
    key_fn = env["_key"]
    cls.__setattr__ = _frozen_setattr
    cls.__delattr__ = _frozen_setattr

    def __eq__(self: Any, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return key_fn(self) == key_fn(other)

    cls.__eq__ = __eq__
    cls.__hash__ = lambda self: hash((type(self).__name__, *key_fn(self)))
    cls.__repr__ = _repr
    cls.__getstate__ = lambda self: {n: getattr(self, n) for n in names}
    cls.__setstate__ = _setstate


def _setstate(self: object, state: dict) -> None:
    for name, value in state.items():
        object.__setattr__(self, name, value)


def _repr(self: object) -> str:
    parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__node_compared__)
    return f"{type(self).__name__}({parts})"


def evolve(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with some fields replaced."""
    values = {n: getattr(obj, n) for n in type(obj).__node_fields__}
    values.update(changes)
    return type(obj)(**values)


def fields(obj_or_cls: Any) -> tuple[str, ...]:
    """The field names of a node class or instance, in declaration order."""
    return obj_or_cls.__node_fields__


def pretty(obj: Any, indent: int = 0, *, spans: bool = True) -> str:
    """A readable, stable multi-line dump of a node tree (used by the golden tests)."""
    pad = "  " * indent
    if hasattr(type(obj), "__node_fields__"):
        names = type(obj).__node_fields__ if spans else type(obj).__node_compared__
        inner = []
        for name in names:
            value = getattr(obj, name)
            inner.append(f"{pad}  {name}={pretty(value, indent + 1, spans=spans).lstrip()}")
        return f"{pad}{type(obj).__name__}(\n" + ",\n".join(inner) + f"\n{pad})"
    if isinstance(obj, (tuple, list)) and obj and any(hasattr(type(x), "__node_fields__") for x in obj):
        items = ",\n".join(pretty(x, indent + 1, spans=spans) for x in obj)
        return f"{pad}[\n{items}\n{pad}]"
    if isinstance(obj, dict) and obj:
        items = ",\n".join(f"{pad}  {k!r}: {pretty(v, indent + 1, spans=spans).lstrip()}" for k, v in obj.items())
        return f"{pad}{{\n{items}\n{pad}}}"
    return f"{pad}{obj!r}"
