"""ccxt's packages without importing every exchange: an exchange class is loaded when first named.

ccxt's package __init__ (and async_support's, and pro's) imports all of its ~105 exchanges, ~0.6
CPU-s of every paper or live start (~1 with the book streams), to use two of them. Once
`install()` has run, importing `ccxt`, `ccxt.async_support` or `ccxt.pro` runs that __init__
without its exchange imports (the `from ccxt.binance import binance` lines) and defers each of
them to the first read of its name (`ccxt.binance`, `getattr(ccxt.pro, "upbit")`). Nothing else
changes: version, errors, `Exchange`, `exchanges` and every other name the __init__ binds are
there at once, an exchange read by name is the class the real __init__ would bind, and a read of
a missing submodule's name (one the full import would have left as an attribute) first runs the
real __init__ whole.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

PACKAGES = frozenset({"ccxt", "ccxt.async_support", "ccxt.pro"})

# Per package: the names whose import statements were left out, each with the submodule it comes
# from. Kept here rather than in the package's namespace, which stays exactly ccxt's own.
_deferred: dict[str, dict[str, str]] = {}
# One thread runs a package's whole __init__ while the others wait; reentrant, as that __init__ may
# itself read a name it has not bound yet.
_complete = threading.RLock()


class ExchangePackage(types.ModuleType):
    """A ccxt package whose exchanges are imported one by one, when first named."""

    def __getattr__(self, name: str) -> Any:
        deferred = _deferred.get(self.__name__, {})
        if name in deferred:
            # __import__, not importlib.import_module: only the former shows in -X importtime.
            __import__(deferred[name])
            exchange = sys.modules[deferred[name]]
            super().__setattr__(name, getattr(exchange, name))  # as the __init__'s import binds it
        elif _submodule_exists(self, name):
            # The __init__'s statements bind no other name, but the exchanges it imports import
            # submodules (ccxt.abstract, ccxt.static_dependencies...), which Python binds on the
            # package. Any other name (a probe for __wrapped__, pytest's fixture markers) is missing
            # from the whole package too: no need to import ~105 exchanges to say so.
            _complete_package(self)
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds each submodule it loads on its package; ccxt's __init__ then binds
        # the exchange's class over it (`from ccxt.binance import binance`), and so does this.
        if isinstance(value, types.ModuleType) and name in _deferred.get(self.__name__, {}):
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(_deferred.get(self.__name__, {})))


class _ExchangePackageLoader(importlib.abc.Loader):
    """Runs a ccxt package's __init__ without its exchange imports, deferring them to first use."""

    def __init__(self, source_loader: importlib.machinery.SourceFileLoader) -> None:
        self.source_loader = source_loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module, whose class exec_module swaps

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__name__
        source = self.source_loader.get_source(name)
        if source is None:
            raise ImportError(f"no source for {name}", name=name)
        tree = ast.parse(source, self.source_loader.path)
        kept: list[ast.stmt] = []
        deferred: dict[str, str] = {}
        for statement in tree.body:
            exchange = _exchange_import(statement, name)
            if exchange is None:
                kept.append(statement)
            else:
                deferred[exchange] = f"{name}.{exchange}"
        _deferred[name] = deferred
        module.__class__ = ExchangePackage
        code = compile(ast.Module(body=kept, type_ignores=[]), self.source_loader.path, "exec")
        exec(code, module.__dict__)


class _ExchangePackageFinder(importlib.abc.MetaPathFinder):
    """Finds ccxt's packages where Python would, and gives them the deferring loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec  # not a plain source install: imported as ccxt ships it
        spec.loader = _ExchangePackageLoader(spec.loader)
        return spec


def install() -> None:
    """Import ccxt's packages from now on with their exchanges deferred; a no-op once ccxt is
    imported (its package is then the real one) or the finder is in place."""
    if "ccxt" in sys.modules or any(isinstance(f, _ExchangePackageFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _ExchangePackageFinder())


def _exchange_import(statement: ast.stmt, package: str) -> str | None:
    """The exchange that `statement` imports when it is `from <package>.<x> import <x>`."""
    if not isinstance(statement, ast.ImportFrom) or statement.level or statement.module is None:
        return None
    parent, _, child = statement.module.rpartition(".")
    if parent != package or len(statement.names) != 1:
        return None
    alias = statement.names[0]
    return child if alias.name == child and alias.asname is None else None


def _submodule_exists(package: types.ModuleType, name: str) -> bool:
    spec = importlib.machinery.PathFinder.find_spec(f"{package.__name__}.{name}", package.__path__)
    return spec is not None


def _complete_package(package: types.ModuleType) -> None:
    """Run the package's real __init__ in its namespace: every exchange imported, as ccxt ships it."""
    with _complete:
        deferred = _deferred.pop(package.__name__, None)
        if deferred is None:
            return  # already complete
        try:
            loader = package.__spec__.loader if package.__spec__ else None
            assert isinstance(loader, _ExchangePackageLoader)
            code = loader.source_loader.get_code(package.__name__)
            if code is None:
                raise ImportError(f"no code for {package.__name__}", name=package.__name__)
            exec(code, package.__dict__)
        except BaseException:
            _deferred[package.__name__] = deferred
            raise
        package.__class__ = types.ModuleType  # nothing left to defer
