"""Typed, frozen, slotted record classes for the AST and the IR.

A subclass of ``Node`` declares its fields as annotations; the metaclass turns
them into ``__slots__``, a generated ``__init__``, ``__eq__``/``__hash__`` over
the compared fields, a readable ``__repr__`` and pickling support, and forbids
assignment after construction.  ``field()`` sets a default and whether the
field takes part in equality (spans do not, so two parses of the same text
compare equal wherever they came from).  ``evolve()`` copies with changes.

Why not attrs, which does all of this: importing attrs costs ~20 ms and each
attrs class ~0.3 ms more.  A one-task ``--validate-only`` must start within
3x of ``python -c pass`` (~8 ms here), so the nodes are built by this module:
one class creation and one generated ``__init__`` per class, the same
technique as attrs and dataclasses.
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


class NodeMeta(type):
    """Builds the record machinery of a ``Node`` subclass from its annotations."""

    def __new__(mcls, name: str, bases: tuple, ns: dict) -> type:
        names: list[str] = []
        defaults: dict[str, Any] = {}
        compared: list[str] = []
        for base in bases:
            names.extend(n for n in getattr(base, "__node_fields__", ()) if n not in names)
            defaults.update(getattr(base, "__node_defaults__", {}))
            compared.extend(n for n in getattr(base, "__node_compared__", ()) if n not in compared)
        own: list[str] = []
        for fname in ns.get("__annotations__", {}):
            if fname.startswith("__"):
                continue
            value = ns.pop(fname, _MISSING)
            spec = value if isinstance(value, _FieldSpec) else _FieldSpec(value, True)
            if fname not in names:
                names.append(fname)
                own.append(fname)
            if spec.default is not _MISSING:
                defaults[fname] = spec.default
            if spec.eq and fname not in compared:
                compared.append(fname)
            elif not spec.eq and fname in compared:
                compared.remove(fname)
        ns["__slots__"] = tuple(own)
        ns["__node_fields__"] = tuple(names)
        ns["__node_defaults__"] = defaults
        ns["__node_compared__"] = tuple(compared)
        cls = super().__new__(mcls, name, bases, ns)
        if bases:  # not Node itself
            _install(cls, names, defaults, compared)
        return cls


def _install(cls: type, names: list[str], defaults: dict[str, Any], compared: list[str]) -> None:
    required = [n for n in names if n not in defaults]
    optional = [n for n in names if n in defaults]
    params = ", ".join(["self", *required, *(f"{n}=_d_{n}" for n in optional)])
    # Writing through the slot descriptors is ~30% faster than object.__setattr__.
    body = "".join(f"    _s_{n}(self, {n})\n" for n in names) or "    pass\n"
    env: dict[str, Any] = {f"_d_{n}": defaults[n] for n in optional}
    for n in names:
        for klass in cls.__mro__:
            slot = klass.__dict__.get(n)
            if slot is not None and hasattr(slot, "__set__"):
                env[f"_s_{n}"] = slot.__set__
                break
    key = "(" + "".join(f"self.{n}, " for n in compared) + ")"
    source = f"def __init__({params}):\n{body}def _key(self):\n    return {key}\n"
    exec(source, env)
    cls.__init__ = env["__init__"]
    cls._key = env["_key"]


class Node(metaclass=NodeMeta):
    """Base of all record classes (see module docstring)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenError(f"{type(self).__name__} is immutable (tried to set {name!r})")

    __delattr__ = __setattr__

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() != other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._key()))

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__node_compared__)
        return f"{type(self).__name__}({parts})"

    def __getstate__(self) -> dict:
        return {n: getattr(self, n) for n in type(self).__node_fields__}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def _key(self) -> tuple:  # replaced per class
        return ()


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
    if isinstance(obj, Node):
        names = type(obj).__node_fields__ if spans else type(obj).__node_compared__
        inner = []
        for name in names:
            value = getattr(obj, name)
            inner.append(f"{pad}  {name}={pretty(value, indent + 1, spans=spans).lstrip()}")
        return f"{pad}{type(obj).__name__}(\n" + ",\n".join(inner) + f"\n{pad})"
    if isinstance(obj, (tuple, list)) and obj and any(isinstance(x, Node) for x in obj):
        items = ",\n".join(pretty(x, indent + 1, spans=spans) for x in obj)
        return f"{pad}[\n{items}\n{pad}]"
    if isinstance(obj, dict) and obj:
        items = ",\n".join(f"{pad}  {k!r}: {pretty(v, indent + 1, spans=spans).lstrip()}" for k, v in obj.items())
        return f"{pad}{{\n{items}\n{pad}}}"
    return f"{pad}{obj!r}"
