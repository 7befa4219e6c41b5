"""ccxt's packages with deferred exchanges are ccxt's packages: the same names and the same classes,
only the exchanges nobody named are not imported. Each check runs in a fresh interpreter: the test
worker may have imported the real ccxt already, and then install() rightly does nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

# What a package's namespace holds, comparable across processes: each name with what its value is.
DESCRIBE = """
import types
def describe(package):
    out = {}
    for name, value in vars(package).items():
        if name in ("__loader__", "__spec__", "__builtins__", "__cached__"):
            continue  # the loader differs by design; the rest of the spec is compared on its own
        if isinstance(value, types.ModuleType):
            out[name] = "module " + value.__name__
        elif isinstance(value, type | types.FunctionType):
            out[name] = type(value).__name__ + " " + value.__module__ + "." + value.__qualname__
        else:
            out[name] = repr(value)[:200]
    return out
"""


def in_fresh_python(script: str) -> Any:
    """Run `script` in a new interpreter; what it prints last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", DESCRIBE + textwrap.dedent(script)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_only_the_named_exchanges_load_and_every_other_name_still_resolves() -> None:
    seen = in_fresh_python("""
        import json, sys
        from arbitrage.venues import ccxt_import
        ccxt_import.install()
        import ccxt, ccxt.pro
        out = {"binance": repr(ccxt.binance), "pro_upbit": repr(ccxt.pro.upbit),
               "pro_upbit_base": repr(ccxt.pro.upbit.__mro__[1]),
               "error": repr(ccxt.RateLimitExceeded), "version": ccxt.__version__,
               "spec": [ccxt.__spec__.name, ccxt.__spec__.origin, list(ccxt.__path__)]}
        out["loaded"] = sorted(m for m in sys.modules if m.startswith("ccxt.") and m.count(".") == 1
                               and m.split(".")[1] in ccxt.exchanges)
        out["async_loaded"] = sorted(m for m in sys.modules if m.startswith("ccxt.async_support.")
                                     and m.split(".")[-1] in ccxt.async_support.exchanges)
        out["kraken"] = repr(ccxt.kraken)  # named later: loaded then, alone
        out["kraken_alone"] = "ccxt.okx" not in sys.modules
        out["in_dir"] = "okx" in dir(ccxt)
        out["missing"] = hasattr(ccxt, "no_such_exchange")  # bound by nothing: no reason to load more
        out["still_alone"] = "ccxt.okx" not in sys.modules
        # A submodule's name may be bound by what the exchanges import: the whole __init__ first.
        out["submodule"] = hasattr(ccxt, "test")
        out["after"] = describe(ccxt)
        out["pro_dir"] = sorted(set(ccxt.pro.exchanges) - set(dir(ccxt.pro)))
        print(json.dumps(out))
    """)
    # ccxt alone: the same loader completes async_support and pro, and the real ccxt.pro would
    # import (and on a fresh install compile) ~200 more modules for this one comparison.
    real = in_fresh_python("""
        import json, ccxt
        print(json.dumps({"spec": [ccxt.__spec__.name, ccxt.__spec__.origin, list(ccxt.__path__)],
                          "submodule": hasattr(ccxt, "test"), "all": describe(ccxt)}))
    """)
    assert seen["binance"] == "<class 'ccxt.binance.binance'>"
    assert seen["pro_upbit"] == "<class 'ccxt.pro.upbit.upbit'>"
    assert seen["pro_upbit_base"] == "<class 'ccxt.async_support.upbit.upbit'>"
    assert seen["error"] == "<class 'ccxt.base.errors.RateLimitExceeded'>"
    assert seen["spec"] == real["spec"]
    assert seen["loaded"] == ["ccxt.binance"]
    assert seen["async_loaded"] == ["ccxt.async_support.upbit"]  # what ccxt.pro's upbit is built on
    assert seen["kraken"] == "<class 'ccxt.kraken.kraken'>"
    assert seen["kraken_alone"] and seen["in_dir"]
    assert seen["missing"] is False and seen["still_alone"]
    assert seen["submodule"] == real["submodule"]
    # Once complete, the namespace is the real package's (bar the subpackages this one imported).
    assert {k: v for k, v in seen["after"].items() if k not in ("async_support", "pro")} == real["all"]
    assert seen["pro_dir"] == []
